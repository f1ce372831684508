"""cgfw data download against a local HTTP server (127.0.0.1 only) that serves zips built here
and honours Range requests, as the authors' server does."""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cgfw.cli.data import download_cmd
from cgfw.tools.data import URL_ENV
from cgfw.tools.download import RECORD

PREFIX = "/cyclegan/datasets/"


@dataclass
class Served:
    """What the server holds and what it saw."""

    files: dict[str, bytes] = field(default_factory=dict)
    ranges: list[str | None] = field(default_factory=list)  # the Range header of each GET
    cut_after: int | None = None  # send only this many body bytes, then hang up
    ignore_range: bool = False
    fail_with: int | None = None  # answer every request with this HTTP error


class _Server(ThreadingHTTPServer):
    served: Served


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        served = self.server.served
        data = served.files.get(self.path.removeprefix(PREFIX))
        requested = self.headers.get("Range")
        served.ranges.append(requested)
        if data is None or served.fail_with is not None:
            self.send_error(served.fail_with or 404)
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", requested or "")
        if match and not served.ignore_range:
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/zip")
        self.end_headers()
        if served.cut_after is not None:
            body = body[: served.cut_after]
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass


@pytest.fixture(autouse=True)
def own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's own record of downloaded hashes (outside tmp_path, which some tests list):
    another test's archive of the same name differs, as a changed server file would."""
    cache = tmp_path_factory.mktemp("cache") / "cgfw"
    monkeypatch.setenv("CGFW_CACHE", str(cache))
    return cache


@contextmanager
def serving() -> Iterator[tuple[Served, str]]:
    """A server on 127.0.0.1 at a free port, stopped on leaving; yields what it serves and
    the base URL of its files."""
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.served = Served()
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield httpd.served, f"http://127.0.0.1:{httpd.server_address[1]}{PREFIX}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)  # a proxy must not see (or swallow) the request
    monkeypatch.setenv("no_proxy", "*")


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """A local server; CGFW_DATASETS_URL points the command at it."""
    no_proxy(monkeypatch)
    with serving() as (served, url):
        monkeypatch.setenv(URL_ENV, url)
        yield served


def dataset_zip(
    name: str,
    members: dict[str, bytes] | None = None,
    compression: int = zipfile.ZIP_STORED,
) -> bytes:
    """An archive laid out like the authors': NAME/trainA/..., NAME/trainB/..., test too."""
    if members is None:
        members = {
            f"{name}/{split}/{i}.jpg": bytes([i]) * (5000 + 100 * i)
            for split in ("trainA", "trainB", "testA", "testB")
            for i in range(3)
        }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as zf:
        for member, data in members.items():
            zf.writestr(member, data)
    return buffer.getvalue()


def download(*args: str) -> Result:
    return CliRunner().invoke(download_cmd, list(args))


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_a_download_lands_in_the_standard_layout(tmp_path: Path, server: Served) -> None:
    server.files["horse2zebra.zip"] = dataset_zip("horse2zebra")
    result = download("horse2zebra", "--root", str(tmp_path / "datasets"))
    assert result.exit_code == 0, result.output
    target = tmp_path / "datasets" / "horse2zebra"
    for split in ("trainA", "trainB", "testA", "testB"):
        assert sorted(p.name for p in (target / split).iterdir()) == ["0.jpg", "1.jpg", "2.jpg"]
    assert (target / "trainB" / "2.jpg").read_bytes() == bytes([2]) * 5200
    assert leftovers(tmp_path / "datasets") == ["horse2zebra"]  # no .part, no staging folder
    assert server.ranges == [None]
    assert "trainA 3" in result.stdout and f"data.root={target}" in result.stdout
    # Run again: nothing is fetched.
    again = download("horse2zebra", "--root", str(tmp_path / "datasets"))
    assert again.exit_code == 0 and "already there" in again.stderr
    assert len(server.ranges) == 1


def test_a_partial_file_is_resumed_with_a_range_request(tmp_path: Path, server: Served) -> None:
    archive = dataset_zip("apple2orange")
    server.files["apple2orange.zip"] = archive
    root = tmp_path / "datasets"
    root.mkdir()
    (root / "apple2orange.zip.part").write_bytes(archive[:1000])
    result = download("apple2orange", "--root", str(root))
    assert result.exit_code == 0, result.output
    assert server.ranges == ["bytes=1000-"]
    assert (root / "apple2orange" / "testB" / "1.jpg").read_bytes() == bytes([1]) * 5100
    assert leftovers(root) == ["apple2orange"]


def test_an_interrupted_download_is_kept_and_resumed(tmp_path: Path, server: Served) -> None:
    archive = dataset_zip("maps")
    server.files["maps.zip"] = archive
    server.cut_after = 20_000  # the connection drops part-way
    root = tmp_path / "datasets"
    first = download("maps", "--root", str(root))
    assert first.exit_code == 2
    assert f"incomplete, 20000 of {len(archive)} bytes" in first.stderr
    assert "run the command again to resume" in first.stderr
    assert leftovers(root) == ["maps.zip.part"]
    server.cut_after = None
    second = download("maps", "--root", str(root))
    assert second.exit_code == 0, second.output
    assert server.ranges == [None, "bytes=20000-"]
    assert leftovers(root) == ["maps"]


