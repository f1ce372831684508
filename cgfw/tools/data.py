"""`cgfw data download NAME`: the authors' CycleGAN datasets from their server, as their
datasets/download_cyclegan_dataset.sh fetches them, but resumable, checked and safely unpacked.

The archive is downloaded to ROOT/NAME.zip.part (an interrupted download continues from where it
stopped, by an HTTP Range request), its size is checked against Content-Length and its SHA-256
against the one recorded on its first download (tools.download: trust on first use), and it is
unpacked by tools.archive.safe_extract into a hidden staging folder, where every member's CRC is
checked as it is written; only then is a first download's hash recorded. Only a complete, intact
dataset is moved to ROOT/NAME (trainA/, trainB/, testA/, testB/), so a failure never leaves half
a dataset behind.
"""

from __future__ import annotations

import os
import shutil
import zlib
from pathlib import Path

from cgfw.errors import CgfwError, did_you_mean
from cgfw.terminal import console
from cgfw.tools import download as downloads
from cgfw.tools.archive import safe_extract

# The address in the authors' current datasets/download_cyclegan_dataset.sh.
BASE_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets"
URL_ENV = "CGFW_DATASETS_URL"  # a mirror, or a local server in the tests
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
    return downloads.server_url(URL_ENV, BASE_URL)


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


def download(name: str, root: Path, accept_new_hash: bool = False) -> Path:
    """root/name with the authors' layout, downloaded unless already there. `accept_new_hash`:
    an archive whose SHA-256 differs from the recorded one is used (and recorded) instead of
    refused."""
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
    downloads.fetch(url, part, URL_ENV, unpacked=True)
    known = downloads.check_known(f"datasets/{name}.zip", part, url, accept_new_hash)
    console.print(f"unpacking {part.name} into {target}")
    unpack(part, root, name)
    known.remember()  # intact (every CRC checked): the hash later downloads are held to
    part.unlink(missing_ok=True)  # as the authors' script removes its zip
    return target


def _count_files(folder: Path) -> int:
    return sum(1 for p in folder.iterdir() if p.is_file()) if folder.is_dir() else 0
