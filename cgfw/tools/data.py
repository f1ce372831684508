"""`cgfw data download NAME`: the authors' CycleGAN datasets from their server, as their
datasets/download_cyclegan_dataset.sh fetches them, but resumable, checked and safely unpacked.

The archive is downloaded to ROOT/NAME.zip.part (an interrupted download continues from where it
stopped, by an HTTP Range request), its size is checked against Content-Length, and it is
unpacked by tools.archive.safe_extract into a hidden staging folder, where every member's CRC is
checked as it is written. Only a complete, intact dataset is moved to ROOT/NAME (trainA/,
trainB/, testA/, testB/), so a failure never leaves half a dataset behind.
"""

from __future__ import annotations

import os
import re
import shutil
import urllib.error
import urllib.request
import zlib
from http.client import HTTPException
from pathlib import Path

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

import cgfw
from cgfw.errors import CgfwError, did_you_mean
from cgfw.terminal import console
from cgfw.tools.archive import safe_extract

# The address in the authors' current datasets/download_cyclegan_dataset.sh.
BASE_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets"
URL_ENV = "CGFW_DATASETS_URL"  # a mirror, or a local server in the tests
TIMEOUT_S = 60  # per connect or read; a stalled server fails instead of hanging forever
CHUNK = 1 << 16
SPLITS = ("trainA", "trainB", "testA", "testB")

DATASETS: dict[str, str] = {
    "horse2zebra": "939 horses and 1,177 zebras (ImageNet)",
    "apple2orange": "996 apples and 1,020 oranges (ImageNet)",
    "summer2winter_yosemite": "1,273 summer and 854 winter photos of Yosemite (Flickr)",
    "monet2photo": "Monet paintings and landscape photos (Flickr)",
    "cezanne2photo": "Cezanne paintings and landscape photos (Flickr)",
    "ukiyoe2photo": "ukiyo-e prints and landscape photos (Flickr)",
    "vangogh2photo": "Van Gogh paintings and landscape photos (Flickr)",
    "maps": "1,096 aerial photos and Google Maps tiles",
    "cityscapes": "2,975 street scenes and their label maps (not downloadable: see below)",
    "facades": "facade photos and their label maps (CMP Facades)",
    "iphone2dslr_flower": "flower photos from iPhone and from DSLR cameras (Flickr)",
}

CITYSCAPES_NOTE = (
    "cityscapes is not on the authors' server: its licence does not let them redistribute it. "
    "Register at https://www.cityscapes-dataset.com, download gtFine_trainvaltest.zip and "
    "leftImg8bit_trainvaltest.zip, unzip both, then run the authors' "
    "datasets/prepare_cityscapes_dataset.py (junyanz/pytorch-CycleGAN-and-pix2pix) with "
    "--gtFine_dir, --leftImg8bit_dir and --output_dir datasets/cityscapes; it writes the "
    "trainA/ trainB/ testA/ testB/ folders cgfw reads (photos in A, label maps in B)"
)


def base_url() -> str:
    url = os.environ.get(URL_ENV, BASE_URL).strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise CgfwError(f"{URL_ENV}={url!r}: must be an http:// or https:// address")
    return url


def check_name(name: str) -> None:
    """Only known names: they become a URL and a folder, so nothing else may pass."""
    if name == "cityscapes":
        raise CgfwError(CITYSCAPES_NOTE)
    if name not in DATASETS:
        raise CgfwError(
            f"unknown dataset '{name}'{did_you_mean(name, DATASETS)} (known: {', '.join(DATASETS)})"
        )


def is_complete(folder: Path) -> bool:
    return (folder / "trainA").is_dir() and (folder / "trainB").is_dir()


def _total_from_range(header: str | None) -> tuple[int, int | None] | None:
    """`bytes START-END/TOTAL` or `bytes */TOTAL` -> (START, TOTAL); START -1 for `*`."""
    if not header:
        return None
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", header)
    if match is None:
        return None
    start = int(match.group(1)) if match.group(1) is not None else -1
    total = int(match.group(2)) if match.group(2) != "*" else None
    return start, total


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )


def _check_space(folder: Path, remaining: int, total: int) -> None:
    """The rest of the download plus about as much again unpacked (JPEGs hardly compress)."""
    need = remaining + total
    free = shutil.disk_usage(folder).free
    if free < need:
        raise CgfwError(
            f"{folder}: {free / 2**20:.0f} MiB free, about {need / 2**20:.0f} MiB needed to "
            "download and unpack; free some space or choose another --root"
        )