def test_a_server_that_ignores_range_restarts_the_file(tmp_path: Path, server: Served) -> None:
    archive = dataset_zip("facades")
    server.files["facades.zip"] = archive
    server.ignore_range = True
    root = tmp_path / "datasets"
    root.mkdir()
    (root / "facades.zip.part").write_bytes(b"stale bytes from another file")
    result = download("facades", "--root", str(root))
    assert result.exit_code == 0, result.output
    assert leftovers(root) == ["facades"]


def test_a_complete_part_file_is_not_fetched_again(tmp_path: Path, server: Served) -> None:
    archive = dataset_zip("iphone2dslr_flower")
    server.files["iphone2dslr_flower.zip"] = archive
    root = tmp_path / "datasets"
    root.mkdir()
    (root / "iphone2dslr_flower.zip.part").write_bytes(archive)  # crashed while unpacking
    result = download("iphone2dslr_flower", "--root", str(root))
    assert result.exit_code == 0, result.output
    assert server.ranges == [f"bytes={len(archive)}-"]  # answered 416: nothing left to send
    assert leftovers(root) == ["iphone2dslr_flower"]


def test_a_part_file_longer_than_the_archive_is_replaced(tmp_path: Path, server: Served) -> None:
    archive = dataset_zip("summer2winter_yosemite")
    server.files["summer2winter_yosemite.zip"] = archive
    root = tmp_path / "datasets"
    root.mkdir()
    (root / "summer2winter_yosemite.zip.part").write_bytes(archive + b"junk")
    result = download("summer2winter_yosemite", "--root", str(root))
    assert result.exit_code == 0, result.output
    assert server.ranges == [f"bytes={len(archive) + 4}-", None]
    assert leftovers(root) == ["summer2winter_yosemite"]


def _corrupt(archive: bytes, member_data: bytes) -> bytes:
    """Flip one byte inside a member's data, leaving sizes and the directory intact."""
    at = archive.index(member_data) + len(member_data) // 2
    return archive[:at] + bytes([archive[at] ^ 0xFF]) + archive[at + 1 :]


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_a_damaged_archive_is_reported_and_nothing_is_left_half_unpacked(
    tmp_path: Path, server: Served, compression: int
) -> None:
    members = {
        "monet2photo/trainA/0.jpg": b"first member, unpacked before the damage is found",
        "monet2photo/trainB/0.jpg": bytes(range(256)) * 40,
    }
    archive = dataset_zip("monet2photo", members, compression)
    if compression == zipfile.ZIP_STORED:
        archive = _corrupt(archive, members["monet2photo/trainB/0.jpg"])
    else:  # find the deflated bytes of the second member and damage them
        with zipfile.ZipFile(io.BytesIO(archive)) as zf:
            info = zf.getinfo("monet2photo/trainB/0.jpg")
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        at = start + info.compress_size // 2
        archive = archive[:at] + bytes([archive[at] ^ 0xFF]) + archive[at + 1 :]
    server.files["monet2photo.zip"] = archive
    root = tmp_path / "datasets"
    result = download("monet2photo", "--root", str(root))
    assert result.exit_code == 2
    assert "monet2photo.zip.part: damaged" in result.stderr
    assert "nothing was unpacked" in result.stderr
    assert leftovers(root) == []  # no dataset folder, no staging folder, no archive to resume


def test_a_malicious_archive_is_refused(tmp_path: Path, server: Served) -> None:
    members = {"vangogh2photo/trainA/0.jpg": b"x", "vangogh2photo/../../evil.txt": b"owned"}
    server.files["vangogh2photo.zip"] = dataset_zip("vangogh2photo", members)
    root = tmp_path / "deep" / "datasets"
    result = download("vangogh2photo", "--root", str(root))
    assert result.exit_code == 2
    assert "refused" in result.stderr and "would be written outside" in result.stderr
    assert not list(tmp_path.rglob("evil.txt"))
    assert leftovers(root) == []


@pytest.mark.parametrize("members", [{"readme.txt": b"hello"}, {}], ids=["no-folders", "empty"])
def test_an_archive_without_the_layout_is_refused(
    tmp_path: Path, server: Served, members: dict[str, bytes]
) -> None:
    server.files["ukiyoe2photo.zip"] = dataset_zip("ukiyoe2photo", members)
    result = download("ukiyoe2photo", "--root", str(tmp_path))
    assert result.exit_code == 2 and "no ukiyoe2photo/trainA" in result.stderr
    assert leftovers(tmp_path) == []


