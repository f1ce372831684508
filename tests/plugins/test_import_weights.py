"""cgfw import-weights: the authors' state_dicts (built here with their key names and shapes)
become a run directory whose networks hold the same weights and compute the same outputs."""

from __future__ import annotations

import json
import pickle
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from torch import Tensor, nn

from cgfw.cli import main
from cgfw.errors import CgfwError
from cgfw.plugin.loader import Loaded
from cgfw.recipe import read_toml, validate
from cgfw.store import checkpoint
from cgfw.training import resume as resuming
from cgfw.training.model import build_model, build_network
from cgfw_paper.commands import import_weights_cmd
from cgfw_paper.import_weights import import_weights

Shapes = dict[str, tuple[int, ...]]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """These networks are tiny; on a shared 2-core machine, OpenMP threads waiting for each
    other made one forward pass take a second instead of milliseconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- a reference of the authors' key layout, written from their models/networks.py ----------


class _Layout:
    """Parameter and buffer shapes the authors' modules register, and where their
    InstanceNorm layers sit (old PyTorch saved running stats there)."""

    def __init__(self, norm: str) -> None:
        self.norm = norm
        self.shapes: Shapes = {}
        self.instance_norms: dict[str, int] = {}  # module path -> channels

    def conv(self, path: str, c_in: int, c_out: int, k: int, bias: bool, t: bool = False) -> None:
        self.shapes[f"{path}.weight"] = (c_in, c_out, k, k) if t else (c_out, c_in, k, k)
        if bias:
            self.shapes[f"{path}.bias"] = (c_out,)

    def normal(self, path: str, c: int) -> None:
        if self.norm == "batch":
            for name in ("weight", "bias", "running_mean", "running_var"):
                self.shapes[f"{path}.{name}"] = (c,)
            self.shapes[f"{path}.num_batches_tracked"] = ()
        elif self.norm == "instance":
            self.instance_norms[path] = c


def authors_resnet(
    ngf: int, n_blocks: int, norm: str = "instance", dropout: bool = False
) -> _Layout:
    """ResnetGenerator: pad, c7s1, 2 stride-2 convs, n ResnetBlocks, 2 ConvTranspose, pad, c7s1."""
    lay, b = _Layout(norm), norm == "instance"  # their use_bias: True only for InstanceNorm
    lay.conv("model.1", 3, ngf, 7, b)
    lay.normal("model.2", ngf)
    lay.conv("model.4", ngf, 2 * ngf, 3, b)
    lay.normal("model.5", 2 * ngf)
    lay.conv("model.7", 2 * ngf, 4 * ngf, 3, b)
    lay.normal("model.8", 4 * ngf)
    second = 6 if dropout else 5  # Dropout(0.5) sits between the two halves of a block
    for i in range(n_blocks):
        block = f"model.{10 + i}.conv_block"
        lay.conv(f"{block}.1", 4 * ngf, 4 * ngf, 3, b)
        lay.normal(f"{block}.2", 4 * ngf)
        lay.conv(f"{block}.{second}", 4 * ngf, 4 * ngf, 3, b)
        lay.normal(f"{block}.{second + 1}", 4 * ngf)
    up = 10 + n_blocks
    lay.conv(f"model.{up}", 4 * ngf, 2 * ngf, 3, b, t=True)
    lay.normal(f"model.{up + 1}", 2 * ngf)
    lay.conv(f"model.{up + 3}", 2 * ngf, ngf, 3, b, t=True)
    lay.normal(f"model.{up + 4}", ngf)
    lay.conv(f"model.{up + 7}", ngf, 3, 7, True)
    return lay


def authors_patchgan(ndf: int, n_layers: int, norm: str = "instance") -> _Layout:
    """NLayerDiscriminator: conv + LeakyReLU, (conv, norm, LeakyReLU) x n_layers, conv."""
    lay, b = _Layout(norm), norm == "instance"
    lay.conv("model.0", 3, ndf, 4, True)
    index, mult = 2, 1
    for n in range(1, n_layers + 1):
        prev, mult = mult, min(2**n, 8)
        lay.conv(f"model.{index}", ndf * prev, ndf * mult, 4, b)
        lay.normal(f"model.{index + 1}", ndf * mult)
        index += 3
    lay.conv(f"model.{index}", ndf * mult, 1, 4, True)
    return lay


# --- helpers ---------------------------------------------------------------------------------


def ours(loaded: Loaded, kind: str, name: str, **options: Any) -> nn.Module:
    """Our network with random weights (biases and norm statistics too, so each is checked)."""
    torch.manual_seed(0)
    net: nn.Module = loaded.registry.get(kind, name).build(options)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.1)
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()  # type: ignore[union-attr,operator]
                m.running_var.uniform_(0.5, 2.0)  # type: ignore[union-attr,operator]
    return net.eval()


def authors_file(
    path: Path, net: nn.Module, layout: _Layout, old_pytorch: bool = True, legacy: bool = False
) -> Path:
    """Save `net` as the authors' code would: `model.` keys, exactly their layout, and (for
    files from PyTorch < 0.4) running stats on every InstanceNorm."""
    state: dict[str, Tensor] = OrderedDict(
        ("model." + k, v.clone()) for k, v in net.state_dict().items()
    )
    assert {k: tuple(v.shape) for k, v in state.items()} == layout.shapes  # key for key
    if old_pytorch:
        for norm, c in layout.instance_norms.items():
            state[f"{norm}.running_mean"] = torch.zeros(c)
            state[f"{norm}.running_var"] = torch.ones(c)
        for key in [k for k in state if k.endswith("num_batches_tracked")]:
            del state[key]  # BatchNorm's counter came with PyTorch 0.4.1
    # legacy: the pre-1.6 file format (not a zip) the authors' released models were saved in.
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return path


def run_networks(run_dir: Path, loaded: Loaded) -> dict[str, nn.Module]:
    """The four networks as `cgfw translate` would build them from the run directory."""
    resolved = validate(read_toml(run_dir / "recipe.toml"), loaded.registry, "recipe.toml")
    state = checkpoint.load(run_dir / "checkpoints" / "latest.pt")
    nets = {}
    for name, path in (
        ("g_ab", "generator"),
        ("g_ba", "generator"),
        ("d_a", "discriminator"),
        ("d_b", "discriminator"),
    ):
        net = build_network(resolved, path)
        net.load_state_dict(state.model["networks"][name])
        nets[name] = net.eval()
    return nets


def same_output(a: nn.Module, b: nn.Module, size: int = 32) -> bool:
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        return torch.equal(a(x), b(x))


TINY_G = {"ngf": 4, "norm": "instance", "dropout": False}
# What a resolved recipe adds to a generator section of 3-channel data (cgfw.recipe.channels).
RGB_G = {"in_channels": 3, "out_channels": 3}
TINY_D = {"ndf": 4, "n_layers": 3, "norm": "instance"}


# --- the reference layout is the authors', and ours matches it --------------------------------


@pytest.mark.parametrize(
    ("options", "layout"),
    [
        ({"n_blocks": 9, **TINY_G}, authors_resnet(4, 9)),
        ({"n_blocks": 6, **TINY_G}, authors_resnet(4, 6)),
        (
            {"n_blocks": 2, "ngf": 4, "norm": "batch", "dropout": True},
            authors_resnet(4, 2, "batch", True),
        ),
    ],
)
def test_our_resnet_has_the_authors_keys_after_a_model_prefix(
    loaded: Loaded, options: dict[str, Any], layout: _Layout
) -> None:
    net = ours(loaded, "generator", "resnet", **options)
    assert {"model." + k: tuple(v.shape) for k, v in net.state_dict().items()} == layout.shapes


def test_our_patchgan_has_the_authors_keys_after_a_model_prefix(loaded: Loaded) -> None:
    net = ours(loaded, "discriminator", "patchgan", **TINY_D)
    assert {"model." + k: tuple(v.shape) for k, v in net.state_dict().items()} == (
        authors_patchgan(4, 3).shapes
    )


# --- imports -----------------------------------------------------------------------------------


def test_a_full_training_set_of_files_becomes_a_run(tmp_path: Path, loaded: Loaded) -> None:
    g = {name: ours(loaded, "generator", "resnet", n_blocks=9, **TINY_G) for name in ("A", "B")}
    g["B"].load_state_dict({k: v + 0.01 for k, v in g["B"].state_dict().items()})  # distinct
    d = {name: ours(loaded, "discriminator", "patchgan", **TINY_D) for name in ("A", "B")}
    d["B"].load_state_dict({k: v - 0.01 for k, v in d["B"].state_dict().items()})
    files = [
        authors_file(tmp_path / f"latest_net_G_{n}.pth", g[n], authors_resnet(4, 9)) for n in g
    ] + [authors_file(tmp_path / f"200_net_D_{n}.pth", d[n], authors_patchgan(4, 3)) for n in d]

    result = import_weights([str(f) for f in files], tmp_path / "run")

    run = tmp_path / "run"
    assert result.run_dir == run and result.fresh == []
    recipe = read_toml(run / "recipe.toml")
    assert recipe["generator"] == {"name": "resnet", "n_blocks": 9, **TINY_G, **RGB_G}
    assert recipe["discriminator"] == {"name": "patchgan", **TINY_D, "in_channels": 3}
    state = checkpoint.load(run / "checkpoints" / "latest.pt")
    # The authors' G_A is A -> B (our g_ab); their D_A judges domain B (our d_b).
    sources = {"g_ab": g["A"], "g_ba": g["B"], "d_b": d["A"], "d_a": d["B"]}
    for name, source in sources.items():
        saved = state.model["networks"][name]
        assert saved.keys() == source.state_dict().keys()
        assert all(torch.equal(saved[k], v) for k, v in source.state_dict().items()), name
    nets = run_networks(run, loaded)
    for name, source in sources.items():
        assert same_output(nets[name], source), name
    # Fresh optimizer state, iteration 0, and a recipe a resume accepts as it is.
    assert state.iteration == 0 and state.model["optimizers"]["g"]["state"] == {}
    resolved = validate(recipe, loaded.registry, "recipe.toml")
    assert resuming.check(state.recipe, resolved.to_dict(), allow_changes=False) == []
    build_model(resolved).load_state_dict(state.model)
    # The stale InstanceNorm buffers were dropped and recorded, with each file's hash.
    meta = json.loads((run / "run.json").read_text())
    g_a = next(i for i in meta["imported"] if i["authors_name"] == "G_A")
    assert g_a["network"] == "g_ab" and len(g_a["sha256"]) == 64
    assert "model.2.running_mean" in g_a["dropped_keys"]
    assert len(g_a["dropped_keys"]) == 2 * len(authors_resnet(4, 9).instance_norms)


def test_a_pretrained_six_block_g_becomes_g_ab(tmp_path: Path, loaded: Loaded) -> None:
    g = ours(loaded, "generator", "resnet", n_blocks=6, **TINY_G)
    file = authors_file(tmp_path / "latest_net_G.pth", g, authors_resnet(4, 6), legacy=True)
    result = CliRunner().invoke(
        import_weights_cmd, [str(file), "--out", str(tmp_path / "run"), "--set", "run.seed=3"]
    )
    assert result.exit_code == 0, result.output
    assert "run directory:" in result.stdout
    assert "freshly initialised: g_ba, d_a, d_b" in result.stderr
    recipe = read_toml(tmp_path / "run" / "recipe.toml")
    assert recipe["generator"]["n_blocks"] == 6 and recipe["run"]["seed"] == 3
    assert recipe["discriminator"]["ndf"] == 64  # not in the files: the recipe's (paper_default)
    assert same_output(run_networks(tmp_path / "run", loaded)["g_ab"], g)


@pytest.mark.parametrize(
    "options",
    [
        {"n_blocks": 2, "ngf": 4, "norm": "batch", "dropout": False},
        {"n_blocks": 2, "ngf": 4, "norm": "instance", "dropout": True},
        {"n_blocks": 2, "ngf": 4, "norm": "none", "dropout": False},
    ],
    ids=["batch-norm", "dropout", "no-norm"],
)
def test_other_generator_settings_are_read_from_the_keys(
    tmp_path: Path, loaded: Loaded, options: dict[str, Any]
) -> None:
    g = ours(loaded, "generator", "resnet", **options)
    layout = authors_resnet(4, 2, options["norm"], options["dropout"])
    file = authors_file(tmp_path / "latest_net_G_A.pth", g, layout)
    import_weights([str(file)], tmp_path / "run")
    saved = read_toml(tmp_path / "run" / "recipe.toml")["generator"]
    assert saved == {"name": "resnet", **options, **RGB_G}
    assert same_output(run_networks(tmp_path / "run", loaded)["g_ab"], g)


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_a_set_without_instance_norm_maps_key_for_key(
    tmp_path: Path, loaded: Loaded, norm: str
) -> None:
    """--norm none / batch: the authors' convs have no bias, nor have ours; every tensor of
    their files lands on a key of ours and nothing is made up (no zero biases)."""
    g = ours(loaded, "generator", "resnet", n_blocks=2, ngf=4, norm=norm, dropout=False)
    d = ours(loaded, "discriminator", "patchgan", ndf=4, n_layers=3, norm=norm)
    files = [
        authors_file(tmp_path / "latest_net_G_A.pth", g, authors_resnet(4, 2, norm)),
        authors_file(tmp_path / "latest_net_D_A.pth", d, authors_patchgan(4, 3, norm)),
    ]
    import_weights([str(f) for f in files], tmp_path / "run")
    recipe = read_toml(tmp_path / "run" / "recipe.toml")
    assert recipe["generator"]["norm"] == norm and recipe["discriminator"]["norm"] == norm
    state = checkpoint.load(tmp_path / "run" / "checkpoints" / "latest.pt")
    nets = run_networks(tmp_path / "run", loaded)
    for file, name, source in ((files[0], "g_ab", g), (files[1], "d_b", d)):
        theirs = torch.load(file, weights_only=True)
        saved = state.model["networks"][name]
        if norm == "batch":  # files before PyTorch 0.4.1 lack BatchNorm's counter: ours kept
            saved = {k: v for k, v in saved.items() if not k.endswith("num_batches_tracked")}
        assert {"model." + k for k in saved} == set(theirs), name
        assert all(torch.equal(saved[k.removeprefix("model.")], v) for k, v in theirs.items())
        assert same_output(nets[name], source), name


def test_explicit_roles_for_files_named_otherwise(tmp_path: Path, loaded: Loaded) -> None:
    g = ours(loaded, "generator", "resnet", n_blocks=2, **TINY_G)
    file = authors_file(tmp_path / "horse2zebra.pth", g, authors_resnet(4, 2))
    result = import_weights([f"G_B={file}"], tmp_path / "run")
    assert result.fresh == ["g_ab", "d_a", "d_b"]
    assert same_output(run_networks(tmp_path / "run", loaded)["g_ba"], g)


# --- refusals ----------------------------------------------------------------------------------


def save(path: Path, obj: Any) -> str:
    torch.save(obj, path)
    return str(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"foo": torch.zeros(3)}, "no key 'model.1.weight'"),
        (
            {
                "model.model.0.weight": torch.zeros(64, 3, 4, 4),
                "model.model.1.model.1.weight": torch.zeros(128, 64, 4, 4),
            },
            "U-Net generator",
        ),
        ({"model.0.weight": torch.zeros(64, 3, 4, 4)}, "PatchGAN discriminator, not a generator"),
        ({"epoch": 3, "model.1.weight": torch.zeros(1)}, "'epoch' holds int, not a tensor"),
        ([torch.zeros(3)], "not a state_dict"),
    ],
    ids=["random", "unet", "discriminator", "not-tensors", "list"],
)
def test_files_that_are_not_a_resnet_generator_are_named(
    tmp_path: Path, content: Any, message: str
) -> None:
    file = save(tmp_path / "latest_net_G_A.pth", content)
    with pytest.raises(CgfwError, match=message) as err:
        import_weights([file], tmp_path / "run")
    assert str(tmp_path / "latest_net_G_A.pth") in str(err.value)
    assert not (tmp_path / "run").exists()


def test_a_shape_mismatch_names_the_key_and_both_shapes(tmp_path: Path, loaded: Loaded) -> None:
    g = ours(loaded, "generator", "resnet", n_blocks=2, **TINY_G)
    state = {"model." + k: v for k, v in g.state_dict().items()}
    state["model.4.weight"] = torch.zeros(8, 4, 5, 5)  # a 5x5 downsampling conv
    with pytest.raises(
        CgfwError, match=r"key 'model.4.weight' has shape \(8, 4, 5, 5\).*\(8, 4, 3, 3\)"
    ):
        import_weights([save(tmp_path / "latest_net_G_A.pth", state)], tmp_path / "run")


def test_an_unknown_extra_layer_is_named(tmp_path: Path, loaded: Loaded) -> None:
    g = ours(loaded, "generator", "resnet", n_blocks=2, **TINY_G)
    state = {"model." + k: v for k, v in g.state_dict().items()} | {
        "model.99.weight": torch.ones(1)
    }
    with pytest.raises(CgfwError, match=r"unexpected key 'model\.99\.weight'"):
        import_weights([save(tmp_path / "latest_net_G_A.pth", state)], tmp_path / "run")


class _RunsCode:
    """Unpickling this calls Path.touch: stands in for a pickle that runs arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the plain pickle's protocol
