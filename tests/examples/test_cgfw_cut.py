"""examples/cgfw-cut, installed for real (pip, offline, into a temporary directory): a training
objective from a third-party package. Its networks, head and PatchNCE match the official code
(taesungp/contrastive-unpaired-translation); it trains, resumes exactly with its lazily built
head, and says it is one-sided where a user asks for b -> a."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from cgfw.plugin.loader import load_plugins
from cgfw.recipe import load
from cgfw.store import checkpoint
from cgfw.training.model import build_model, count_parameters
from tests.conftest import run_dirs, state_equal

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cgfw-cut"
TINY = [
    "--set", 'generator={name="resnet_aa", n_blocks=2, ngf=4}',
    "--set", 'discriminator={name="patchgan_aa", n_layers=2, ndf=4}',
    "--set", "model.nce_layers=[0, 4, 8, 12, 13]",
    "--set", "model.num_patches=16",
    "--set", "train.batch_size=2",
    "--set", "train.device='cpu'",
]  # fmt: skip


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip install` of a copy of the example into a target directory (no network)."""
    pytest.importorskip("setuptools", reason="the example builds with setuptools")
    root = tmp_path_factory.mktemp("cgfw-cut")
    source = root / "src"
    shutil.copytree(
        EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    target = root / "site"
    cmd = [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
        "--no-index", "--disable-pip-version-check", "--target", str(target), str(source),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return target


@pytest.fixture
def on_path(installed: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(installed))
    importlib.invalidate_caches()
    yield installed
    for name in [m for m in sys.modules if m == "cgfw_cut" or m.startswith("cgfw_cut.")]:
        del sys.modules[name]


def test_installed_plugin_provides_two_models_and_their_networks(on_path: Path) -> None:
    info = {p.name: p for p in load_plugins().plugins}["cut"]
    assert (info.distribution, info.status) == ("cgfw-cut", "ok")
    assert info.provides["model"] == ["cut", "fastcut"]
    assert info.provides["generator"] == ["resnet_aa"]
    assert info.provides["discriminator"] == ["patchgan_aa"]
    assert info.provides["recipe"] == ["cut", "cut_emoji", "fastcut", "fastcut_emoji"]


def test_parameter_counts_at_the_official_defaults(on_path: Path) -> None:
    """Computed with the official code (taesungp/contrastive-unpaired-translation, commit
    b3ac297, models/networks.py) at its defaults: define_G(3, 3, 64, "resnet_9blocks",
    "instance", no_antialias=False, no_antialias_up=False) 11,378,179; define_D(3, 64, "basic",
    3, "instance") 2,764,737; define_F(..., "mlp_sample") with netF_nc 256, after its first
    call on the features of nce_layers 0,4,8,12,16 (3, 128, 256, 256, 256 channels): 560,384
    (= 3*256+256 + 128*256+256 + 3 * (256*256+256) + 5 * (256*256+256))."""
    registry = load_plugins().registry
    resolved = load("cut", registry)
    m: Any = build_model(resolved)
    assert count_parameters(m.g) == 11_378_179
    assert count_parameters(m.d) == 2_764_737
    x = torch.rand(1, 3, 64, 64) * 2 - 1  # the head depends on channels, not on the size
    m.setup(x, x)
    assert count_parameters(m.head) == 560_384
    assert set(m.optimizers) == {"g", "d", "f"}  # the head's own Adam


def test_cut_on_four_channels_builds_its_networks_and_head_for_them(on_path: Path) -> None:
    resolved = load("cut", load_plugins().registry, ["data.channels=4", *TINY[1::2][:4]])
    m: Any = build_model(resolved)
    x = torch.rand(2, 4, 32, 32) * 2 - 1
    m.setup(x, x)
    assert m.g(x).shape == x.shape and torch.isfinite(m.step(x, x)["g_total"])


def test_cut_and_fastcut_take_the_official_settings(on_path: Path) -> None:
    registry = load_plugins().registry
    cut, fast = load("cut", registry), load("fastcut", registry)
    c: Any = cut.model_options
    f: Any = fast.model_options
    assert (c.lambda_nce, c.nce_idt, c.flip_equivariance) == (1.0, True, False)
    assert (f.lambda_nce, f.nce_idt, f.flip_equivariance) == (10.0, False, True)
    for o in (c, f):
        assert (o.nce_layers, o.num_patches, o.nce_t, o.head_units) == (
            [0, 4, 8, 12, 16], 256, 0.07, 256,
        )  # fmt: skip
    sched: Any = cut.options["schedule"], fast.options["schedule"]
    assert (sched[0].n_epochs, sched[0].n_epochs_decay) == (200, 200)
    assert (sched[1].n_epochs, sched[1].n_epochs_decay) == (150, 50)
    assert cut.recipe.init.name == "xavier"
    # No image pool and no second generator: the model has none of the CycleGAN's sections.
    assert set(cut.slots) == {"data", "schedule", "generator", "discriminator", "losses.gan"}


def test_patch_nce_is_cross_entropy_against_the_other_patches_of_the_same_image(
    on_path: Path,
) -> None:
    """By hand: logits are q.k / T with the positive first; negatives come from the same image
    only, the self-pair masked with -10; the loss is the cross-entropy towards index 0."""
    from cgfw_cut import patch_nce

    g = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(2 * 3, 4, generator=g), dim=1)
    k = F.normalize(torch.randn(2 * 3, 4, generator=g), dim=1)
    expected = []
    for i in range(6):
        image = i // 3
        others = [j for j in range(image * 3, image * 3 + 3)]
        negatives = [(q[i] @ k[j]).item() if j != i else -10.0 for j in others]
        logits = torch.tensor([(q[i] @ k[i]).item(), *negatives]) / 0.07
        expected.append(-torch.log_softmax(logits, 0)[0])
    assert torch.allclose(patch_nce(q, k, 2, 0.07), torch.stack(expected), atol=1e-5)


def test_patch_nce_pulls_the_output_towards_its_own_input_patch(on_path: Path) -> None:
    from cgfw_cut import patch_nce

    k = F.normalize(torch.randn(8, 16), dim=1)
    assert patch_nce(k.clone(), k, 1, 0.07).mean() < patch_nce(k.roll(1, 0), k, 1, 0.07).mean()


@pytest.mark.parametrize(("model", "terms"), [("cut", {"nce", "nce_idt"}), ("fastcut", {"nce"})])
def test_a_model_from_a_package_trains_and_logs_its_own_terms(
    on_path: Path, cli: Any, tiny_recipe: Path, model: str, terms: set[str]
) -> None:
    result = cli("run", tiny_recipe, "--set", f"model.name={model}", *TINY)
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tiny_recipe.parent / "runs")
    final = checkpoint.load(run_dir / "checkpoints" / "latest.pt")
    assert set(final.model["networks"]) == {"g", "d", "f"}
    assert set(final.model["optimizers"]) == {"g", "d", "f"}
    logged = (run_dir / "final_losses.json").read_text()
    for term in {"nce", "nce_idt", "g_gan", "d"}:
        assert (f'"{term}"' in logged) == (term in terms | {"g_gan", "d"}), term


