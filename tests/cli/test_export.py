"""`cgfw export`: each format, loaded the way a user without cgfw would, matches PyTorch."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result
from torch import Tensor, nn

from cgfw.cli import export as export_command
from cgfw.cli.export import export
from cgfw.plugin.loader import load_plugins
from cgfw.session.load import load_generator
from cgfw.tools import export as export_module
from cgfw_paper.generators import ResnetOptions
from cgfw_paper.nets import resnet_upsample

TOLERANCE = 1e-4
ROOT = Path(__file__).resolve().parents[2]


def invoke(*args: object) -> Result:
    return CliRunner().invoke(export, [str(a) for a in args], catch_exceptions=False)


def images() -> Tensor:
    """A batch and a size unlike the 32 px square the export traced with."""
    return torch.rand(2, 3, 36, 44, generator=torch.Generator().manual_seed(1)) * 2 - 1


def reference(trained_run: Path, direction: str = "a2b") -> Tensor:
    with torch.no_grad():
        result: Tensor = load_generator(trained_run, direction).net(images())
    return result


@pytest.fixture(scope="module")
def pt2_export(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    """One pt2 export for the module's tests: torch.export takes seconds."""
    path = tmp_path_factory.mktemp("pt2") / "g.pt2"
    return path, invoke(trained_run, "--format", "pt2", "--output", path)


def test_pt2_runs_with_plain_torch_at_sizes_it_was_not_exported_at(
    trained_run: Path, pt2_export: tuple[Path, Result]
) -> None:
    path, result = pt2_export
    assert result.exit_code == 0, result.output
    # exported at (2, 3, 64, 96): checked at other batch sizes and other heights and widths
    assert "checked on (1, 3, 32, 32) and (3, 3, 32, 64) batches: max difference" in result.output
    module = torch.export.load(str(path)).module()
    # The smallest image the ResNet takes (8 px: 2 px at the bottleneck, where the residual
    # blocks reflection-pad by 1) as well as images().
    small = torch.rand(1, 3, 8, 12, generator=torch.Generator().manual_seed(2)) * 2 - 1
    net = load_generator(trained_run, "a2b").net
    with torch.no_grad():
        assert (module(images()) - reference(trained_run)).abs().max() < TOLERANCE
        assert (module(small) - net(small)).abs().max() < TOLERANCE


def other_generator(name: str, monkeypatch: pytest.MonkeyPatch) -> nn.Module:
    """Tiny versions of the other generators cgfw ships: the seed article's resnet_upsample and
    the example plugins' U-Net (cgfw-unet's unet_32) and anti-aliased ResNet (cgfw-cut)."""
    torch.manual_seed(0)
    if name == "resnet_upsample":
        return resnet_upsample(ResnetOptions(n_blocks=1, ngf=4, in_channels=3, out_channels=3))
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "cgfw-unet"))
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "cgfw-cut"))
    if name == "unet_32":
        from cgfw_unet.networks import UnetGenerator

        return UnetGenerator(5, ngf=4, name=name)
    from cgfw_cut.networks import GeneratorOptions, resnet_aa

    return resnet_aa(GeneratorOptions(n_blocks=1, ngf=4))


@pytest.mark.parametrize("name", ["resnet_upsample", "unet_32", "resnet_aa"])
def test_pt2_of_the_other_generators_matches_pytorch(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = other_generator(name, monkeypatch).eval()
    path = tmp_path / "g.pt2"
    with torch.no_grad():
        export_module.export_pt2(net, export_module.example_input("pt2", 3, 32), path, name)
    module = torch.export.load(str(path)).module()
    # Exported at (2, 3, 64, 96); multiples of 32 for the U-Net, whose bottleneck is 1x1 at 32.
    for shape in [(1, 3, 32, 32), (3, 3, 32, 64)]:
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(3)) * 2 - 1
        with torch.no_grad():
            assert (module(x) - net(x)).abs().max() < TOLERANCE, shape


