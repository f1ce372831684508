"""A model folder: a run's translators in the Hugging Face layout, without any checkpoint.

`cgfw save-pretrained` writes one, `cgfw push` uploads one, and `cgfw.load` / `cgfw translate`
read one (cgfw/session/load.py). This module is the only one that names its files and the keys
of its config.json, and it writes the folder whole or not at all (`staged`)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cgfw.errors import CgfwError
from cgfw.store.layout import write_error, write_json, write_text

# What config.json's "format" says, and the newest format_version this cgfw reads. A folder of a
# newer version is refused rather than half understood.
FORMAT_NAME = "cgfw-model-folder"
FORMAT_VERSION = 1
WEIGHTS_SUFFIX = ".safetensors"
EMA, TRAINED = "ema", "trained"


class BadFolder(CgfwError):
    """A model folder that cannot be read: a missing or foreign file, a newer format."""


@dataclass(frozen=True)
class GeneratorEntry:
    """One translator of the folder: the model's network and recipe section it is, and its
    file (the component and plugin are there for people and for cgfw's error messages)."""

    network: str
    slot: str
    component: str
    plugin: str
    file: str
    parameters: int


@dataclass(frozen=True)
class FolderConfig:
    """config.json: what the folder holds and which cgfw wrote it."""

    cgfw_version: str
    model: str
    iteration: int
    checkpoint: str  # the run's checkpoint it was saved from: latest, best or iter_N
    weights: str  # ema (train.ema's average) or trained
    channels: int
    generators: dict[str, GeneratorEntry]  # by direction: a2b, b2a
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "format_version": self.format_version,
            "cgfw_version": self.cgfw_version,
            "model": self.model,
            "iteration": self.iteration,
            "checkpoint": self.checkpoint,
            "weights": self.weights,
            "channels": self.channels,
            "generators": {d: vars(g) for d, g in self.generators.items()},
        }

    @classmethod
    def from_dict(cls, data: Any, path: Path) -> FolderConfig:
        """config.json's contents checked key by key; a folder's files come from anyone (the
        Hub), so a file name that would leave the folder is refused too."""

        def bad(what: str) -> BadFolder:
            return BadFolder(f"{path}: {what}; write the folder again with cgfw save-pretrained")

        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise bad(f'not a cgfw model folder\'s config (no "format": "{FORMAT_NAME}")')
        version = data.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise bad(f"format_version should be a positive integer, got {version!r}")
        if version > FORMAT_VERSION:
            raise BadFolder(
                f"{path}: model folder format {version} is newer than this cgfw reads "
                f"({FORMAT_VERSION}); it was written by cgfw {data.get('cgfw_version', '?')}: "
                "upgrade cgfw (pip install -U cgfw)"
            )

        def need(node: Mapping[str, Any], key: str, kind: type, where: str = "") -> Any:
            value = node.get(key)
            if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
                raise bad(f"'{where}{key}' should be a {kind.__name__}, got {value!r}")
            return value

        table = need(data, "generators", dict)
        if not table:
            raise bad("'generators' names no generator")
        generators = {}
        for direction, entry in table.items():
            where = f"generators.{direction}."
            if not isinstance(entry, dict):
                raise bad(f"'generators.{direction}' should be a table")
            file = need(entry, "file", str, where)
            if Path(file).name != file or file in ("", ".", "..") or "\\" in file:
                raise bad(f"'{where}file' = {file!r} is not a file name in the folder")
            fields = {k: need(entry, k, str, where) for k in ("network", "slot", "component")}
            generators[direction] = GeneratorEntry(
                plugin=str(entry.get("plugin", "")),
                file=file,
                parameters=need(entry, "parameters", int, where),
                **fields,
            )
        weights = need(data, "weights", str)
        if weights not in (EMA, TRAINED):
            raise bad(f"'weights' should be {EMA!r} or {TRAINED!r}, got {weights!r}")
        return cls(
            cgfw_version=str(data.get("cgfw_version", "")),
            model=need(data, "model", str),
            iteration=need(data, "iteration", int),
            checkpoint=need(data, "checkpoint", str),
            weights=weights,
            channels=need(data, "channels", int),
            generators=generators,
            format_version=version,
        )


