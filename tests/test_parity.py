"""cgfw's step against the authors' training loop (benchmarks/reference_loop.py, written from
their cycle_gan_model.py): the same initial weights, batches, flips and pool decisions, then
every loss term of every iteration and the final weights compared, for the paper's structure
and every named ablation."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from cgfw.plugin.loader import Loaded
from cgfw.recipe import load_data, validate
from cgfw.tools import ablate
from cgfw.training.loop import build_dataset
from cgfw.training.model import build_model
from cgfw_paper.reference import load_reference

reference = load_reference()
Lambdas = reference.Lambdas

# paper_default at a small size: its structure (ResNet generator, 70x70-style PatchGAN with 3
# layers, LSGAN, lambda 10, identity 0.5, pool, Adam 2e-4 (0.5, 0.999), batch 1), 32 px.
SMALL = [
    "data={name='emoji', load_size=32, crop_size=32, flip=false}",
    "generator.ngf=8",
    "generator.n_blocks=2",
    "discriminator.ndf=8",
    "train.batch_size=1",
    "train.device='cpu'",
    "buffer.capacity=5",  # full after 5 images: then each image is replayed or passed
]
ITERS = 20

# What each named ablation means in the authors' loop, written here independently of cgfw's
# recipe edits: (their weights and switches, their pool size).
AUTHORS: dict[str | None, tuple[Any, int]] = {
    None: (Lambdas(), 5),
    "identity": (Lambdas(identity=0.0), 5),
    "pool": (Lambdas(), 0),
    "gan": (Lambdas(gan=False), 5),  # cycle alone
    "cycle": (Lambdas(cycle=0.0), 5),  # GAN alone: lambda 0 takes identity with it
    "cycle_backward": (Lambdas(backward=False), 5),  # GAN + forward cycle
    "cycle_forward": (Lambdas(forward=False), 5),  # GAN + backward cycle
}

# The loss terms each named ablation leaves on paper_default (`cgfw components ablation`).
GAN = {"g_ab_gan", "g_ba_gan", "d_a", "d_b"}
IDENTITY = {"idt_a", "idt_b"}
TERMS_LEFT = {
    None: GAN | {"cycle_a", "cycle_b"} | IDENTITY,
    "identity": GAN | {"cycle_a", "cycle_b"},
    "pool": GAN | {"cycle_a", "cycle_b"} | IDENTITY,
    "gan": {"cycle_a", "cycle_b"} | IDENTITY,
    "cycle": GAN,
    "cycle_backward": GAN | {"cycle_a"} | IDENTITY,
    "cycle_forward": GAN | {"cycle_b"} | IDENTITY,
}


def torch_draw(size: int) -> tuple[float, int]:
    """The pool's coin and slot drawn as cgfw's ImagePool draws them: the same decisions."""
    coin = float(torch.rand(()))
    return coin, int(torch.randint(size, ()))


def recipe_data(loaded: Loaded, ablation: str | None, *extra: str) -> dict[str, Any]:
    data, _ = load_data("paper_default", loaded.registry, [*SMALL, *extra])
    return data if ablation is None else ablate.apply(data, ablation, loaded.registry)


def scripted_batches(
    loaded: Loaded, data: dict[str, Any], count: int, batch_size: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Emoji of the training split picked and flipped by one seeded generator: both loops get
    these very tensors."""
    train_set: Any = build_dataset(validate(data, loaded.registry, "parity"), "train")
    g = torch.Generator().manual_seed(7)
    out = []
    for _ in range(count):
        keys = torch.randint(len(train_set), (batch_size, 2), generator=g).tolist()
        items = [train_set[(index, seed)] for index, seed in keys]  # B drawn by the seed
        flips = (torch.rand(batch_size, 2, generator=g) < 0.5).tolist()
        a = [x["a"].flip(-1) if f else x["a"] for x, (f, _) in zip(items, flips, strict=True)]
        b = [x["b"].flip(-1) if f else x["b"] for x, (_, f) in zip(items, flips, strict=True)]
        out.append((torch.stack(a), torch.stack(b)))
    return out


def train_both(
    loaded: Loaded, ablation: str | None, stack: bool = False, iters: int = ITERS, batch: int = 1
) -> tuple[list[dict[str, float]], list[dict[str, float]], Any, Any]:
    data = recipe_data(loaded, ablation, f"train.stack_calls={str(stack).lower()}")
    resolved = validate(data, loaded.registry, "parity")
    torch.manual_seed(0)
    ours = build_model(resolved, torch.device("cpu"))
    nets = [copy.deepcopy(n) for n in (ours.g_ab, ours.g_ba, ours.d_a, ours.d_b)]
    for net in nets:  # the same weights in the authors' modules (plain output conv, in place)
        reference.as_authors(net)
    lambdas, pool_size = AUTHORS[ablation]
    r = resolved.recipe
    theirs = reference.AuthorsLoop(
        *nets, r.optimizer.lr, tuple(r.optimizer.betas), lambdas, pool_size, draw=torch_draw
    )
    batches = scripted_batches(loaded, data, iters, batch)
    ours.setup(*batches[0])  # as a run does: the stacking check, and on a CPU the two streams
    query = theirs.pool_b.query
    theirs.replays = 0  # how often the pool answered with an older fake

    def counted(images: torch.Tensor) -> torch.Tensor:
        shown = query(images)
        theirs.replays += sum(not torch.equal(x, y) for x, y in zip(shown, images, strict=True))
        return shown

    theirs.pool_b.query = counted
    torch.manual_seed(1)  # the pools' draws
    our_terms = [{k: v.item() for k, v in ours.step(a, b).items()} for a, b in batches]
    torch.manual_seed(1)
    their_terms = [{k: v.item() for k, v in theirs.step(a, b).items()} for a, b in batches]
    return our_terms, their_terms, ours, theirs