def test_a_pickle_with_code_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    file = tmp_path / "latest_net_G_A.pth"
    file.write_bytes(pickle.dumps({"model.1.weight": _RunsCode(marker)}))  # plain pickle
    torch.save({"model.1.weight": _RunsCode(marker)}, tmp_path / "latest_net_G_B.pth")  # zip
    for path in (file, tmp_path / "latest_net_G_B.pth"):
        with pytest.raises(CgfwError, match="refused: it holds Python objects beyond tensors"):
            import_weights([str(path)], tmp_path / "run")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["horse2zebra.pth"], "cannot tell which network this is"),
        (["latest_net_G.pth", "latest_net_G_A.pth"], "both become g_ab"),
        (["X_Y=a.pth"], "unknown network 'X_Y'"),
        (["latest_net_G_A.pth", "latest_net_G_B.pth"], "differ; both generators"),
    ],
)
def test_ambiguous_or_inconsistent_file_sets(
    tmp_path: Path, loaded: Loaded, names: list[str], message: str
) -> None:
    for i, name in enumerate(names):
        g = ours(loaded, "generator", "resnet", n_blocks=2 + i, **TINY_G)
        authors_file(tmp_path / name.split("=")[-1], g, authors_resnet(4, 2 + i))
    with pytest.raises(CgfwError, match=message):
        import_weights([n if "=" in n else str(tmp_path / n) for n in names], tmp_path / "run")


def test_an_existing_run_directory_is_not_overwritten(tmp_path: Path, loaded: Loaded) -> None:
    g = ours(loaded, "generator", "resnet", n_blocks=2, **TINY_G)
    file = authors_file(tmp_path / "latest_net_G.pth", g, authors_resnet(4, 2))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "recipe.toml").write_text("", encoding="utf-8")
    # Through `cgfw`, as a user runs it: the command line turns the error into one line, exit 2.
    result = CliRunner().invoke(main, ["import-weights", str(file), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "already a run directory" in result.stderr
