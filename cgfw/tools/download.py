"""Downloads that resume, check their size, and are checked against the SHA-256 recorded the
first time each file was downloaded (trust on first use): `cgfw data download`'s datasets and
the authors' pretrained generators (cgfw_paper) go through here.

`fetch` downloads into a `.part` file, continuing one left by an interrupted download with an
HTTP Range request, and checks the size against Content-Length (a dropped connection ends the
body early without an error). `check_known` then compares the file's SHA-256 and size with
CACHE/downloads.json (cgfw.store.cache), where the caller records them once the file proved
usable (`Known.remember`): a dataset once it unpacked with every CRC right, a generator once
it imported. A later download of the same name whose hash differs is refused and deleted: the
server's file changed, or something altered it on the way. `accept_new` (the commands'
`--accept-new-hash`) records the new hash instead; deleting the entry (or the whole record)
does the same.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from http.client import HTTPException
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

import cgfw
from cgfw.errors import CgfwError
from cgfw.store.cache import cache_dir
from cgfw.store.layout import write_json
from cgfw.terminal import console

TIMEOUT_S = 60  # per connect or read; a stalled server fails instead of hanging forever
CHUNK = 1 << 16
RECORD = "downloads.json"
ACCEPT_OPTION = "--accept-new-hash"


def server_url(env: str, default: str) -> str:
    """The server: `default`, or the mirror (or a test's local server) $`env` names."""
    url = os.environ.get(env, default).strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise CgfwError(f"{env}={url!r}: must be an http:// or https:// address")
    return url


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


def _check_space(folder: Path, remaining: int, spare: int) -> None:
    need = remaining + spare
    free = shutil.disk_usage(folder).free
    if free < need:
        raise CgfwError(
            f"{folder}: {free / 2**20:.0f} MiB free, about {need / 2**20:.0f} MiB needed"
            + (" to download and unpack" if spare else " for the download")
            + "; free some space there"
        )


def fetch(url: str, part: Path, env: str | None = None, unpacked: bool = False) -> None:
    """Download `url` into `part`, continuing a partial file; checks the size when known.
    `env`: the variable that chose the server, named when a file is not found there;
    `unpacked`: the file is an archive to unpack beside it, so about as much room again is
    needed (JPEGs hardly compress)."""
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
            fetch(url, part, env, unpacked)
            return
        if exc.code == 404:
            raise CgfwError(
                f"{url}: not found (HTTP 404); the server may have moved it"
                + (f" (check {env})" if env and env in os.environ else "")
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
            _check_space(part.parent, total - offset, total if unpacked else 0)
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
        raise CgfwError(f"{url}: incomplete, {size} of {total} bytes received{resume_hint}")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def record_path() -> Path:
    return cache_dir() / RECORD


def _read_record(path: Path) -> dict[str, Any]:
    """{key: {"sha256", "size", "url", "recorded"}}; none yet is an empty record."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CgfwError(
            f"{path}: cannot read cgfw's record of downloaded files ({exc}); delete it to start "
            "the record afresh (each file's next download is then trusted as its first)"
        ) from None
    if not isinstance(data, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("sha256"), str) and isinstance(v.get("size"), int)
        for v in data.values()
    ):
        raise CgfwError(
            f"{path}: not cgfw's record of downloaded files (a JSON object of name -> "
            '{"sha256", "size"}); delete it to start the record afresh'
        )
    return data


@dataclass(frozen=True)
class Known:
    """A downloaded file checked against the record: `new` when nothing was recorded for its
    key yet (or the new hash was accepted), so `remember` records it."""

    key: str
    url: str
    sha256: str
    size: int
    new: bool

    def remember(self) -> None:
        """Record the file's hash and size: call once the file proved usable, so a damaged
        download is never the one later downloads are held to."""
        if not self.new:
            return
        path = record_path()
        record = _read_record(path)  # afresh: another command may have recorded meanwhile
        record[self.key] = {
            "sha256": self.sha256,
            "size": self.size,
            "url": self.url,
            "recorded": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CgfwError(f"{path.parent}: cannot create it ({exc.strerror})") from None
        write_json(path, dict(sorted(record.items())))
        console.print(f"recorded {self.key}'s SHA-256 {self.sha256[:16]}... in {path}")


def check_known(key: str, file: Path, url: str, accept_new: bool = False) -> Known:
    """`file`, downloaded from `url`, against the hash and size recorded for `key`. A file that
    differs is deleted (it cannot be trusted, nor resumed) and refused, unless `accept_new`."""
    sha256, size = sha256_of(file), file.stat().st_size
    path = record_path()
    recorded = _read_record(path).get(key)
    if recorded is None:
        return Known(key, url, sha256, size, new=True)
    if (recorded["sha256"], recorded["size"]) == (sha256, size):
        return Known(key, url, sha256, size, new=False)
    if accept_new:
        console.print(
            f"[yellow]{key}: its hash differs from the one recorded on "
            f"{recorded.get('recorded', 'its first download')}; accepted ({ACCEPT_OPTION})"
            "[/yellow]"
        )
        return Known(key, url, sha256, size, new=True)
    file.unlink(missing_ok=True)
    raise CgfwError(
        f"{file}: not the file first downloaded as {key} (SHA-256 {sha256[:16]}..., "
        f"{size:,} bytes; {path} recorded {recorded['sha256'][:16]}..., "
        f"{recorded['size']:,} bytes on {recorded.get('recorded', 'an earlier day')}): the "
        f"server's file ({url}) changed, or the file was altered on the way or since. It was "
        f"deleted and nothing was used. If you trust the new file, run the command again with "
        f"{ACCEPT_OPTION} (or delete the '{key}' entry from {path})"
    )