def assert_terms_equal(ours: list[dict[str, float]], theirs: list[dict[str, float]]) -> None:
    for i, (mine, authors) in enumerate(zip(ours, theirs, strict=True), start=1):
        assert mine.keys() == authors.keys(), f"iteration {i}"
        for name, value in mine.items():
            assert value == pytest.approx(authors[name], rel=1e-5, abs=1e-5), (i, name)


@pytest.mark.parametrize("ablation", list(AUTHORS), ids=lambda a: a or "paper")
def test_step_computes_what_the_authors_loop_computes(loaded: Loaded, ablation: str | None) -> None:
    """Every call apart (train.stack_calls = false), in the authors' order: equal to 1e-5."""
    ours, theirs, m, loop = train_both(loaded, ablation)
    assert ours == theirs  # on a CPU not just close: bit for bit (README says so)
    assert set(ours[0]) - {"g_total"} == TERMS_LEFT[ablation]
    if "d_b" in TERMS_LEFT[ablation] and ablation != "pool":
        assert 0 < loop.replays < ITERS - 5  # a full pool replays older fakes about half the time
    assert_terms_equal(ours, theirs)
    pairs = [(m.g_ab, loop.g_ab), (m.g_ba, loop.g_ba), (m.d_a, loop.d_a), (m.d_b, loop.d_b)]
    for mine, authors in pairs:
        for (name, p), q in zip(mine.named_parameters(), authors.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-5, msg=name)


def test_per_image_pool_decisions_match_at_batch_2(loaded: Loaded) -> None:
    ours, theirs, *_ = train_both(loaded, None, iters=12, batch=2)
    assert_terms_equal(ours, theirs)


@pytest.mark.parametrize(
    "ablation", [None, "identity", "cycle_forward", "cycle_backward"], ids=lambda a: a or "paper"
)
def test_stacked_calls_match_before_rounding_is_amplified(
    loaded: Loaded, ablation: str | None
) -> None:
    """The default stacks a generator's translation and identity images (and g_ba's forward
    cycle image with them), and a discriminator's real and fake ones: other kernels, so fp32
    rounding differs, and Adam's first steps (which divide by a tiny second moment) amplify it
    after a few iterations."""
    # Without the forward cycle the amplification comes sooner (1e-5 apart at iteration 3, as
    # before g_ba's calls were merged): the ablations' branches are compared for two.
    # Two threads: on a CPU the default then runs as two streams (cgfw_paper/streams.py).
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        iters = 4 if ablation is None else 2
        ours, theirs, m, _ = train_both(loaded, ablation, stack=True, iters=iters)
    finally:
        torch.set_num_threads(threads)
    assert m.streams is not None
    assert_terms_equal(ours, theirs)


def test_every_named_ablation_is_compared(loaded: Loaded) -> None:
    paper = {
        name
        for name in loaded.registry.names("ablation")
        if loaded.registry.get("ablation", name).plugin == "paper-ablations"
    }
    assert paper == set(AUTHORS) - {None} == set(TERMS_LEFT) - {None}


@pytest.mark.parametrize("ablation", [a for a in TERMS_LEFT if a], ids=str)
def test_each_ablation_lists_the_terms_it_leaves(loaded: Loaded, ablation: str) -> None:
    data = recipe_data(loaded, None)
    assert set(ablate.terms_left(data, ablation, loaded.registry)) == TERMS_LEFT[ablation]


def test_components_ablation_shows_the_terms_left(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("components", "ablation")
    assert result.exit_code == 0, result.output
    assert "what stays on, on its base recipe" in result.output
    row = next(line for line in result.output.splitlines() if line.startswith("│ cycle "))
    assert "paper_default: g_ab_gan" in row and "idt" not in row and "cycle_a" not in row


def test_components_lists_ablations_without_the_paper_recipes(cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CGFW_DISABLE_PLUGINS", "paper-recipes")
    result = cli("components", "ablation")
    assert result.exit_code == 0, result.output
    assert "cycle_backward" in result.output and "paper_default:" not in result.output
    assert "(its base recipe is not installed)" in result.output
