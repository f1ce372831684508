"""`cgfw export`: each format, loaded the way a user without cgfw would, matches PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result
from torch import Tensor

from cgfw.cli.export import export
from cgfw.plugin.loader import load_plugins
from cgfw.session.load import load_generator
from cgfw.tools import export as export_module

TOLERANCE = 1e-4


def invoke(*args: object) -> Result:
    return CliRunner().invoke(export, [str(a) for a in args], catch_exceptions=False)


def images() -> Tensor:
    """A batch and a size unlike the 32 px square the export traced with."""
    return torch.rand(2, 3, 36, 44, generator=torch.Generator().manual_seed(1)) * 2 - 1


def reference(trained_run: Path, direction: str = "a2b") -> Tensor:
    with torch.no_grad():
        result: Tensor = load_generator(trained_run, direction).net(images())
    return result


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_runs_with_plain_torch(trained_run: Path) -> None:
    result = invoke(trained_run, "--format", "torchscript")
    assert result.exit_code == 0, result.output
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
