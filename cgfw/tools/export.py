"""`cgfw export`: write a trained generator in a form that runs without cgfw.

pt2          torch.export program with dynamic batch, height and width (torch.export.save);
             `torch.export.load(path).module()(x)` runs it with plain PyTorch (torch.export's
             format, where AOTInductor and ExecuTorch start).
torchscript  torch.jit.trace'd module; `torch.jit.load(path)` runs it with plain PyTorch.
             PyTorch deprecates TorchScript (torch.jit.trace/script) in favour of torch.export:
             prefer pt2 or onnx; torchscript stays for the users who load .pt files.
onnx         torch.onnx (torch.export-based) graph with dynamic batch, height and width; runs
             in onnxruntime or any ONNX runtime.
safetensors  the generator's weights, with the recipe's generator section and the component's
             plugin in the file's metadata, so the same architecture can be rebuilt and loaded.

Every format takes and returns float32 (N, C, H, W) images in [-1, 1], H and W multiples of 4, C
the run's data.channels (3 unless the recipe says otherwise).
After writing, the export is run (where a runtime is installed) and compared with PyTorch at
shapes other than the example's (pt2: two batch sizes and two spatial sizes), so a graph that
baked in the example's shape is caught here, not by the user.

onnx and safetensors need `pip install 'cgfw[export]'` (onnx, onnxscript, safetensors).
"""

from __future__ import annotations

import importlib.util
import json
import re
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.fx.experimental._config as shape_config
from torch import Tensor, nn

import cgfw
from cgfw.errors import CgfwError
from cgfw.recipe import get_dotted
from cgfw.session.load import Generator
from cgfw.store.layout import RunDir
from cgfw.terminal import console
from cgfw.tools.translate import DEFAULT_SIZE, MULTIPLE
from cgfw.training.model import build_network

FORMATS = {"pt2": ".pt2", "torchscript": ".pt", "onnx": ".onnx", "safetensors": ".safetensors"}
# Python modules each format needs beyond torch; the dynamo ONNX exporter imports onnxscript.
NEEDS = {"onnx": ("onnx", "onnxscript"), "safetensors": ("safetensors",)}
TOLERANCE = 1e-4  # float32 reordering differs by ~1e-6; a wrong graph differs by far more
INPUT_NAME, OUTPUT_NAME = "image", "translated"
TORCHSCRIPT_NOTE = (
    "[yellow]note:[/yellow] PyTorch deprecates TorchScript (torch.jit) in favour of torch.export: "
    "--format pt2 is its replacement (onnx for other runtimes)"
)


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def check_installed(fmt: str) -> None:
    missing = [m for m in NEEDS.get(fmt, ()) if not installed(m)]
    if missing:
        raise CgfwError(
            f"--format {fmt} needs {' and '.join(missing)} (not installed): "
            "pip install 'cgfw[export]'"
        )


def default_output(model: Path, fmt: str, direction: str, which: str = "latest") -> Path:
    """RUN_DIR/export/generator_a2b.EXT (of the latest checkpoint; generator_a2b-best.EXT,
    generator_a2b-iter_4000.EXT of others, so one export never overwrites another's); for a
    checkpoint file, its run directory's."""
    tag = "" if which == "latest" else f"-{which}"
    return RunDir.holding(model).export / f"generator_{direction}{tag}{FORMATS[fmt]}"


def example_size(generator: Generator) -> int:
    size = generator.crop_size or DEFAULT_SIZE
    return size + (-size % MULTIPLE)


def metadata(generator: Generator) -> dict[str, str]:
    """Everything needed to rebuild the network; safetensors metadata holds strings only."""
    section = get_dotted(generator.resolved.to_dict(), generator.slot)
    component = generator.resolved.components[generator.slot]
    c = generator.channels
    return {
        "format": "cgfw-generator",
        "cgfw_version": cgfw.__version__,
        "direction": generator.direction,
        "network": generator.network,
        "generator": json.dumps(section, sort_keys=True),
        "plugin": component.plugin,
        "input": f"float32 (N, {c}, H, W) in [-1, 1], H and W multiples of {MULTIPLE}",
        "output": f"float32 (N, {c}, H, W) in [-1, 1]",
    }


def example_input(fmt: str, channels: int, size: int) -> Tensor:
    """What the export traces with. pt2: a batch of 2 at 2*size x 3*size, so no dimension is 1
    (torch.export would fix it at 1) and no two are equal (it could tie them); multiples of the
    crop size suit generators that need one (a U-Net halves the image 2**levels times)."""
    shape = (2, channels, 2 * size, 3 * size) if fmt == "pt2" else (1, channels, size, size)
    return torch.rand(*shape) * 2 - 1


def check_shapes(fmt: str, channels: int, size: int) -> list[tuple[int, int, int, int]]:
    """Where an export is compared with PyTorch: batch, height and width unlike the example's.
    pt2 at two of each: one image at the crop size (where a U-Net's bottleneck is 1x1, the size
    torch.export treats apart) and three at twice its width."""
    if fmt == "pt2":
        return [(1, channels, size, size), (3, channels, size, 2 * size)]
    return [(2, channels, size, 2 * size)]


def component_label(generator: Generator) -> str:
    component = generator.resolved.components[generator.slot]
    return f"generator '{component.name}' (plugin {component.plugin})"


