"""The paper plugin's CycleGAN model and its step: which terms exist, their weights, and who
gets updated."""

import pytest
import torch
from torch import nn

from cgfw.plugin.loader import Loaded
from cgfw.recipe import load
from cgfw.training.model import Speed, build_model
from cgfw_paper.cyclegan import CycleGAN
from cgfw_paper.stacking import Stacking
from cgfw_paper.stacking import mixes_samples as _mixes_samples
from tests.conftest import state_equal


def tiny(loaded: Loaded, tiny_recipe, *overrides: str) -> CycleGAN:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    m = build_model(load(str(tiny_recipe), loaded.registry, overrides))
    assert isinstance(m, CycleGAN)
    return m


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, torch.rand(
        2, 3, 32, 32, generator=g
    ) * 2 - 1


def params(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def test_full_step_has_every_term_with_the_papers_weights(loaded, tiny_recipe) -> None:  # type: ignore[no-untyped-def]
    m = tiny(loaded, tiny_recipe)
    real_a, real_b = batch()
    with torch.no_grad():  # what the identity term must be, computed before the update
        idt_b = 5.0 * (m.g_ab(real_b) - real_b).abs().mean()
        fake_b = m.g_ab(real_a)
        cycle_a = 10.0 * (m.g_ba(fake_b) - real_a).abs().mean()
    terms = m.step(real_a, real_b)
    assert set(terms) == {
        "g_ab_gan",
        "g_ba_gan",
        "cycle_a",
        "cycle_b",
        "idt_a",
        "idt_b",
        "d_a",
        "d_b",
        "g_total",
    }
    assert torch.allclose(terms["idt_b"], idt_b)  # 0.5 relative x lambda 10 = 5 absolute
    assert torch.allclose(terms["cycle_a"], cycle_a)
    g_terms = sum(v for k, v in terms.items() if k not in ("d_a", "d_b", "g_total"))
    assert torch.allclose(terms["g_total"], g_terms)


def test_ablations_remove_their_terms(loaded, tiny_recipe) -> None:  # type: ignore[no-untyped-def]
    real_a, real_b = batch()
    cases = {
        "losses.identity.weight=0": {"idt_a", "idt_b"},
        "losses.cycle.backward=false": {"cycle_b"},
        "losses.cycle.forward=false": {"cycle_a"},
        "losses.gan.weight=0": {"g_ab_gan", "g_ba_gan", "d_a", "d_b"},
    }
    for override, missing in cases.items():
        terms = tiny(loaded, tiny_recipe, override).step(real_a, real_b)
        assert not missing & set(terms), override
        assert "g_total" in terms


def test_identity_off_skips_its_forward_passes(loaded, tiny_recipe) -> None:  # type: ignore[no-untyped-def]
    m = tiny(loaded, tiny_recipe, "losses.identity.weight=0")
    calls = []
    m.g_ab.register_forward_hook(lambda *_: calls.append("g_ab"))
    m.step(*batch())
    assert calls == ["g_ab", "g_ab"]  # fake_b and rec_b only; no idt_b = g_ab(real_b)


def test_generator_update_does_not_move_discriminators(loaded, tiny_recipe) -> None:  # type: ignore[no-untyped-def]
    m = tiny(loaded, tiny_recipe)  # GAN loss on: D is in the generators' loss
    d_before, g_before = params(m.d_a) + params(m.d_b), params(m.g_ab)
    after_g: dict[str, list[torch.Tensor]] = {}
    g_step = m.opt_g.step

    def watched_step(*args, **kwargs):  # type: ignore[no-untyped-def]
        out = g_step(*args, **kwargs)
        after_g["d"], after_g["g"] = params(m.d_a) + params(m.d_b), params(m.g_ab)
        return out

    m.opt_g.step = watched_step  # type: ignore[method-assign]
    m.step(*batch())
    assert all(torch.equal(a, b) for a, b in zip(d_before, after_g["d"], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(g_before, after_g["g"], strict=True))
    assert all(p.requires_grad for p in m.d_a.parameters())  # unfrozen again
    d_after = params(m.d_a) + params(m.d_b)  # ...and D's own update then moves it
    assert not all(torch.equal(a, b) for a, b in zip(d_before, d_after, strict=True))


def test_without_a_gan_term_the_discriminators_are_not_trained(loaded, tiny_recipe) -> None:  # type: ignore[no-untyped-def]
    m = tiny(loaded, tiny_recipe, "losses.gan.weight=0")
    d_before = params(m.d_a)
    m.step(*batch())
    assert all(torch.equal(a, b) for a, b in zip(d_before, params(m.d_a), strict=True))


class FixedPool:
    """A pool that always answers with the same image, unlike any fake the step makes."""

    def __init__(self, image: torch.Tensor) -> None:
        self.image = image
        self.asked: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        self.asked.append(images)
        return self.image.expand_as(images).clone()


@pytest.mark.parametrize("stack", [True, False])
def test_discriminators_see_pooled_fakes(loaded, tiny_recipe, stack: bool) -> None:  # type: ignore[no-untyped-def]
    m = tiny(loaded, tiny_recipe)
    m.stacking.enabled = stack
    pool = m.pool_b = FixedPool(torch.full((1, 3, 32, 32), 0.25))  # type: ignore[assignment]
    seen: list[torch.Tensor] = []
    m.d_b.register_forward_hook(lambda _, args, __: seen.append(args[0]))
    real_a, real_b = batch()
    m.step(real_a, real_b)
    assert len(pool.asked) == 1 and not pool.asked[0].requires_grad
    shown = torch.cat(seen[1:])  # after the generators' call on fake_b: D's own update
    assert torch.equal(shown[: len(real_b)], real_b)
    assert torch.equal(shown[len(real_b) :], torch.full_like(real_b, 0.25))  # the pool's answer


def test_discriminators_are_frozen_while_the_generators_step(loaded, tiny_recipe) -> None:  # type: ignore[no-untyped-def]
    m = tiny(loaded, tiny_recipe)  # GAN loss on: the discriminators are part of the G loss
    seen = {}
    g_step = m.opt_g.step

    def watched_step(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen["d_grads"] = [p.grad for net in (m.d_a, m.d_b) for p in net.parameters()]
        seen["d_frozen"] = not any(p.requires_grad for p in m.d_a.parameters())
        seen["g_grads"] = [p.grad for p in m.g_ab.parameters()]
        return g_step(*args, **kwargs)

    m.opt_g.step = watched_step  # type: ignore[method-assign]
    m.step(*batch())
    assert seen["d_frozen"] and all(g is None for g in seen["d_grads"])
    assert all(g is not None for g in seen["g_grads"])
    assert all(p.grad is not None for p in m.d_a.parameters())  # then D gets its own update


def test_discriminator_loss_is_half_real_plus_fake_on_pooled_fakes(loaded, tiny_recipe) -> None:  # type: ignore[no-untyped-def]
    m = tiny(loaded, tiny_recipe)
    pooled = torch.full((1, 3, 32, 32), -0.5)
    m.pool_b = FixedPool(pooled)  # type: ignore[assignment]
    real_a, real_b = batch()
    with torch.no_grad():  # D is not moved by the generators' update (tested above)
        scores_real, scores_fake = m.d_b(real_b), m.d_b(pooled.expand_as(real_b))
        expected = 0.5 * ((scores_real - 1).pow(2).mean() + scores_fake.pow(2).mean())
        fake_b = m.g_ab(real_a)
        on_fakes = 0.5 * ((scores_real - 1).pow(2).mean() + m.d_b(fake_b).pow(2).mean())
    assert not torch.allclose(expected, on_fakes, rtol=1e-3)  # the test can tell them apart
    terms = m.step(real_a, real_b)
    assert torch.allclose(terms["d_b"], expected, rtol=1e-5)


def test_weights_are_checked_before_a_checkpoint(loaded, tiny_recipe) -> None:  # type: ignore[no-untyped-def]
    from cgfw.training.loop import all_finite

    m = tiny(loaded, tiny_recipe)
    assert all_finite(m)
    with torch.no_grad():
        next(m.d_b.parameters())[0].fill_(float("inf"))
    assert not all_finite(m)


def test_paired_loss_is_l1_to_the_aligned_target_and_alone_skips_the_discriminators(
    loaded, tiny_recipe
) -> None:  # type: ignore[no-untyped-def]
    m = tiny(
        loaded, tiny_recipe, "losses.paired.weight=10", "losses.gan.weight=0",
        "losses.cycle.forward=false", "losses.cycle.backward=false", "losses.identity.weight=0",
    )  # fmt: skip
    real_a, real_b = batch()
    with torch.no_grad():
        paired_b = 10.0 * (m.g_ab(real_a) - real_b).abs().mean()
    d_before = params(m.d_a)
    terms = m.step(real_a, real_b)
    assert set(terms) == {"paired_a", "paired_b", "g_total"}
    assert torch.allclose(terms["paired_b"], paired_b)
    assert all(torch.equal(a, b) for a, b in zip(d_before, params(m.d_a), strict=True))


@pytest.mark.parametrize("stacked", [True, False])
def test_a_cycle_that_is_off_skips_its_reconstruction(loaded, tiny_recipe, stacked) -> None:  # type: ignore[no-untyped-def]
    m = tiny(
        loaded, tiny_recipe, "losses.identity.weight=0", "losses.cycle.backward=false",
        f"train.stack_calls={str(stacked).lower()}",
    )  # fmt: skip
    calls = []  # (network, images it was given)
    m.g_ab.register_forward_hook(lambda _m, args, _o: calls.append(("g_ab", len(args[0]))))
    m.g_ba.register_forward_hook(lambda _m, args, _o: calls.append(("g_ba", len(args[0]))))
    real_a, real_b = batch()
    n = len(real_a)
    m.step(real_a, real_b)
    # fake_b, then fake_a and rec_a (in one call where they stack); no rec_b = g_ab(fake_a)
    expected = (
        [("g_ab", n), ("g_ba", 2 * n)] if stacked else [("g_ab", n), ("g_ba", n), ("g_ba", n)]
    )
    assert calls == expected


def test_stacked_generators_take_every_input_known_by_then(loaded, tiny_recipe) -> None:  # type: ignore[no-untyped-def]
    """g_ab on real A and B (translation, identity), g_ba on real B and A and fake B (translation,
    identity, the forward cycle) in one call, then g_ab on fake A: three calls, not six."""
    m = tiny(loaded, tiny_recipe)
    calls = []
    m.g_ab.register_forward_hook(lambda _m, args, _o: calls.append(("g_ab", len(args[0]))))
    m.g_ba.register_forward_hook(lambda _m, args, _o: calls.append(("g_ba", len(args[0]))))
    real_a, real_b = batch()
    n = len(real_a)
    m.step(real_a, real_b)
    assert calls == [("g_ab", 2 * n), ("g_ba", 3 * n), ("g_ab", n)]


def step_twice(m: CycleGAN) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
    """The second step's terms, and every gradient of the first step's two updates. (Not the
    weights or outputs after them: where a gradient is rounding noise, such as a conv bias just
    before instance norm, Adam's first steps scale the noise up to full-size steps.)"""
    first: dict[int, list[torch.Tensor]] = {}  # each optimizer's gradients at its first step
    for opt in (m.opt_g, m.opt_d):

        def recorded(*args, _opt=opt, _step=opt.step, **kwargs):  # type: ignore[no-untyped-def]
            if id(_opt) not in first:
                first[id(_opt)] = [p.grad.clone() for g in _opt.param_groups for p in g["params"]]
            return _step(*args, **kwargs)

        opt.step = recorded  # type: ignore[method-assign]
    torch.manual_seed(1)  # the image pools draw from torch's generator
    m.step(*batch())
    terms = m.step(*batch())  # the second sees the first's pooled fakes
    return terms, [*first[id(m.opt_g)], *first[id(m.opt_d)]]


def assert_same_terms(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert got.keys() == want.keys()
    for name, value in got.items():
        assert torch.allclose(value, want[name], rtol=1e-5, atol=1e-6), name


def test_calls_on_stacked_inputs_train_as_separate_calls_would(loaded, tiny_recipe) -> None:  # type: ignore[no-untyped-def]
    together = tiny(loaded, tiny_recipe)
    apart = tiny(loaded, tiny_recipe)
    apart.stacking.enabled = False
    calls = []
    together.g_ab.register_forward_hook(lambda _, args, __: calls.append(len(args[0])))
    together.d_b.register_forward_hook(lambda _, args, __: calls.append(-len(args[0])))
    terms, grads = step_twice(together)
    # g_ab: fake_b with idt_b, then rec_b; d_b: fake_b for G, then real_b with a pooled fake.
    assert calls[:4] == [4, 2, -2, -4]
    expected_terms, expected_grads = step_twice(apart)
    assert_same_terms(terms, expected_terms)
    assert len(grads) == len(expected_grads) > 0
    for got, want in zip(grads, expected_grads, strict=True):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-6)


def test_batch_norm_keeps_each_call_apart(loaded, tiny_recipe) -> None:  # type: ignore[no-untyped-def]
    # Batch statistics would mix the stacked inputs: the step must call the network per input.
    m = tiny(loaded, tiny_recipe, "generator.norm='batch'")
    assert [name for name, net in m.networks.items() if not m.stacking.stacks(net)] == [
        "g_ab",
        "g_ba",
    ]
    calls = []
    m.g_ab.register_forward_hook(lambda _, args, __: calls.append(len(args[0])))
    m.step(*batch())
    assert calls == [2, 2, 2]  # fake_b, rec_b, idt_b: one batch of two images each
    m = tiny(loaded, tiny_recipe)
    assert all(m.stacking.stacks(net) for net in m.networks.values())


def test_a_module_that_says_it_mixes_samples_keeps_each_call_apart(
    loaded, tiny_recipe, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    # As a plugin's minibatch-statistics layer would declare itself (cgfw/hookspecs.py).
    monkeypatch.setattr(torch.nn.LeakyReLU, "mixes_samples", True, raising=False)  # in d only
    m = tiny(loaded, tiny_recipe)
    assert [name for name, net in m.networks.items() if not m.stacking.stacks(net)] == [
        "d_a",
        "d_b",
    ]


@pytest.mark.parametrize(
    ("module", "mixes"),
    [
        (nn.InstanceNorm2d(4), False),  # the paper's: statistics of each sample, nothing kept
        (nn.Dropout(), False),
        (nn.BatchNorm2d(4), True),
        (nn.BatchNorm2d(4, track_running_stats=False), True),  # still the batch's statistics
        (nn.InstanceNorm2d(4, track_running_stats=True), True),  # averages updated per call
        (nn.utils.spectral_norm(nn.Conv2d(3, 4, 3)), True),  # a power iteration per call
        (nn.utils.parametrizations.spectral_norm(nn.Conv2d(3, 4, 3)), True),
    ],
)
def test_which_modules_keep_calls_apart(module: nn.Module, mixes: bool) -> None:
    assert _mixes_samples(module) is mixes


def test_a_and_b_images_of_different_sizes_are_called_apart(loaded, tiny_recipe) -> None:  # type: ignore[no-untyped-def]
    # A third-party dataset may give A and B images of different sizes; stacking cannot.
    real_a, real_b = batch()
    real_b = torch.nn.functional.interpolate(real_b, size=(32, 48))
    together, apart = tiny(loaded, tiny_recipe), tiny(loaded, tiny_recipe)
    apart.stacking.enabled = False
    torch.manual_seed(1)
    terms = together.step(real_a, real_b)
    torch.manual_seed(1)
    assert_same_terms(terms, apart.step(real_a, real_b))


def test_stacked_inputs_keep_channels_last(loaded, tiny_recipe) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    recipe = load(str(tiny_recipe), loaded.registry, ["train.channels_last=true"])
    m = build_model(recipe, speed=Speed("fp32", True, "off"))  # as training resolves it
    seen = []
    m.d_b.register_forward_hook(lambda _, args, __: seen.append(args[0]))
    real_a, real_b = (x.contiguous(memory_format=torch.channels_last) for x in batch())
    m.step(real_a, real_b)
    stacked = seen[-1]  # real_b with the pool's (contiguous) fakes
    assert len(stacked) == 4 and stacked.is_contiguous(memory_format=torch.channels_last)


# A plugin generator with a minibatch-standard-deviation layer (as in ProGAN), written with
# plain tensor ops: no module type and no attribute tells that it mixes samples.
MINIBATCH_STDDEV = """
    import cgfw
    import torch
    from torch import nn

    class MinibatchStd(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("calls", torch.zeros(()))  # state a call changes

        def forward(self, x):
            self.calls.add_(1)
            spread = x.std(dim=0, unbiased=False).mean().expand(len(x), 1, *x.shape[2:])
            return torch.cat([x, spread], dim=1)

    def mbstd(_opts):
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), MinibatchStd(),
                             nn.Conv2d(5, 3, 3, padding=1), nn.Tanh())

    @cgfw.hookimpl
    def register_generators(register):
        register("mbstd", mbstd, None, "two convs around a minibatch stddev")
"""


def test_a_network_that_mixes_samples_unannounced_is_measured_and_called_apart(
    fake_distribution, tiny_recipe, caplog
) -> None:  # type: ignore[no-untyped-def]
    from cgfw.plugin.loader import load_plugins

    fake_distribution("cgfw-mbstd", MINIBATCH_STDDEV)
    m = tiny(load_plugins(), tiny_recipe, 'generator={name="mbstd"}')
    assert all(m.stacking.stacks(net) for net in m.networks.values())  # types tell nothing
    real_a, real_b = batch()
    rng, state = torch.get_rng_state(), {k: v.clone() for k, v in m.g_ab.state_dict().items()}
    with caplog.at_level("WARNING", logger="cgfw.train"):
        assert m.stacking.check(m.rt, m.networks, real_a, real_b) == ["g_ab", "g_ba"]
    assert torch.equal(torch.get_rng_state(), rng)  # the check draws nothing of the run's
    assert state_equal(m.g_ab.state_dict(), state)  # nor leaves a trace in the network
    assert [r.getMessage().split(" ")[0] for r in caplog.records] == ["g_ab", "g_ba"]
    assert "mixes samples" in caplog.records[0].getMessage()
    calls = []
    m.g_ab.register_forward_hook(lambda _, args, __: calls.append(len(args[0])))
    m.step(real_a, real_b)
    assert calls == [2, 2, 2]  # fake_b, rec_b, idt_b each alone: the objective is unchanged


def test_the_stacking_check_leaves_per_sample_networks_stacked(loaded, tiny_recipe) -> None:  # type: ignore[no-untyped-def]

    m = tiny(loaded, tiny_recipe, "generator.norm='batch'")
    assert (
        m.stacking.check(m.rt, m.networks, *batch()) == []
    )  # batch norm: already apart by its type
    m = tiny(loaded, tiny_recipe, "generator.dropout=true")  # dropout is not mixing
    assert m.stacking.check(m.rt, m.networks, *batch()) == []
    assert all(m.stacking.stacks(net) for net in m.networks.values())
    assert all(x.training for x in m.g_ab.modules())  # dropout switched back on


def test_training_measures_stacking_on_its_first_batch_only(
    fake_distribution, tiny_recipe, cli, caplog, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    fake_distribution("cgfw-mbstd", MINIBATCH_STDDEV)
    checks = []
    check = Stacking.check
    monkeypatch.setattr(Stacking, "check", lambda *a: checks.append(1) or check(*a))
    with caplog.at_level("WARNING", logger="cgfw.train"):
        result = cli(
            "run", tiny_recipe, "--set", 'generator={name="mbstd"}', "--set", "train.max_iters=3"
        )
    assert result.exit_code == 0, result.output
    assert len(checks) == 1  # the first batch, not every batch
    said = [r.getMessage() for r in caplog.records if "so its calls run apart" in r.getMessage()]
    assert [m.split(" ")[0] for m in said] == ["g_ab", "g_ba"]


def test_a_network_whose_separate_calls_give_nan_is_not_stacked(loaded, tiny_recipe) -> None:  # type: ignore[no-untyped-def]
    """Minibatch statistics with an unbiased std: NaN for one image alone, finite for two
    stacked; NaN must count as a difference, not slip through a comparison."""

    class UnbiasedStd(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + x.std(dim=0).mean()

    m = tiny(loaded, tiny_recipe)
    m.d_a = m.networks["d_a"] = nn.Sequential(m.d_a, UnbiasedStd())
    one_a, one_b = (x[:1] for x in batch())
    assert m.stacking.check(m.rt, m.networks, one_a, one_b) == ["d_a"]


def test_the_stacking_decision_is_saved_and_resumed(loaded, tiny_recipe) -> None:  # type: ignore[no-untyped-def]
    m = tiny(loaded, tiny_recipe)
    m.stacking.apart.append(m.d_b)  # as if measured on the first batch
    resumed = tiny(loaded, tiny_recipe)
    resumed.load_state_dict(m.state_dict())
    assert resumed.stacking.checked and not resumed.stacking.stacks(resumed.d_b)
    assert resumed.stacking.stacks(resumed.g_ab)


def test_one_generator_apart_leaves_the_other_stacking(loaded, tiny_recipe) -> None:  # type: ignore[no-untyped-def]
    """The stacking decision is per network (docs/plugins.md): g_ab apart runs each of its
    calls alone, in the authors' order, while g_ba still takes its three inputs together."""
    m = tiny(loaded, tiny_recipe)
    m.stacking.apart.append(m.g_ab)
    calls = []
    m.g_ab.register_forward_hook(lambda _m, args, _o: calls.append(("g_ab", len(args[0]))))
    m.g_ba.register_forward_hook(lambda _m, args, _o: calls.append(("g_ba", len(args[0]))))
    real_a, real_b = batch()
    n = len(real_a)
    terms = m.step(real_a, real_b)
    assert calls == [("g_ab", n), ("g_ba", 3 * n), ("g_ab", n), ("g_ab", n)]  # idt_b last
    assert {"idt_a", "idt_b", "cycle_a", "cycle_b"} <= set(terms)