def test_resume_restores_the_lazily_built_head_and_its_optimizer_exactly(
    on_path: Path, cli: Any, tiny_recipe: Path
) -> None:
    runs = tiny_recipe.parent / "runs"
    args = ["--set", "model.name=cut", *TINY, "--set", "train.checkpoint_every=2"]
    assert cli("run", tiny_recipe, *args, "--set", "train.max_iters=4").exit_code == 0
    (straight,) = run_dirs(runs)
    short = ["--set", "train.max_iters=2", "--set", "run.name=split"]
    assert cli("run", tiny_recipe, *args, *short).exit_code == 0
    (split,) = [d for d in run_dirs(runs) if d.name.startswith("split")]
    result = cli("run", "--resume", split, "--set", "train.max_iters=4")
    assert result.exit_code == 0, result.output
    a = checkpoint.load(straight / "checkpoints" / "latest.pt").model
    b = checkpoint.load(split / "checkpoints" / "latest.pt").model
    for net in ("g", "d", "f"):
        assert state_equal(a["networks"][net], b["networks"][net]), net
    moments = [
        (x["exp_avg"], y["exp_avg"])
        for x, y in zip(
            a["optimizers"]["f"]["state"].values(),
            b["optimizers"]["f"]["state"].values(),
            strict=True,
        )
    ]
    assert moments and all(torch.equal(x, y) for x, y in moments)


