"""Model folders on the Hugging Face Hub: `hf://user/repo[@revision]` names one, downloaded into
huggingface_hub's own cache (so its login, HF_HOME, HF_HUB_CACHE and HF_HUB_OFFLINE apply).

huggingface_hub is the optional extra `pip install 'cgfw[hub]'`; without it an hf:// name is one
error saying so."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import cgfw
from cgfw.errors import CgfwError
from cgfw.store.folder import ModelFolder

SCHEME = "hf://"
INSTALL = "pip install 'cgfw[hub]'"
# user/repo (or a bare repo name), then @revision: a branch, tag or commit.
_NAME = re.compile(r"(?P<repo>[^/@\s]+(?:/[^/@\s]+)?)(?:@(?P<revision>[^@\s]+))?")


def is_hub(source: str | Path) -> bool:
    return isinstance(source, str) and source.startswith(SCHEME)


def huggingface_hub(what: str) -> ModuleType:
    """The huggingface_hub module, or one error naming the extra that installs it."""
    try:
        import huggingface_hub as hub
    except ImportError:
        raise CgfwError(f"{what} needs huggingface_hub (not installed): {INSTALL}") from None
    return hub


def parse(source: str) -> tuple[str, str | None]:
    """hf://user/repo@revision -> ("user/repo", "revision"); the revision may be absent."""
    match = _NAME.fullmatch(source.removeprefix(SCHEME))
    if match is None:
        raise CgfwError(
            f"{source}: give a Hub model as hf://USER/REPO or hf://USER/REPO@REVISION (a "
            "branch, tag or commit)"
        )
    return match["repo"], match["revision"]


def download(source: str) -> Path:
    """The local folder of the Hub model `source` names: huggingface_hub's cached snapshot,
    downloaded first when it is not there (offline, HF_HUB_OFFLINE=1, only the cache is read)."""
    repo_id, revision = parse(source)
    hub = huggingface_hub(source)
    try:
        folder = hub.snapshot_download(
            repo_id,
            revision=revision,
            allow_patterns=ModelFolder.patterns(),  # a repository's other files stay there
            library_name="cgfw",
            library_version=cgfw.__version__,
        )
    except (OSError, ValueError) as exc:  # not found, no access, offline and not cached, a bad id
        lines = str(exc).strip().splitlines()
        raise CgfwError(
            f"{source}: cannot be had from the Hugging Face Hub ({type(exc).__name__}: "
            f"{lines[0] if lines else 'no detail'}); check the name and revision, and for a "
            "private repo log in (`hf auth login`, or HF_TOKEN)"
        ) from None
    return Path(folder)


def local(source: str | Path) -> Path:
    """`source` as a local path: an hf:// name downloaded, anything else as it is."""
    return download(source) if isinstance(source, str) and is_hub(source) else Path(source)
