"""`cgfw export`: the command line over cgfw.tools.export."""

from __future__ import annotations

from pathlib import Path

import click
import torch

from cgfw.cli.console import checkpoint_option, console, friendly, out, raw_option
from cgfw.errors import CgfwError
from cgfw.session.load import DIRECTIONS, load_generator
from cgfw.store.layout import write_error
from cgfw.tools.export import (
    FORMATS,
    TOLERANCE,
    check_installed,
    check_shapes,
    component_label,
    default_output,
    example_input,
    example_size,
    export_onnx,
    export_pt2,
    export_safetensors,
    export_torchscript,
    verify,
)


@click.command()
@click.argument("model", metavar="RUN_DIR", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(FORMATS)),
    required=True,
    help="pt2 (torch.export: plain PyTorch, AOTInductor), torchscript (deprecated by PyTorch), "
    "onnx (onnxruntime etc.) or safetensors (weights).",
)
@click.option(
    "--direction",
    type=click.Choice(list(DIRECTIONS)),
    default="a2b",
    show_default=True,
    help="a2b exports the A -> B generator (g_ab), b2a the B -> A one (g_ba).",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    help="File to write (default: RUN_DIR/export/generator_DIRECTION.EXT; with --checkpoint "
    "best or iter_N: generator_DIRECTION-best.EXT, ...).",
)
@raw_option
@checkpoint_option
@friendly
def export(
    model: Path, fmt: str, direction: str, output: Path | None, raw: bool, which: str
) -> None:
    """Export the generator of RUN_DIR (its latest checkpoint, or the one --checkpoint names; a
    checkpoint file works too) so it
    runs without cgfw. Input and output: float32 (N, C, H, W) in [-1, 1], H, W multiples of 4,
    C the run's data.channels (3 for RGB)."""
    check_installed(fmt)  # before the checkpoint is read: the fix is an install
    generator = load_generator(model, direction, raw, which)
    path = output or default_output(model, fmt, direction, which)
    if path.is_dir():
        raise CgfwError(f"--output {path} is a folder; give a file name")
    size = example_size(generator)
    example = example_input(fmt, generator.channels, size)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with torch.no_grad():
            if fmt == "pt2":
                export_pt2(generator.net, example, path, component_label(generator))
            elif fmt == "torchscript":
                export_torchscript(generator.net, example, path)
            elif fmt == "onnx":
                export_onnx(generator.net, example, path)
            else:
                export_safetensors(generator, path)
    except OSError as exc:
        raise write_error(path, exc) from None
    difference = verify(path, fmt, generator, size)
    if difference is not None and difference > TOLERANCE:
        path.unlink()  # a model that gives other images than training's must not be used
        raise CgfwError(
            f"the exported {fmt} model differs from PyTorch by {difference:.2e} (over "
            f"{TOLERANCE:.0e}), so it was not kept; --format safetensors keeps the exact weights"
        )
    check = (
        "graph valid (onnx.checker); pip install onnxruntime to compare outputs too"
        if difference is None
        else f"max difference from PyTorch {difference:.1e}"
    )
    shapes = [str(shape) for shape in check_shapes(fmt, generator.channels, size)]
    batches = f"a {shapes[0]} batch" if len(shapes) == 1 else f"{' and '.join(shapes)} batches"
    console.print(f"checked on {batches}: {check}")
    out.print(f"exported {generator.network} ({direction}) as {fmt} to {path}", markup=False)
