"""`cgfw translate`: the command line over cgfw.tools.translate."""

from __future__ import annotations

from pathlib import Path

import click
from PIL import Image
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from cgfw.cli.console import checkpoint_option, console, friendly, out, raw_option
from cgfw.errors import CgfwError
from cgfw.images import BadImage, decode
from cgfw.session.hub import local
from cgfw.session.load import DIRECTIONS, load_generator
from cgfw.tools.translate import (
    MIN_SIDE,
    Decoded,
    Sizing,
    Translator,
    _warn_skipped,
    default_sizing,
    plan,
    resize_planes_to,
    resize_to,
    side_of,
)
from cgfw.training.loop import resolve_device


@click.command()
@click.argument("model", metavar="RUN_DIR|CHECKPOINT|FOLDER")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, path_type=Path))
@click.argument("output", metavar="OUTPUT", type=click.Path(path_type=Path))
@click.option(
    "--direction",
    type=click.Choice(list(DIRECTIONS)),
    default="a2b",
    show_default=True,
    help="a2b runs the A -> B generator (g_ab), b2a the B -> A one (g_ba).",
)
@click.option(
    "--size",
    type=click.IntRange(min=MIN_SIDE),
    metavar="N",
    help="Resize the shorter side to N px (default: the scale of the run's test images, "
    "data.test_preprocess: the shorter side at data.crop_size or test_load_size, the width "
    "at it for scale_width modes, full resolution for crop and none; else 256).",
)
@click.option(
    "--full-resolution", is_flag=True, help="Translate at the images' own size (no resize)."
)
@click.option("--side-by-side", is_flag=True, help="Write input | output pairs, twice as wide.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=4,
    metavar="N",
    show_default=True,
    help="Images of the same size translated at once.",
)
@click.option(
    "--tile",
    type=click.IntRange(min=MIN_SIDE),
    metavar="N",
    help="Translate images larger than N px in N px tiles (with the network's receptive field "
    "as overlap, instance norm over the whole image): the same result in memory that grows "
    "with N, not with the image. Slower: about half a forward pass per norm layer.",
)
@raw_option
@checkpoint_option
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@friendly
def translate(
    model: str,
    input_path: Path,
    output: Path,
    direction: str,
    size: int | None,
    full_resolution: bool,
    side_by_side: bool,
    batch_size: int,
    tile: int | None,
    raw: bool,
    which: str,
    device: str,
) -> None:
    """Translate INPUT (an image, or a folder searched recursively) into OUTPUT (a file, or a
    folder mirroring INPUT's subfolders and file names) with the generator of RUN_DIR (its
    latest checkpoint, or the one --checkpoint names), of a CHECKPOINT file, or of a model
    FOLDER (`cgfw save-pretrained`; hf://USER/REPO[@REVISION] for one on the Hugging Face Hub).

    Each output is written in the format its name's suffix gives (PNG for a name without one).
    """
    if size is not None and full_resolution:
        raise CgfwError("--size and --full-resolution exclude each other; give one")
    jobs = plan(input_path, output)  # before loading anything: a bad OUTPUT fails fast
    dev = resolve_device(device, "--device")
    generator = load_generator(local(model), direction, raw, which)
    if full_resolution or size is not None:
        sizing = Sizing(shorter=size)
    else:
        sizing = default_sizing(generator.resolved.options.get("data"), generator.crop_size)
    translator = Translator(generator.net.to(dev), dev, batch_size, side_by_side, tile)
    channels = generator.channels
    single = not input_path.is_dir()
    skipped: list[str] = []
    progress = Progress(
        TextColumn("[bold]translate"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    with progress:
        task = progress.add_task("translate", total=len(jobs))
        for job in jobs:
            try:
                decoded = decode(job.source, channels)
                new = sizing.of(*side_of(decoded))
                image: Decoded = (
                    resize_to(decoded, new)
                    if isinstance(decoded, Image.Image)
                    else resize_planes_to(decoded, new)
                )
            except (BadImage, OSError) as exc:  # OSError: no read permission, vanished file
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                if single:
                    raise CgfwError(f"{job.source}: cannot be translated: {reason}") from None
                skipped.append(f"{job.source} ({reason})")
                progress.advance(task)
                continue
            width, height = side_of(image)
            if min(width, height) < MIN_SIDE:
                reason = f"{width}x{height} is under {MIN_SIDE} px"
                if single:
                    raise CgfwError(f"{job.source}: {reason}; use --size {MIN_SIDE} or more")
                skipped.append(f"{job.source} ({reason})")
                progress.advance(task)
                continue
            progress.advance(task, translator.add(job.target, image))
        progress.advance(task, translator.finish())
    if skipped:
        _warn_skipped(skipped)
    if translator.done == 0:
        raise CgfwError(f"{input_path}: none of its {len(jobs)} image(s) could be translated")
    resolution = str(sizing)
    where = jobs[0].target if single else output
    out.print(
        f"translated {translator.done} image(s) {direction} ({resolution}"
        f"{', side by side' if side_by_side else ''}) into {where}",
        markup=False,
    )
