"""Checkpoints worth keeping beyond latest.pt and previous.pt: the best one by a score [eval]
computes (train.keep_best), with that score in best.json. best.json is read back when a run
resumes, so the best kept is the whole run's, not the best since the resume. (The files
themselves are cgfw/store/checkpoint.py's `keep`; their names are RunDir's.)"""

from __future__ import annotations

import difflib
import json
import logging
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from cgfw.errors import CgfwError
from cgfw.plugin.registry import Registry
from cgfw.store.layout import RunDir
from cgfw.training.evaluation import build_metric, usable_metrics, with_companions

log = logging.getLogger("cgfw.train")
Better = Literal["lower", "higher"]
BETTER: tuple[Better, ...] = ("lower", "higher")


# best.json's keys: a record of its own, not a checkpoint's.
RECORD_KEYS = ("metric", "value", "iteration", "better")


@dataclass(frozen=True)
class Best:
    """What best.json says of best.pt: the score, its value, the iteration, which way is better."""

    metric: str
    value: float
    iteration: int
    better: Better
    # [eval.options] when it was scored (FID in another resize mode is another number).
    options: dict[str, Any] = field(default_factory=dict)

    def beaten_by(self, value: float) -> bool:
        """Strictly: a tie keeps the earlier checkpoint."""
        return value < self.value if self.better == "lower" else value > self.value

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def read(run: RunDir) -> Best | None:
        """best.json of `run`, or None when there is none yet."""
        path = run.best_record
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            metric, value, iteration, better = (data[key] for key in RECORD_KEYS)
            options = data.get("options", {})  # records before [eval.options]: none
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CgfwError(
                f"{path}: not a best-checkpoint record ({type(exc).__name__}: {exc}); it should "
                'hold {"metric", "value", "iteration", "better"}. Delete it (and best.pt) to '
                "start the best afresh"
            ) from None
        fits = (
            isinstance(metric, str)
            and isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and isinstance(iteration, int)
            and not isinstance(iteration, bool)
            and better in BETTER
            and isinstance(options, dict)
        )
        if not fits:
            raise CgfwError(
                f"{path}: not a best-checkpoint record: {data!r}; it should hold a metric name, "
                'a finite value, an iteration and better = "lower" or "higher". Delete it (and '
                "best.pt) to start the best afresh"
            )
        return Best(metric, float(value), iteration, better, options)


def weight_scores(
    registry: Registry, metrics: list[str], directions: Iterable[str], paired: bool, ema: bool
) -> dict[str, Better]:
    """Every score an [eval] of this run gives that depends on its weights, and which way is
    better: eval/a2b/psnr, ... (a paired metric only on aligned data, as `evaluate` computes
    them), eval/cycle/a/l1 with both directions, and with train.ema the trained weights' as
    eval_raw/... too. eval/baseline/... scores the untranslated inputs: no checkpoint beats
    another by it."""
    usable = usable_metrics(with_companions(metrics, registry), registry, paired)
    better = {name: declared_better(registry, name) for name in usable}
    rows = [d for d in ("a2b", "b2a") if d in directions]
    scores: dict[str, Better] = {}
    for prefix in ("eval", "eval_raw") if ema else ("eval",):
        for row in rows:
            scores |= {f"{prefix}/{row}/{name}": better[name] for name in usable}
        if "b2a" in rows:  # the cycle error, with both directions
            scores |= {f"{prefix}/cycle/{side}/l1": "lower" for side in ("a", "b")}
    return scores


def declared_better(registry: Registry, name: str) -> Better:
    """Which way metric `name` is better, as its plugin declares (higher_is_better)."""
    declared = getattr(build_metric(registry, name), "higher_is_better", None)
    if not isinstance(declared, bool):
        component = registry.get("metric", name)
        raise CgfwError(
            f"train.keep_best: metric '{name}' (plugin '{component.plugin}') declares no "
            "higher_is_better (True or False), so which of two scores is better is unknown; "
            "the plugin must set it"
        )
    return "higher" if declared else "lower"


@dataclass
class KeepBest:
    """train.keep_best: the score, which way it is better, and the best so far."""

    metric: str
    better: Better
    best: Best | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def start(
        metric: str,
        known: dict[str, Better],
        run: RunDir,
        where: str,
        options: dict[str, Any] | None = None,
    ) -> KeepBest:
        """Checked against the scores [eval] computes for this run (a typo fails before the
        first iteration, not at the first evaluation hours in); the best so far read back
        from best.json when the run resumes."""
        if metric not in known:
            close = difflib.get_close_matches(metric, list(known), n=1)
            why = (
                " (the baseline scores the untranslated inputs, the same at every evaluation)"
                if metric.startswith("eval/baseline/")
                else f" (did you mean '{close[0]}'?)"
                if close
                else ""
            )
            raise CgfwError(
                f"{where}: train.keep_best = {metric!r} is not a score of this run's weights "
                f"that [eval] computes{why}; those are {', '.join(known) or 'none'}. For "
                "another metric add it to eval.metrics (paired ones, such as psnr, need aligned "
                "test pairs)"
            )
        keeper = KeepBest(metric, known[metric], options=dict(options or {}))
        saved = Best.read(run)
        if saved is not None and (saved.metric, saved.better) != (metric, keeper.better):
            log.warning(
                "%s holds the best by %s (%s is better; %g at iteration %d); this run keeps the "
                "best by %s from now on, so its first evaluation replaces best.pt",
                run.best_record, saved.metric, saved.better, saved.value, saved.iteration, metric,
            )  # fmt: skip
        elif saved is not None and saved.options != keeper.options:
            log.warning(
                "%s holds the best by %s scored with eval.options %s; this run scores it with "
                "%s, another scale, so its first evaluation replaces best.pt",
                run.best_record, metric, saved.options or "{}", keeper.options or "{}",
            )  # fmt: skip
        elif saved is not None:
            keeper.best = saved
        return keeper

    def offer(self, scores: dict[str, float], iteration: int) -> Best | None:
        """The new best when `scores` (an evaluation's, at `iteration`) beat the best so far;
        a score missing from them (not finite: flat_metrics leaves those out) never does."""
        value = scores.get(self.metric)
        if value is None or not math.isfinite(value):
            log.warning(
                "%s is not finite at iteration %d; the best checkpoint stays",
                self.metric,
                iteration,
            )
            return None
        if self.best is not None and not self.best.beaten_by(value):
            return None
        return Best(self.metric, value, iteration, self.better, self.options)