class PinnedHeight(nn.Module):
    """Reads the input's height as a Python number: torch.export cannot keep it dynamic."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.ones(int(x.shape[2]), 1)


def test_a_generator_that_cannot_be_exported_dynamically_is_one_error_naming_it(
    trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pinned = dataclasses.replace(load_generator(trained_run, "a2b"), net=PinnedHeight())
    monkeypatch.setattr(export_command, "load_generator", lambda *args: pinned)
    path = tmp_path / "g.pt2"
    result = invoke(trained_run, "--format", "pt2", "--output", path)
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: generator 'resnet' (plugin paper-generators) cannot be")
    assert "specialized it to be a constant (64)" in line  # torch's reason, in one line
    assert not path.exists()


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_runs_with_plain_torch(trained_run: Path) -> None:
    result = invoke(trained_run, "--format", "torchscript")
    assert result.exit_code == 0, result.output
    # cgfw's one line in place of torch's deprecation warnings
    assert "PyTorch deprecates TorchScript (torch.jit)" in result.output
    assert "--format pt2 is its replacement" in result.output
    path = trained_run / "export" / "generator_a2b.pt"
    assert f"to {path}" in result.output
    module = torch.jit.load(str(path))
    with torch.no_grad():
        assert (module(images()) - reference(trained_run)).abs().max() < TOLERANCE


def test_safetensors_rebuilds_from_its_metadata(trained_run: Path, tmp_path: Path) -> None:
    pytest.importorskip("safetensors", reason="pip install 'cgfw[export]'")
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = tmp_path / "g.safetensors"
    result = invoke(trained_run, "--format", "safetensors", "--direction", "b2a", "--output", path)
    assert result.exit_code == 0, result.output
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta["direction"] == "b2a" and meta["network"] == "g_ba"
    section = json.loads(meta["generator"])
    assert section == {
        "name": "resnet",
        "n_blocks": 2,
        "ngf": 8,
        "norm": "instance",
        "dropout": False,
        "in_channels": 3,  # the run's data.channels, filled in the resolved recipe
        "out_channels": 3,
    }
    # Rebuild from the metadata alone, as a user with the plugin's code would.
    registry = load_plugins().registry
    component = registry.get("generator", section.pop("name"))
    net = component.factory(component.options.model_validate(section))
    net.load_state_dict(load_file(str(path)))
    net.eval()
    with torch.no_grad():
        assert (net(images()) - reference(trained_run, "b2a")).abs().max() < TOLERANCE


def test_onnx_matches_pytorch(trained_run: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnx", reason="pip install 'cgfw[export]'")
    pytest.importorskip("onnxscript", reason="pip install 'cgfw[export]'")
    path = tmp_path / "g.onnx"
    result = invoke(trained_run, "--format", "onnx", "--output", path)
    assert result.exit_code == 0, result.output
    assert "[torch.onnx]" not in result.stdout  # the exporter's chatter stays off stdout
    import onnx

    onnx.checker.check_model(str(path), full_check=True)
    ort = pytest.importorskip("onnxruntime", reason="only onnx.checker without onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {session.get_inputs()[0].name: images().numpy()})
    assert (torch.from_numpy(output) - reference(trained_run)).abs().max() < TOLERANCE


def test_onnx_without_onnxruntime_is_still_checked(
    trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnx", reason="pip install 'cgfw[export]'")
    pytest.importorskip("onnxscript", reason="pip install 'cgfw[export]'")
    monkeypatch.setattr(export_module, "installed", lambda module: module != "onnxruntime")
    result = invoke(trained_run, "--format", "onnx", "--output", tmp_path / "g.onnx")
    assert result.exit_code == 0, result.output
    assert "graph valid (onnx.checker)" in result.output


def test_missing_packages_say_what_to_install(
    trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_module, "installed", lambda module: module == "torch")
    for fmt in ("onnx", "safetensors"):
        result = invoke(trained_run, "--format", fmt, "--output", tmp_path / f"g.{fmt}")
        assert result.exit_code == 2, result.output
        assert "pip install 'cgfw[export]'" in result.output
        assert not (tmp_path / f"g.{fmt}").exists()


def test_exports_that_differ_from_pytorch_are_not_kept(
    trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def wrong(path: Path, fmt: str, generator: object, x: Tensor) -> Tensor:
        return torch.zeros_like(x)

    monkeypatch.setattr(export_module, "run_export", wrong)
    path = tmp_path / "g.pt"
    result = invoke(trained_run, "--format", "torchscript", "--output", path)
    assert result.exit_code == 2 and "not kept" in result.output
    assert not path.exists()