def test_one_sided_translate_and_eval_say_so(
    on_path: Path, cli: Any, tiny_recipe: Path, tmp_path: Path
) -> None:
    assert cli("run", tiny_recipe, "--set", "model.name=cut", *TINY).exit_code == 0
    (run_dir,) = run_dirs(tiny_recipe.parent / "runs")
    from PIL import Image

    Image.new("RGB", (32, 32), (200, 30, 40)).save(tmp_path / "in.png")
    ok = cli("translate", run_dir, tmp_path / "in.png", tmp_path / "out.png")
    assert ok.exit_code == 0, ok.output
    back = cli("translate", run_dir, tmp_path / "in.png", tmp_path / "b.png", "--direction", "b2a")
    assert back.exit_code == 2
    assert "model 'cut' learns a2b only (it is one-sided)" in back.output
    scored = cli("eval", run_dir, "--metrics", "psnr")
    assert scored.exit_code == 0, scored.output
    assert "one-sided" in scored.output


def test_a_recipe_extending_a_cyclegan_recipe_drops_the_sections_cut_has_not(
    on_path: Path,
) -> None:
    """cut_emoji extends emoji_study (the CycleGAN quickstart): its buffer and its cycle and
    identity losses are the other model's, so they go, as a changed component's options do."""
    registry = load_plugins().registry
    resolved = load("cut_emoji", registry)
    data = resolved.to_dict()
    assert "buffer" not in data and set(data["losses"]) == {"gan"}
    assert resolved.components["data"].name == "emoji"  # the same training images
    assert data["train"]["max_iters"] == 2000 and data["eval"]["every"] == 500
    swapped = load("emoji_study", registry, ["model.name=fastcut", *TINY[1::2][:2]])
    assert swapped.model.name == "fastcut" and "buffer" not in swapped.to_dict()


def test_ablate_varies_the_model_like_any_other_key(
    on_path: Path, cli: Any, tiny_recipe: Path
) -> None:
    """`--vary model.name=cut` on a CycleGAN recipe: the variant drops the CycleGAN's sections
    (here the pool the recipe sets) and trains CUT beside the base."""
    tiny_recipe.write_text(tiny_recipe.read_text() + "\n[buffer]\ncapacity = 3\n")
    args = [*TINY[:4], "--set", "train.max_iters=2", "--set", "train.device='cpu'"]
    result = cli("ablate", tiny_recipe, "--vary", "model.name=cut", *args)
    assert result.exit_code == 0, result.output
    (parent,) = run_dirs(tiny_recipe.parent / "runs")
    variant = (parent / "model.name=cut" / "recipe.toml").read_text()
    assert '[model]\nname = "cut"' in variant and "[buffer]" not in variant
    assert "capacity = 3" in (parent / "base" / "recipe.toml").read_text()


def test_the_recipe_schema_describes_a_models_own_sections(on_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from cgfw.recipe import find_recipe, read_recipe
    from cgfw.recipe.jsonschema import recipe_schema

    registry = load_plugins().registry
    schema = recipe_schema(registry, "cut")
    jsonschema.Draft202012Validator.check_schema(schema)
    data = read_recipe(find_recipe("cut", registry), registry)
    jsonschema.validate(data, schema)  # the bundled recipe passes
    assert set(schema["properties"]["losses"]["properties"]) == {"gan"}
    assert "nce_layers" in schema["properties"]["model"]["properties"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**data, "buffer": {"name": "none"}}, schema)  # the CycleGAN's


def test_cut_gives_a_pair_loss_the_real_scores_in_both_updates(
    on_path: Path, tiny_recipe: Path
) -> None:
    """losses.gan.name = "ralsgan": D's update gets its scores of real_b and the fakes together,
    and G's update the scores of real_b by the D just stepped (CUT updates D first)."""
    from tests.plugins.test_ralsgan import Spy, check_one_d_step

    overrides = ["model.name=cut", *TINY[1::2], "losses.gan.name=ralsgan"]
    torch.manual_seed(0)
    m: Any = build_model(load(str(tiny_recipe), load_plugins().registry, overrides))
    g = torch.Generator().manual_seed(0)
    real_a, real_b = (torch.rand(2, 3, 32, 32, generator=g) * 2 - 1 for _ in range(2))
    m.setup(real_a, real_b)
    m.gan_loss = spy = Spy(m.gan_loss)
    with torch.no_grad():
        before = m.d(real_b)
    terms = m.step(real_a, real_b)
    with torch.no_grad():
        after = m.d(real_b)  # D is not updated again after G's update
    check_one_d_step(spy, before, after, terms)
