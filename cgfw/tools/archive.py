"""Unpacking downloaded dataset archives without trusting them: no path may leave the target
folder (zip-slip), no symlinks or special files, and no zip bomb."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path, PurePosixPath

from cgfw.errors import CgfwError

MAX_TOTAL_BYTES = 20 * 2**30  # the authors' largest dataset (cityscapes) unpacks to a few GB
MAX_RATIO = 200  # deflate rarely beats 10:1 on images; bombs reach 1000:1


def safe_extract(archive: Path, target: Path, max_total_bytes: int = MAX_TOTAL_BYTES) -> list[Path]:
    """Extract `archive` into `target` after checking every member's name, type and size; nothing
    is written if one is refused. A member that turns out larger than it declares, or damaged,
    stops extraction part-way: extract into a staging folder and move it when this returns."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CgfwError(
            f"{archive}: not a readable zip archive ({exc}); delete it and download again"
        ) from None
    with zf:
        members = zf.infolist()
        total = 0
        root = target.resolve()
        for info in members:
            name = PurePosixPath(info.filename.replace("\\", "/"))
            if name.is_absolute() or ".." in name.parts or ":" in info.filename:
                raise CgfwError(
                    f"{archive}: refused, member '{info.filename}' would be written "
                    f"outside {target}"
                )
            kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the archiver recorded none
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise CgfwError(
                    f"{archive}: refused, member '{info.filename}' is a link or special file"
                )
            destination = (root / name).resolve()
            if root != destination and root not in destination.parents:
                raise CgfwError(f"{archive}: refused, member '{info.filename}' escapes {target}")
            total += info.file_size
            if (
                info.compress_size
                and info.file_size / info.compress_size > MAX_RATIO
                and info.file_size > 2**20
            ):
                raise CgfwError(
                    f"{archive}: refused, member '{info.filename}' expands "
                    f"{info.file_size // info.compress_size}x (zip bomb?)"
                )
        if total > max_total_bytes:
            raise CgfwError(
                f"{archive}: refused, it would unpack to {total / 2**30:.1f} GiB "
                f"(limit {max_total_bytes / 2**30:.0f} GiB)"
            )
        written = []
        for info in members:
            destination = root / PurePosixPath(info.filename.replace("\\", "/"))
            if info.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                copy_member(zf, info, destination, archive)
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError) as exc:
                # damaged data, encrypted members, compression methods Python lacks
                raise CgfwError(
                    f"{archive}: damaged or unsupported member '{info.filename}' ({exc})"
                ) from None
            written.append(destination)
    return written


def copy_member(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, destination: Path, archive: Path
) -> None:
    with zf.open(info) as src, open(destination, "wb") as dst:
        # Count while copying: a member may lie about its size in the directory.
        copied = 0
        while chunk := src.read(1 << 20):
            copied += len(chunk)
            if copied > info.file_size:
                raise CgfwError(f"{archive}: member '{info.filename}' is larger than it declares")
            dst.write(chunk)
