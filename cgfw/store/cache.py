"""The user's cgfw cache folder: what cgfw computed or downloaded once and reuses (FID reference
statistics, the authors' pretrained generators, the record of every download's hash).

$CGFW_CACHE, else $XDG_CACHE_HOME/cgfw, else ~/.cache/cgfw. Everything there can be deleted;
it is made again when needed (the download record then trusts the next download afresh)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "CGFW_CACHE"


def cache_dir() -> Path:
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cgfw"