def fetch(url: str, part: Path) -> None:
    """Download `url` into `part`, continuing a partial file; checks the size when known."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": f"cgfw/{cgfw.__version__}"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    resume_hint = f"; {part} is kept, run the command again to resume"
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        exc.close()  # its headers stay readable; the connection is not needed
        if exc.code == 416 and offset:
            # Nothing past `offset`: the file is already complete, or longer than the server's.
            parsed = _total_from_range(exc.headers.get("Content-Range"))
            if parsed is not None and parsed[1] == offset:
                return
            part.unlink()
            console.print(f"{part} does not match the server's file; downloading it afresh")
            fetch(url, part)
            return
        if exc.code == 404:
            raise CgfwError(
                f"{url}: not found (HTTP 404); the server may have moved it"
                + (f" (check {URL_ENV})" if URL_ENV in os.environ else "")
            ) from None
        raise CgfwError(f"{url}: the server answered HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise CgfwError(
            f"{url}: cannot download ({reason})" + (resume_hint if offset else "")
        ) from None
    with response, _progress() as progress:
        length = response.headers.get("Content-Length")
        if response.status == 206:
            parsed = _total_from_range(response.headers.get("Content-Range"))
            if parsed is None or parsed[0] != offset:
                part.unlink()
                raise CgfwError(
                    f"{url}: the server resumed at the wrong place "
                    f"({response.headers.get('Content-Range')!r}); {part} was deleted, run the "
                    "command again to download from the start"
                )
            total = parsed[1]
            mode = "ab"
            console.print(f"resuming {part.name} after {offset:,} bytes")
        else:  # 200: the whole file, also from a server that ignores Range
            offset, mode = 0, "wb"
            total = int(length) if length and length.isdigit() else None
        if total is not None:
            _check_space(part.parent, total - offset, total)
        task = progress.add_task(part.name.removesuffix(".part"), total=total, completed=offset)
        try:
            with open(part, mode) as f:
                while chunk := response.read(CHUNK):
                    f.write(chunk)
                    progress.advance(task, len(chunk))
        except (OSError, HTTPException) as exc:
            raise CgfwError(f"{url}: download interrupted ({exc}){resume_hint}") from None
    size = part.stat().st_size
    if total is not None and size != total:
        # A dropped connection ends the body early without an error; the length tells.
        raise CgfwError(f"{url}: incomplete, {size} of {total} bytes received{resume_hint}")


def unpack(archive: Path, root: Path, name: str) -> Path:
    """Extract into a staging folder, then move the dataset to root/name in one rename."""
    staging = root / f".{name}.unpacking"
    shutil.rmtree(staging, ignore_errors=True)  # left by a crash: never trusted
    try:
        try:
            safe_extract(archive, staging)  # every member's CRC is checked as it is read
        except (zlib.error, EOFError) as exc:  # corrupt deflate data fails before the CRC
            raise CgfwError(f"{archive}: damaged ({exc})") from None
        found = _dataset_folder(staging, name, archive)
        target = root / name
        os.replace(found, target)
    except CgfwError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        archive.unlink(missing_ok=True)  # a damaged or refused archive cannot be resumed
        raise CgfwError(
            f"{exc}\n{archive} was deleted and nothing was unpacked into {root}; if the archive "
            "was damaged on the way, running the command again downloads it afresh"
        ) from None
    except OSError as exc:  # a full disk, say: the archive is fine, keep it
        shutil.rmtree(staging, ignore_errors=True)
        raise CgfwError(
            f"cannot unpack {archive} into {root}: {exc.strerror or exc}; nothing was left "
            "there, and the archive is kept: run the command again once that is fixed"
        ) from None
    shutil.rmtree(staging, ignore_errors=True)
    return target


def _dataset_folder(staging: Path, name: str, archive: Path) -> Path:
    """Where trainA/ and trainB/ are: staging/NAME as the authors pack it, or the top level,
    or the only folder there."""
    if is_complete(staging / name):
        return staging / name
    if is_complete(staging):
        return staging
    folders = [d for d in staging.iterdir() if d.is_dir()] if staging.is_dir() else []
    if len(folders) == 1 and is_complete(folders[0]):
        return folders[0]
    raise CgfwError(
        f"{archive}: no {name}/trainA and {name}/trainB folders in it; not one of the "
        "authors' CycleGAN datasets"
    )


def download(name: str, root: Path) -> Path:
    """root/name with the authors' layout, downloaded unless already there."""
    check_name(name)
    target = root / name
    if target.exists():
        if is_complete(target):
            console.print(f"{target} is already there (delete it to download again)")
            return target
        raise CgfwError(
            f"{target} exists but has no trainA/ and trainB/; move it away or delete it, then "
            "run the command again"
        )
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CgfwError(f"--root {root}: cannot create it ({exc.strerror})") from None
    url = f"{base_url()}/{name}.zip"
    part = root / f"{name}.zip.part"
    console.print(f"downloading {url}")
    fetch(url, part)
    console.print(f"unpacking {part.name} into {target}")
    unpack(part, root, name)
    part.unlink(missing_ok=True)  # as the authors' script removes its zip
    return target


def _count_files(folder: Path) -> int:
    return sum(1 for p in folder.iterdir() if p.is_file()) if folder.is_dir() else 0