def export_problem(exc: BaseException) -> str:
    """torch.export's error in one line: its first line, the first reason it lists and the
    line of the network's code it stopped at, without the advice on torch's debug logs."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    parts = [lines[0].split(" For more information")[0]]
    parts += [line[2:].split(". ")[0] for line in lines[1:] if line.startswith("- ")][:1]
    if "The following call raised this error:" in lines:
        at = lines.index("The following call raised this error:")
        parts.append("at " + ": ".join(lines[at + 1 : at + 3]))
    return re.sub(r"\s+", " ", "; ".join(parts))


def export_pt2(net: nn.Module, example: Tensor, path: Path, label: str) -> None:
    """torch.export with the batch, height and width dynamic (height and width multiples of
    MULTIPLE), saved with torch.export.save; `label` names the network in the error."""
    dim = torch.export.Dim
    height, width = MULTIPLE * dim("height_4"), MULTIPLE * dim("width_4")
    dynamic: tuple[dict[int, Any], ...] = ({0: dim("batch"), 2: height, 3: width},)
    try:
        # Size-oblivious: the sizes are not assumed >= 2, as they otherwise would be for the
        # example's sake, so a U-Net's bottleneck may still be 1x1 (its nominal size: 256 px
        # for unet_256). torch.export's documented, experimental switch for that; the config
        # module gains patch() at import, which mypy cannot see.
        with shape_config.patch(backed_size_oblivious=True):  # type: ignore[attr-defined]
            program = torch.export.export(net, (example,), dynamic_shapes=dynamic)
    except Exception as exc:
        raise CgfwError(
            f"{label} cannot be exported with a dynamic batch, height and width by "
            f"torch.export: {export_problem(exc)}; --format torchscript or safetensors may "
            "still work"
        ) from None
    torch.export.save(program, str(path))


def export_torchscript(net: nn.Module, example: Tensor, path: Path) -> None:
    console.print(TORCHSCRIPT_NOTE)  # cgfw's one line instead of torch's FutureWarnings
    with warnings.catch_warnings():
        # The trace's warnings about shape checks inside InstanceNorm are why the result is
        # run at a second shape below; printed here they would only alarm.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # type: ignore[attr-defined]
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still works
        traced = torch.jit.trace(net, example)
        torch.jit.save(traced, str(path))


def export_onnx(net: nn.Module, example: Tensor, path: Path) -> None:
    dynamic = torch.export.Dim.DYNAMIC
    try:
        torch.onnx.export(
            net,
            (example,),
            str(path),
            dynamo=True,
            verbose=False,  # its progress lines would go to stdout, where results go
            external_data=False,  # one file; a CycleGAN generator is far under ONNX's 2 GB
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: dynamic, 2: dynamic, 3: dynamic},),
        )
    except Exception as exc:
        lines = str(exc).strip().splitlines()
        raise CgfwError(
            f"ONNX export of the generator failed: {type(exc).__name__}: "
            f"{lines[0] if lines else ''}; --format torchscript or safetensors may still work"
        ) from None


def export_safetensors(generator: Generator, path: Path) -> None:
    from safetensors.torch import save_file

    # contiguous: safetensors stores raw buffers and refuses strided views.
    state = {k: v.detach().contiguous() for k, v in generator.net.state_dict().items()}
    save_file(state, str(path), metadata=metadata(generator))


def run_export(path: Path, fmt: str, generator: Generator, x: Tensor) -> Tensor | None:
    """The exported model's output for `x`, or None where no runtime is installed."""
    if fmt == "pt2":
        with torch.no_grad():
            output: Tensor = torch.export.load(str(path)).module()(x)
        return output
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            loaded = torch.jit.load(str(path))
        with torch.no_grad():
            result: Tensor = loaded(x)
        return result
    if fmt == "onnx":
        if not installed("onnxruntime"):
            import onnx

            onnx.checker.check_model(str(path), full_check=True)  # the graph at least is valid
            return None
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (array,) = session.run(None, {INPUT_NAME: x.numpy()})
        return torch.from_numpy(array)
    from safetensors.torch import load_file

    net = build_network(generator.resolved, generator.slot)
    net.load_state_dict(load_file(str(path)))
    net.eval()
    with torch.no_grad():
        rebuilt: Tensor = net(x)
    return rebuilt


def verify(path: Path, fmt: str, generator: Generator, size: int) -> float | None:
    """Largest difference from PyTorch at check_shapes (None: not checked); a trace that froze
    the example's shape fails there."""
    differences = [
        check(path, fmt, generator, shape) for shape in check_shapes(fmt, generator.channels, size)
    ]
    return None if None in differences else max(d for d in differences if d is not None)


def check(path: Path, fmt: str, generator: Generator, shape: tuple[int, ...]) -> float | None:
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        expected = generator.net(x)
    try:
        result = run_export(path, fmt, generator, x)
    except Exception as exc:
        path.unlink()
        raise CgfwError(
            f"the exported {fmt} model was not kept: it fails on a {tuple(x.shape)} input "
            f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''})"
        ) from None
    if result is None:
        return None
    if result.shape != expected.shape:
        path.unlink()
        raise CgfwError(
            f"{path}: the exported {fmt} model returns {tuple(result.shape)} for a "
            f"{tuple(x.shape)} input instead of {tuple(expected.shape)}"
        )
    return float((result - expected).abs().max())
