"""`cgfw data`: the command line over cgfw.tools.data."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from cgfw.cli.console import friendly, out
from cgfw.errors import CgfwError
from cgfw.tools.data import (
    DATASETS,
    SPLITS,
    _count_files,
    download,
)


@click.command("download")
@click.argument("name", required=False)
@click.option(
    "--root",
    default="datasets",
    show_default=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="The dataset lands in ROOT/NAME.",
)
@click.option(
    "--accept-new-hash",
    is_flag=True,
    help="Use (and record) an archive whose SHA-256 differs from the one recorded on its "
    "first download, instead of refusing it.",
)
@friendly
def download_cmd(name: str | None, root: Path, accept_new_hash: bool) -> None:
    """Download one of the authors' CycleGAN datasets into ROOT/NAME (trainA/, trainB/, testA/,
    testB/); without NAME, list them.

    An interrupted download resumes when run again. The server is the authors'
    (efrosgans.eecs.berkeley.edu); set CGFW_DATASETS_URL to use a mirror. Each archive's
    SHA-256 is recorded on its first download (CGFW_CACHE/downloads.json) and a later
    download that differs is refused.
    """
    if name is None:
        table = Table("name", "contents")
        for known, description in DATASETS.items():
            table.add_row(known, description)
        out.print(table)
        return
    target = download(name, root, accept_new_hash)
    counts = ", ".join(f"{s} {_count_files(target / s)}" for s in SPLITS if (target / s).is_dir())
    out.print(f"{target}: {counts}")
    out.print(f"train on it with: --set data.root={target}")


@click.group()
def data() -> None:
    """Check and download datasets."""


@data.command("check")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--crop-size", default=256, show_default=True, help="Flag images smaller than this.")
@click.option(
    "--channels",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="The recipe's data.channels: images of another channel count are named.",
)
@friendly
def data_check(path: Path, crop_size: int, channels: int) -> None:
    """Decode every image under PATH (trainA/ trainB/ testA/ testB/, or one folder) and report
    what training would convert or skip. Exit 0: all usable; 1: some files would be skipped;
    2: a training folder is missing or has no usable image, or a folder's images have another
    channel count than --channels."""
    from cgfw.images import check_channels, images_in, inspect

    if not path.is_dir():
        raise CgfwError(f"{path}: not a folder")
    folders = [path / s for s in ("trainA", "trainB", "testA", "testB") if (path / s).is_dir()]
    required = [path / s for s in ("trainA", "trainB")]
    missing = [f.name for f in required if f not in folders] if folders else []
    folders = folders or [path]
    table = Table("folder", "images", "ok", "converted", "skipped")
    problems: list[str] = []
    unusable = [f"{m}/ is missing" for m in missing]
    skipped_any = False
    for folder in folders:
        findings = [inspect(p, crop_size, channels) for p in images_in(folder)]
        try:  # mixed or other channel counts stop training, so they stop here too
            check_channels([f.path for f in findings], folder.name, channels)
        except CgfwError as exc:
            unusable.append(str(exc))
        counts = {s: sum(f.status == s for f in findings) for s in ("ok", "converted", "skipped")}
        table.add_row(folder.name, str(len(findings)), *(str(counts[s]) for s in counts))
        problems += [f"{f.status}: {f.path} ({f.detail})" for f in findings if f.status != "ok"]
        skipped_any |= counts["skipped"] > 0
        if folder in required and len(findings) == counts["skipped"]:
            unusable.append(f"{folder.name}/ has no usable image")
    out.print(table)
    for line in problems:
        out.print(line, markup=False)
    if unusable:
        raise CgfwError(f"{path}: " + "; ".join(unusable))
    out.print(
        "every image is usable" if not problems else f"{len(problems)} file(s) need attention"
    )
    sys.exit(1 if skipped_any else 0)


data.add_command(download_cmd)
