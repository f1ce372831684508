"""The one place that knows a run directory's layout and writes its records. Everything else
asks `RunDir` (a run) or `AblationDir` (the folder `cgfw ablate` fills with runs) for a path, or
to write a record; checkpoints are cgfw/store/checkpoint.py's."""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cgfw.errors import CgfwError

# checkpoints/iter_0004000.pt: the checkpoints train.keep_every keeps.
KEPT_PREFIX = "iter_"
KEPT_NAME = re.compile(rf"{KEPT_PREFIX}(\d+)\.pt")


def free_space(path: Path) -> str:
    """` (1.20 GiB free there)` for errors about writes; empty when it cannot be told."""
    folder = next((p for p in (path, *path.parents) if p.exists()), None)
    try:
        free = shutil.disk_usage(folder).free if folder else None
    except OSError:
        free = None
    return "" if free is None else f" ({size(free)} free there)"


def size(n: float) -> str:
    """Bytes for people: 812 bytes, 60.2 KiB, 1.2 GiB."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def write_error(path: Path, exc: BaseException) -> CgfwError:
    """One error for a failed write: the file, why, and the space left where it goes."""
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
    else:  # torch's zip writer: "[enforce fail at inline_container.cc:672] . unexpected pos"
        reason = "write failed (" + re.sub(r"^\[.*?\]\s*\.?\s*", "", str(exc).splitlines()[0]) + ")"
    return CgfwError(f"cannot write {path}: {reason}{free_space(path.parent)}")


def write_text(path: Path, text: str) -> None:
    """Through a temporary file beside it, so a reader (or a crash) never sees half a record."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_error(path, exc) from None


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")


@dataclass(frozen=True)
class RunDir:
    """RUN_DIR/
    recipe.toml         the resolved recipe, every default filled in (written before training)
    run.json            provenance: versions, device, command, plugins; resume.json, resume2.json
    final_losses.json   the last log window's loss terms
    metrics.json        `cgfw eval`'s results
    trackers.json       the trackers' run ids (MLflow, W&B), so resume and eval continue them
    checkpoints/        latest.pt and previous.pt; iter_0004000.pt, ... (train.keep_every),
                        best.pt and best.json (train.keep_best): kept, never deleted
    samples/            iter_0001000.png, ...: the fixed images' grids
    export/             `cgfw export`'s files
    variant.toml        the recipe `cgfw ablate` planned for it, before it starts
    log.txt             its output, when a launcher ran it in a child process
    events.out.tfevents.*  TensorBoard (scalars, images, HParams)"""

    path: Path

    @staticmethod
    def holding(path: Path) -> RunDir:
        """The run directory of `path`: itself, or the run a checkpoint file belongs to."""
        folder = path if path.is_dir() else path.parent
        return RunDir(folder.parent if folder.name == "checkpoints" else folder)

    @property
    def recipe(self) -> Path:
        return self.path / "recipe.toml"

    @property
    def provenance(self) -> Path:
        return self.path / "run.json"

    def resume_record(self) -> Path:
        """resume.json for the first resume, resume2.json for the second, ..."""
        count = len(list(self.path.glob("resume*.json")))
        return self.path / f"resume{count + 1 if count else ''}.json"

    @property
    def final_losses(self) -> Path:
        return self.path / "final_losses.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def trackers(self) -> Path:
        """What each tracker needs to continue its run (MLflow's run id, ...)."""
        return self.path / "trackers.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def kept(self, iteration: int) -> Path:
        """The checkpoint of `iteration` that train.keep_every keeps."""
        return self.checkpoints / f"{KEPT_PREFIX}{iteration:07d}.pt"

    def kept_iterations(self) -> list[int]:
        """The iterations whose checkpoints are kept, in order."""
        found = (KEPT_NAME.fullmatch(p.name) for p in self.checkpoints.glob(f"{KEPT_PREFIX}*.pt"))
        return sorted(int(m[1]) for m in found if m)

    @property
    def best_checkpoint(self) -> Path:
        """The checkpoint that scored best by train.keep_best so far."""
        return self.checkpoints / "best.pt"

    @property
    def best_record(self) -> Path:
        """best.pt's score: {"metric", "value", "iteration", "better", "options"}."""
        return self.checkpoints / "best.json"

    def write_best_record(self, record: dict[str, Any]) -> None:
        write_json(self.best_record, record)

    def sample(self, iteration: int) -> Path:
        return self.path / "samples" / f"iter_{iteration:07d}.png"

    @property
    def export(self) -> Path:
        return self.path / "export"

    @property
    def lock(self) -> Path:
        return self.path / ".lock"

    def events(self) -> list[Path]:
        return sorted(self.path.glob("events.out.tfevents.*"))

    @property
    def variant(self) -> Path:
        return self.path / "variant.toml"

    @property
    def log(self) -> Path:
        return self.path / "log.txt"

    def is_run(self) -> bool:
        return self.recipe.is_file()

    def check_present(self) -> None:
        """A run directory deleted while its run trains stops the run: it would otherwise
        train on and say "done" with nothing left to show for it."""
        if not self.recipe.is_file():
            raise CgfwError(
                f"the run directory {self.path} (or its recipe.toml) is gone: deleted while "
                "training? Stopped; nothing more is written"
            )

    def write_recipe(self, toml: str) -> None:
        write_text(self.recipe, toml)

    def write_variant(self, toml: str) -> None:
        write_text(self.variant, toml)

    def write_provenance(self, meta: dict[str, Any]) -> None:
        write_json(self.provenance, meta)

    def imported_networks(self) -> set[str] | None:
        """The networks whose weights `cgfw import-weights` (or `cgfw pretrained`) brought, from
        run.json's "imported"; None for a run that was not made by an import. The others
        started at their initialisation."""
        try:
            meta = json.loads(self.provenance.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        entries = meta.get("imported") if isinstance(meta, dict) else None
        if not isinstance(entries, list):
            return None
        return {e["network"] for e in entries if isinstance(e, dict) and "network" in e}

    def write_resume_record(self, meta: dict[str, Any]) -> Path:
        path = self.resume_record()
        write_json(path, meta)
        return path

    def write_final_losses(self, losses: dict[str, float]) -> None:
        write_json(self.final_losses, losses)

    def write_metrics(self, results: dict[str, Any]) -> None:
        write_json(self.metrics, results)

    def write_trackers(self, state: dict[str, Any]) -> None:
        write_json(self.trackers, state)


@dataclass(frozen=True)
class AblationDir:
    """PARENT/ of `cgfw ablate`: one run directory per variant (LABEL/), ablation.json (each
    run's final losses) and, for a Slurm array, slurm/ (submitit's logs, jobs.json)."""

    path: Path

    def run(self, label: str) -> RunDir:
        return RunDir(self.path / label)

    @property
    def results(self) -> Path:
        return self.path / "ablation.json"

    @property
    def slurm(self) -> Path:
        return self.path / "slurm"

    @property
    def jobs(self) -> Path:
        return self.slurm / "jobs.json"

    def write_results(self, results: dict[str, Any]) -> None:
        write_json(self.results, results)

    def write_jobs(self, jobs: dict[str, Any]) -> None:
        self.slurm.mkdir(parents=True, exist_ok=True)
        write_json(self.jobs, jobs)
