"""examples/cgfw-unet, installed for real (pip, offline, into a temporary directory) and used the
way a third-party plugin is: found through its entry point, listed, trained with and ablated."""

from __future__ import annotations

import copy
import importlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import Result

from cgfw.errors import CgfwError
from cgfw.plugin.loader import load_plugins
from cgfw.recipe import load
from cgfw.store import checkpoint
from cgfw.training.model import build_model, build_network
from tests.conftest import run_dirs

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cgfw-unet"
UNET_128 = ["--set", 'generator={name="unet_128", ngf=4}']
AT_128 = ["--set", "data.load_size=128", "--set", "data.crop_size=128"]
SHORT = ["--set", "train.max_iters=2", "--set", "train.batch_size=1"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip install` of a copy of the example (so no build/ or egg-info lands in the tree) into a
    target directory: no network, no build isolation, the venv left alone."""
    pytest.importorskip("setuptools", reason="the example builds with setuptools")
    root = tmp_path_factory.mktemp("cgfw-unet")
    source = root / "src"
    shutil.copytree(
        EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    target = root / "site"
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--disable-pip-version-check",
        "--target",
        str(target),
        str(source),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return target


@pytest.fixture
def on_path(installed: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The installed example importable and its entry point visible, for one test only."""
    monkeypatch.syspath_prepend(str(installed))
    importlib.invalidate_caches()
    yield installed
    for name in [m for m in sys.modules if m == "cgfw_unet" or m.startswith("cgfw_unet.")]:
        del sys.modules[name]


def test_installed_plugin_is_listed_with_what_it_provides(on_path: Path) -> None:
    info = {p.name: p for p in load_plugins().plugins}["unet"]
    assert (info.distribution, info.version, info.status) == ("cgfw-unet", "0.1.0", "ok")
    assert info.target == "cgfw_unet"
    assert info.provides == {
        "model": ["pix2pix"],
        "generator": ["unet_128", "unet_256", "unet_32"],
        "ablation": ["unet_skips"],
        "recipe": ["pix2pix", "pix2pix_emoji"],
    }
    assert (on_path / "cgfw_unet" / "py.typed").is_file()  # typed for the plugin's own users


@pytest.mark.parametrize(("name", "size"), [("unet_128", 128), ("unet_256", 256)])
def test_generators_keep_the_shape_at_their_size(on_path: Path, name: str, size: int) -> None:
    component = load_plugins().registry.get("generator", name)
    for options in ({"ngf": 4}, {"ngf": 4, "norm": "batch", "dropout": True, "skips": False}):
        net = component.build(options)
        x = torch.rand(2, 3, size, size) * 2 - 1
        with torch.no_grad():
            y = net(x)
        assert y.shape == x.shape and y.abs().max() <= 1
    with pytest.raises(ValueError, match=rf"'{name}' .* divisible by {size} .* got 96x96"):
        net(torch.zeros(1, 3, 96, 96))


def test_the_authors_architecture_and_parameter_counts(on_path: Path) -> None:
    """Counted by hand from the authors' UnetGenerator (see the README); their unet_256 with
    batch norm prints "Total number of parameters : 54.414 M"."""
    from cgfw_unet import UnetOptions, unet_128, unet_256

    def count(factory: Callable[[UnetOptions], torch.nn.Module], **options: Any) -> int:
        with torch.device("meta"):  # no memory, no init: the count alone
            return sum(p.numel() for p in factory(UnetOptions(**options)).parameters())

    assert count(unet_256, norm="batch") == 54_413_955
    assert count(unet_256) == 54_409_603  # instance norm: conv biases instead of affine norms
    assert count(unet_128, norm="batch") == 41_828_995
    assert count(unet_128) == 41_825_667
    with torch.device("meta"):
        net = unet_256(UnetOptions(dropout=True))
    # The authors' attribute names, so their state dicts load as they are.
    assert next(iter(net.state_dict())) == "model.model.0.weight"
    assert sum(isinstance(m, torch.nn.Dropout) for m in net.modules()) == 8 - 5


def test_a_recipe_trains_with_the_plugin(
    on_path: Path, tiny_recipe: Path, cli: Callable[..., Result]
) -> None:
    result = cli("run", tiny_recipe, *UNET_128, *AT_128, *SHORT)
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tiny_recipe.parent / "runs")
    assert 'name = "unet_128"' in (run_dir / "recipe.toml").read_text()
    plugins = json.loads((run_dir / "run.json").read_text())["plugins"]
    assert plugins["unet"]["version"] == "0.1.0"


def test_a_size_the_unet_cannot_take_is_one_clear_error(
    on_path: Path, tiny_recipe: Path, cli: Callable[..., Result]
) -> None:
    result = cli("run", tiny_recipe, "--set", 'generator={name="unet_256", ngf=4}', *SHORT)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "divisible by 256" in result.output and "data.crop_size" in result.output


def test_ablation_severs_the_skip_connections(
    on_path: Path, tiny_recipe: Path, cli: Callable[..., Result]
) -> None:
    result = cli("ablate", tiny_recipe, "--disable", "unet_skips", *UNET_128, *AT_128, *SHORT)
    assert result.exit_code == 0, result.output
    (parent,) = run_dirs(tiny_recipe.parent / "runs")
    assert [p.name for p in run_dirs(parent)] == ["base", "no-unet_skips"]
    assert "skips = false" in (parent / "no-unet_skips" / "recipe.toml").read_text()
    table = json.loads((parent / "ablation.json").read_text())
    assert all(table[label]["g_total"] > 0 for label in ("base", "no-unet_skips"))
    # The trained generators: with the bottleneck zeroed, only skip connections can carry the
    # input to the output; without them the output is the same for any input.
    from cgfw_unet import UnetSkipConnectionBlock

    registry = load_plugins().registry
    depends = {}
    for label in ("base", "no-unet_skips"):
        resolved = load(str(parent / label / "recipe.toml"), registry)
        net = build_network(resolved, "generator")
        state = checkpoint.load(parent / label / "checkpoints" / "latest.pt")
        net.load_state_dict(state.model["networks"]["g_ab"])
        *_, innermost = (m for m in net.modules() if isinstance(m, UnetSkipConnectionBlock))
        innermost.register_forward_hook(lambda _m, _i, out: torch.zeros_like(out))
        g = torch.Generator().manual_seed(0)
        x = torch.rand(2, 3, 128, 128, generator=g) * 2 - 1
        with torch.no_grad():
            y = net.eval()(x)
        depends[label] = not torch.equal(y[0], y[1])
    assert depends == {"base": True, "no-unet_skips": False}


PIX2PIX_TINY = [
    "--set", "model.name=pix2pix",
    "--set", 'generator={name="unet_32", ngf=4, norm="batch", dropout=true}',
    "--set", 'discriminator={name="patchgan", n_layers=2, ndf=4, norm="batch", in_channels=6}',
    "--set", "data.paired='a'",
    "--set", "train.max_iters=2",
]  # fmt: skip


def test_pix2pix_takes_the_authors_defaults(on_path: Path) -> None:
    """pix2pix_model.py: --norm batch, --netG unet_256, dropout on (no_dropout false), netD on
    input_nc + output_nc channels, --gan_mode vanilla, --lambda_L1 100, --pool_size 0; 100 +
    100 epochs of linear decay."""
    resolved = load("pix2pix", load_plugins().registry)
    data = resolved.to_dict()
    assert data["model"] == {"name": "pix2pix"}
    g, d = data["generator"], data["discriminator"]
    assert (g["name"], g["norm"], g["dropout"], g["ngf"]) == ("unet_256", "batch", True, 64)
    assert (d["name"], d["norm"], d["in_channels"], d["n_layers"]) == ("patchgan", "batch", 6, 3)
    assert data["losses"] == {
        "gan": {"name": "bce", "weight": 1.0, "real_label": 1.0, "fake_label": 0.0},
        "l1": {"name": "l1", "weight": 100.0},
    }
    assert "buffer" not in data  # no image pool
    assert (data["schedule"]["n_epochs"], data["schedule"]["n_epochs_decay"]) == (100, 100)
    assert data["data"]["pairs"] is True


def test_pix2pix_on_grayscale_judges_two_channels(on_path: Path) -> None:
    """data.channels = 1: a 1 -> 1 channel U-Net and a conditional PatchGAN of 2 channels,
    filled in by the model; a count written for RGB data is named with the fix."""
    registry = load_plugins().registry
    resolved = load("pix2pix_emoji", registry, ["data.channels=1"])
    g, d = resolved.to_dict()["generator"], resolved.to_dict()["discriminator"]
    assert (g["in_channels"], g["out_channels"], d["in_channels"]) == (1, 1, 2)
    m: Any = build_model(resolved)
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    m.setup(x, x)
    assert torch.isfinite(m.step(x, x)["g_total"])
    with pytest.raises(CgfwError, match=r"discriminator\.in_channels = 6 .*data\.channels = 1"):
        load("pix2pix_emoji", registry, ["data.channels=1", "discriminator.in_channels=6"])


def test_pix2pix_step_is_the_authors_one(on_path: Path, tiny_recipe: Path) -> None:
    """One step against pix2pix_model.py's optimize_parameters written out here: D on the
    detached fake pair then the real pair, halved, stepped; then G on GAN + 100 x L1."""
    from cgfw_unet import Pix2Pix

    registry = load_plugins().registry
    resolved = load(str(tiny_recipe), registry, [a for a in PIX2PIX_TINY if a != "--set"])
    torch.manual_seed(0)
    m = build_model(resolved)
    assert isinstance(m, Pix2Pix)
    g, d = copy.deepcopy(m.g), copy.deepcopy(m.d)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(1)
    real_a, real_b = (torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1 for _ in range(2))
    bce = torch.nn.BCEWithLogitsLoss()

    def gan(scores: torch.Tensor, real: bool) -> torch.Tensor:
        return bce(scores, torch.full_like(scores, 1.0 if real else 0.0))

    torch.manual_seed(5)  # dropout masks: the same draws on both sides
    fake_b = g(real_a)
    opt_d.zero_grad()
    loss_d = (gan(d(torch.cat([real_a, fake_b], 1).detach()), False)
              + gan(d(torch.cat([real_a, real_b], 1)), True)) * 0.5  # fmt: skip
    loss_d.backward()
    opt_d.step()
    for p in d.parameters():
        p.requires_grad_(False)
    opt_g.zero_grad()
    loss_g_gan = gan(d(torch.cat([real_a, fake_b], 1)), True)
    loss_l1 = torch.nn.functional.l1_loss(fake_b, real_b) * 100.0
    (loss_g_gan + loss_l1).backward()
    opt_g.step()

    torch.manual_seed(5)
    terms = m.step(real_a, real_b)
    assert torch.allclose(terms["d"], loss_d.detach(), rtol=1e-5)
    assert torch.allclose(terms["g_gan"], loss_g_gan.detach(), rtol=1e-5)
    assert torch.allclose(terms["l1"], loss_l1.detach(), rtol=1e-5)
    for ours, theirs in ((m.g, g), (m.d, d)):
        for a, b in zip(ours.state_dict().values(), theirs.state_dict().values(), strict=True):
            assert torch.allclose(a.float(), b.float(), atol=1e-6)


def test_pix2pix_trains_on_the_paired_emoji_and_refuses_what_cannot_work(
    on_path: Path, tiny_recipe: Path, cli: Callable[..., Result]
) -> None:
    result = cli("run", tiny_recipe, *PIX2PIX_TINY)
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tiny_recipe.parent / "runs")
    assert json.loads((run_dir / "final_losses.json").read_text()).keys() == {
        "d", "g_gan", "l1", "g_total",
    }  # fmt: skip
    unpaired = cli("run", tiny_recipe, *PIX2PIX_TINY, "--set", "data.paired=false")
    assert unpaired.exit_code == 2
    assert "model 'pix2pix' needs aligned training pairs" in unpaired.output
    three = cli("run", tiny_recipe, *PIX2PIX_TINY, "--set", "discriminator.in_channels=3")
    assert three.exit_code == 2 and "Traceback" not in three.output
    assert "set discriminator.in_channels = 6" in three.output


def test_pix2pix_gives_a_pair_loss_the_real_pairs_scores_in_both_updates(
    on_path: Path, tiny_recipe: Path
) -> None:
    """losses.gan.name = "ralsgan": D's update gets its scores of (real_a, real_b) and of the
    fake pair together, and G's update the scores of the real pair by the D just stepped."""
    from tests.plugins.test_ralsgan import Spy, check_one_d_step

    overrides = [a for a in PIX2PIX_TINY if a != "--set"] + ["losses.gan.name=ralsgan"]
    torch.manual_seed(0)
    m: Any = build_model(load(str(tiny_recipe), load_plugins().registry, overrides))
    m.gan_loss = spy = Spy(m.gan_loss)
    gen = torch.Generator().manual_seed(1)
    real_a, real_b = (torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1 for _ in range(2))
    real_ab = torch.cat([real_a, real_b], 1)
    with torch.no_grad():  # train-mode batch norm: batch statistics, as in the step
        before = m.d(real_ab)
    terms = m.step(real_a, real_b)
    with torch.no_grad():
        after = m.d(real_ab)
    check_one_d_step(spy, before, after, terms)