@dataclass(frozen=True)
class ModelFolder:
    """FOLDER/
    README.md                  the model card (Hugging Face YAML front matter)
    config.json                format version, cgfw version, the networks and their files
    recipe.toml                the run's resolved recipe: what rebuilds the networks
    metrics.json               `cgfw eval`'s scores, when the run had them
    generator_a2b.safetensors  each translator's weights (b2a too for a two-sided model)"""

    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def recipe(self) -> Path:
        return self.path / "recipe.toml"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def card(self) -> Path:
        return self.path / "README.md"

    @staticmethod
    def patterns() -> list[str]:
        """Names of the files a model folder may hold: all that a download needs to fetch."""
        return ["README.md", "config.json", "recipe.toml", "metrics.json", f"*{WEIGHTS_SUFFIX}"]

    def weights(self, direction: str) -> Path:
        return self.path / f"generator_{direction}{WEIGHTS_SUFFIX}"

    def is_folder(self) -> bool:
        """A folder with config.json, or weights and no checkpoints (a model folder that lost
        its config, to be named as such rather than as a run without checkpoints)."""
        if not self.path.is_dir():
            return False
        if self.config.is_file():
            return True
        return not (self.path / "checkpoints").exists() and any(
            self.path.glob(f"*{WEIGHTS_SUFFIX}")
        )

    def read_config(self) -> FolderConfig:
        if not self.config.is_file():
            raise BadFolder(
                f"{self.config}: missing; a model folder needs it (cgfw save-pretrained writes it)"
            )
        try:
            data = json.loads(self.config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadFolder(f"{self.config}: not readable JSON ({exc})") from None
        return FolderConfig.from_dict(data, self.config)

    def write_config(self, config: FolderConfig) -> None:
        write_json(self.config, config.to_dict())

    def write_recipe(self, toml: str) -> None:
        write_text(self.recipe, toml)

    def write_metrics(self, text: str) -> None:
        write_text(self.metrics, text)

    def write_card(self, text: str) -> None:
        write_text(self.card, text)


def _settle(folder: Path) -> None:
    """The files and the folder get the modes any new file gets here (mkdtemp made the folder
    private, and some writers make their files so), then go to disk before the rename makes
    them visible: after a crash OUT is either absent or whole."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [*folder.iterdir(), folder]:
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextmanager
def staged(out: Path, force: bool = False) -> Iterator[ModelFolder]:
    """A model folder to fill, beside `out` (OUT.XXXX.tmp), renamed to `out` once the block
    ends without an error; on any error it is removed and `out` is untouched.

    A non-empty `out` is refused unless `force`, and even then only a model folder is replaced
    (never a run directory or any other folder)."""
    if out.exists() and not out.is_dir():
        raise CgfwError(f"{out}: a file is there; give a folder name to write the model folder")
    existing = out.is_dir() and any(out.iterdir())
    if existing and not force:
        raise CgfwError(f"{out}: not empty; --force replaces a model folder there")
    if existing and not ModelFolder(out).config.is_file():
        raise CgfwError(
            f"{out}: not a model folder (no {ModelFolder(out).config.name}); --force replaces "
            "only a folder cgfw save-pretrained wrote; choose another OUT"
        )
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{out.name}.", suffix=".tmp", dir=parent))
    except OSError as exc:
        raise write_error(out, exc) from None
    try:
        yield ModelFolder(tmp)
        _settle(tmp)
        if out.exists():  # empty, or a model folder --force replaces: moved aside first
            aside = Path(tempfile.mkdtemp(prefix=f"{out.name}.", suffix=".old", dir=parent))
            os.replace(out, aside / out.name)
            try:
                os.replace(tmp, out)
            except OSError:
                os.replace(aside / out.name, out)
                raise
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise write_error(out, exc) from None
    except BaseException:  # a CgfwError, Ctrl-C: nothing half-written stays
        shutil.rmtree(tmp, ignore_errors=True)
        raise