def test_splits_at_the_top_of_the_archive_are_accepted(tmp_path: Path, server: Served) -> None:
    members = {"trainA/0.jpg": b"a", "trainB/0.jpg": b"b"}
    server.files["horse2zebra.zip"] = dataset_zip("horse2zebra", members)
    assert download("horse2zebra", "--root", str(tmp_path)).exit_code == 0
    assert (tmp_path / "horse2zebra" / "trainB" / "0.jpg").read_bytes() == b"b"
    assert leftovers(tmp_path) == ["horse2zebra"]


def test_a_missing_file_on_the_server(tmp_path: Path, server: Served) -> None:
    result = download("cezanne2photo", "--root", str(tmp_path))
    assert result.exit_code == 2 and "not found (HTTP 404)" in result.stderr


def test_an_unknown_name_suggests_the_closest(tmp_path: Path, server: Served) -> None:
    result = download("horse2zebr", "--root", str(tmp_path))
    assert result.exit_code == 2
    assert "unknown dataset 'horse2zebr'; did you mean 'horse2zebra'?" in result.stderr
    assert server.ranges == []  # nothing was requested


def test_cityscapes_explains_where_to_get_it(tmp_path: Path, server: Served) -> None:
    result = download("cityscapes", "--root", str(tmp_path))
    assert result.exit_code == 2
    assert "cityscapes-dataset.com" in result.stderr
    assert "prepare_cityscapes_dataset.py" in result.stderr
    assert server.ranges == []


def test_without_a_name_the_datasets_are_listed() -> None:
    result = download()
    assert result.exit_code == 0
    assert "horse2zebra" in result.stdout and "iphone2dslr_flower" in result.stdout


# --- the archive's hash, recorded on its first download ------------------------------------------


def test_a_changed_archive_is_refused_until_accepted(
    tmp_path: Path, server: Served, own_cache: Path
) -> None:
    server.files["horse2zebra.zip"] = dataset_zip("horse2zebra")
    first = tmp_path / "first"
    assert download("horse2zebra", "--root", str(first)).exit_code == 0
    record = json.loads((own_cache / RECORD).read_text())
    assert set(record) == {"datasets/horse2zebra.zip"}
    digest = record["datasets/horse2zebra.zip"]["sha256"]
    assert digest == hashlib.sha256(server.files["horse2zebra.zip"]).hexdigest()
    # The same archive again, into another root: it matches, nothing changes in the record.
    assert download("horse2zebra", "--root", str(tmp_path / "again")).exit_code == 0
    assert json.loads((own_cache / RECORD).read_text()) == record

    members = {f"horse2zebra/{s}/0.jpg": b"another file" for s in ("trainA", "trainB")}
    server.files["horse2zebra.zip"] = dataset_zip("horse2zebra", members)  # the server's changed
    root = tmp_path / "changed"
    refused = download("horse2zebra", "--root", str(root))
    assert refused.exit_code == 2, refused.output
    message = " ".join(refused.stderr.split())
    assert "not the file first downloaded as datasets/horse2zebra.zip" in message
    assert "the server's file" in message and "changed" in message
    assert "--accept-new-hash" in message
    assert "Traceback" not in refused.output
    assert leftovers(root) == []  # the archive was deleted, nothing unpacked
    assert json.loads((own_cache / RECORD).read_text()) == record

    accepted = download("horse2zebra", "--root", str(root), "--accept-new-hash")
    assert accepted.exit_code == 0, accepted.output
    assert (root / "horse2zebra" / "trainA" / "0.jpg").read_bytes() == b"another file"
    new = json.loads((own_cache / RECORD).read_text())["datasets/horse2zebra.zip"]
    assert new["sha256"] == hashlib.sha256(server.files["horse2zebra.zip"]).hexdigest()


def test_a_damaged_archive_leaves_no_hash_recorded(
    tmp_path: Path, server: Served, own_cache: Path
) -> None:
    """The first download's hash is recorded once the archive unpacked with every CRC right;
    a damaged one must not become what later downloads are held to."""
    members = {"facades/trainA/0.jpg": bytes(range(256)) * 20, "facades/trainB/0.jpg": b"b" * 99}
    archive = dataset_zip("facades", members)
    server.files["facades.zip"] = _corrupt(archive, members["facades/trainA/0.jpg"])
    assert download("facades", "--root", str(tmp_path / "d")).exit_code == 2
    assert not (own_cache / RECORD).exists()
    server.files["facades.zip"] = archive  # the intact archive is then accepted as the first
    assert download("facades", "--root", str(tmp_path / "d")).exit_code == 0


def test_an_unreadable_record_is_one_error(tmp_path: Path, server: Served, own_cache: Path) -> None:
    server.files["maps.zip"] = dataset_zip("maps")
    own_cache.mkdir()
    (own_cache / RECORD).write_text("{not json")
    result = download("maps", "--root", str(tmp_path))
    assert result.exit_code == 2
    assert f"{own_cache / RECORD}: cannot read cgfw's record" in " ".join(result.stderr.split())
    assert "delete it" in result.stderr
