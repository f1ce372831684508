"""Where a run's numbers go: TensorBoard, MLflow, W&B, ... (registered `tracker` components).

`[run] trackers` lists them by name, or as tables with options (`{name = "mlflow", uri =
"sqlite:///runs/mlflow.db"}`); left out, the trackers their plugin marks `default = True`
(cgfw's TensorBoard). The loop talks to one `Tracking`, which fans every call out and keeps a
failing tracker from stopping or damaging the run: the first error names the tracker, and the
run goes on without it. What a tracker must remember to continue its run later (MLflow's run id,
W&B's id) is kept in RUN_DIR/trackers.json, so a resumed run and `cgfw eval` write to the same
tracked run."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from torch import Tensor

from cgfw.plugin.registry import Registry
from cgfw.recipe.trackers import resolve
from cgfw.store.layout import RunDir, write_json


@dataclass
class TrackedRun:
    """What a tracker is told about the run it tracks (docs/plugins.md, "A tracker").

    The scalars it then receives are named ``loss/NAME`` (each loss term the model's step
    returns, averaged over ``train.log_every`` iterations) and ``lr``; every ``eval.every``
    iterations ``eval/a2b/METRIC``, ``eval/b2a/METRIC``, ``eval/baseline/METRIC`` and
    ``eval/cycle/a/l1`` (with ``train.ema``, the trained weights' as ``eval_raw/...``). Its
    summary gets ``final/NAME`` for each loss term when training ends, then ``cgfw eval``'s
    metrics named ``eval/...``."""

    path: Path
    name: str  # the run directory's name, e.g. quickstart-20261130-101500
    recipe: dict[str, Any]  # the resolved recipe (nested; `cgfw.flatten` flattens)
    saved: dict[str, Any] = field(default_factory=dict)  # this tracker's `state` from before


class Tracker(Protocol):
    """One destination for a run's numbers. A factory ``factory(options, run: TrackedRun)``
    opens it; ``state`` (a JSON-able dict, e.g. a run id) is saved and handed back as
    ``run.saved`` when the run resumes or is evaluated."""

    state: dict[str, Any]

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        """Loss terms, the learning rate and held-out metrics at iteration `step`."""

    def image(self, name: str, grid: Tensor, path: Path, step: int) -> None:
        """A sample grid (3, H, W) in [0, 1], also saved as the PNG at `path`."""

    def summary(self, metrics: Mapping[str, float], step: int) -> None:
        """The numbers that sum a run up: its final losses, then `cgfw eval`'s metrics."""

    def close(self, status: str) -> None:
        """`status` is "finished", "stopped" (a signal; it may resume), "failed", or
        "evaluated" (`cgfw eval` added its metrics: leave the run's state as it was)."""


class Tracking:
    """Every tracker of one run behind one object; a tracker that raises is named once and
    dropped, the others and the run go on."""

    def __init__(self, trackers: dict[str, Tracker], console: Console, state_file: Path) -> None:
        self.trackers, self.console, self.state_file = trackers, console, state_file

    @classmethod
    def open(
        cls,
        run_dir: Path,
        recipe: dict[str, Any],
        registry: Registry,
        console: Console,
    ) -> Tracking:
        """Open the trackers `recipe`'s [run] asks for on the run in `run_dir` (a new one, or
        the one each tracker saved there before)."""
        state_file = RunDir(run_dir).trackers
        saved = _read_state(state_file)
        tracking = cls({}, console, state_file)
        wanted = recipe.get("run", {}).get("trackers")
        for component, options in resolve(wanted, registry, check_packages=True):
            run = TrackedRun(run_dir, run_dir.name, recipe, saved.get(component.name, {}))
            tracker = tracking._guard(component.name, component.factory, options, run)
            if tracker is not None:
                tracking.trackers[component.name] = tracker
        tracking._save_state(saved)
        return tracking

    def _guard(self, name: str, call: Callable[..., Any], *args: Any) -> Any:
        try:
            return call(*args)
        except Exception as exc:  # any tracker error: name it, never stop the run
            self.trackers.pop(name, None)
            self.console.print(
                f"[yellow]tracker '{name}' failed: {type(exc).__name__}: {exc}; the run goes on "
                "without it[/yellow]"
            )
            return None

    def _save_state(self, saved: dict[str, Any]) -> None:
        state = saved | {name: t.state for name, t in self.trackers.items() if t.state}
        if state and state != saved:
            write_json(self.state_file, state)

    def _each(self, method: str, *args: Any) -> None:
        for name, tracker in list(self.trackers.items()):
            self._guard(name, getattr(tracker, method), *args)

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        self._each("scalars", values, step)

    def image(self, name: str, grid: Tensor, path: Path, step: int) -> None:
        self._each("image", name, grid, path, step)

    def summary(self, metrics: Mapping[str, float], step: int) -> None:
        self._each("summary", metrics, step)

    def text(self, name: str, text: str, step: int) -> None:
        """A note (an alarm) for the trackers that take text; optional for a tracker."""
        for tracker_name, tracker in list(self.trackers.items()):
            if hasattr(tracker, "text"):
                self._guard(tracker_name, tracker.text, name, text, step)

    def flush(self) -> None:
        """Before each checkpoint, for the trackers that buffer (TensorBoard): a run killed
        later has every number up to that checkpoint on disk, and its resume logs the rest."""
        for name, tracker in list(self.trackers.items()):
            if hasattr(tracker, "flush"):
                self._guard(name, tracker.flush)

    @contextlib.contextmanager
    def closed_if_failing(self) -> Iterator[None]:
        """A run that raises (non-finite losses, out of memory, a bug) closes its trackers as
        failed, so an MLflow run does not stay RUNNING forever."""
        try:
            yield
        except KeyboardInterrupt:  # a second Ctrl-C: stopped by the user, not failed
            self.close("stopped")
            raise
        except BaseException:
            self.close("failed")
            raise

    def close(self, status: str = "finished") -> None:
        self._each("close", status)
        self.trackers.clear()


def _read_state(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # none yet (or unreadable): the trackers start new runs
    return data if isinstance(data, dict) else {}
