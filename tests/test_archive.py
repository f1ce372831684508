"""Dataset archives are unpacked only when every member is safe; refused ones write nothing."""

import stat
import zipfile
from pathlib import Path

import pytest

from cgfw.errors import CgfwError
from cgfw.tools.archive import safe_extract


def make_zip(path: Path, members: dict[str, bytes], symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


def test_a_normal_archive_unpacks_in_place(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "h2z.zip", {"h2z/trainA/1.jpg": b"a", "h2z/trainB/2.jpg": b"b"})
    written = safe_extract(archive, tmp_path / "datasets")
    assert sorted(p.relative_to(tmp_path / "datasets").as_posix() for p in written) == [
        "h2z/trainA/1.jpg",
        "h2z/trainB/2.jpg",
    ]


@pytest.mark.parametrize(
    ("members", "symlink", "message"),
    [
        ({"ok.txt": b"x", "../evil.txt": b"x"}, None, "would be written outside"),
        ({"ok.txt": b"x", "/etc/evil.txt": b"x"}, None, "would be written outside"),
        ({"ok.txt": b"x", "a/../../evil.txt": b"x"}, None, "would be written outside"),
        ({"ok.txt": b"x"}, "link", "is a link or special file"),
        ({"ok.txt": b"x", "bomb.bin": bytes(50 * 2**20)}, None, "zip bomb"),
    ],
)
def test_malicious_archives_are_refused_before_anything_is_written(
    tmp_path: Path, members: dict[str, bytes], symlink: str | None, message: str
) -> None:
    archive = make_zip(tmp_path / "evil.zip", members, symlink)
    target = tmp_path / "datasets"
    with pytest.raises(CgfwError, match=message):
        safe_extract(archive, target)
    assert not target.exists() or not any(target.rglob("*"))
    assert not (tmp_path / "evil.txt").exists()


def test_absurd_total_size_and_broken_archives(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "big.zip", {"a.bin": bytes(3000), "b.bin": bytes(3000)})
    with pytest.raises(CgfwError, match="would unpack to"):
        safe_extract(archive, tmp_path / "out", max_total_bytes=5000)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(archive.read_bytes()[:100])
    with pytest.raises(CgfwError, match="not a readable zip archive"):
        safe_extract(broken, tmp_path / "out")
