"""`cgfw eval`: score a trained run on its dataset's held-out split.

Both generators translate every held-out item (a -> b and b -> a) and each metric compares the
translations with their real counterparts. Two reference rows put the numbers in context:
``baseline`` scores the untranslated inputs (real_a against real_b), the do-nothing translator
a model has to beat, and ``cycle`` is the L1 between each real image and its reconstruction
(a -> b -> a, b -> a -> b). Paired metrics (PSNR, SSIM, L1) need aligned pairs; on a dataset
without them (an image folder) only the distribution metrics (KID, FID, SWD) and the cycle error
are computed. FID always comes with KID beside it, and every result with its sample count.

Results go to RUN_DIR/metrics.json (with every metric's options), to a table on stdout and to
the run's TensorBoard HParams. Several runs in one call share the real images' Inception
features, and later calls read them from the dataset's saved reference statistics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from rich.table import Table

from cgfw.errors import CgfwError
from cgfw.plugin.registry import Registry
from cgfw.recipe import Resolved, read_toml
from cgfw.recipe.keys import parse_value
from cgfw.session.load import Generator, OneSided, load_generator
from cgfw.store.folder import ModelFolder
from cgfw.store.layout import RunDir
from cgfw.terminal import console
from cgfw.training.evaluation import (
    Metric,
    evaluate,
    flat_metrics,
    real_images,
)
from cgfw.training.loop import build_dataset
from cgfw.training.tracking import Tracking


def parse_names(text: str) -> list[str]:
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise CgfwError("--metrics: give at least one metric name, e.g. --metrics psnr,ssim")
    return names


def parse_options(texts: tuple[str, ...], names: list[str]) -> dict[str, dict[str, Any]]:
    """`--option fid.resize=clean` -> {"fid": {"resize": "clean"}}; the value is TOML, else a
    plain string. The metric must be one of those scored."""
    options: dict[str, dict[str, Any]] = {}
    for text in texts:
        key, sep, raw = text.partition("=")
        name, dot, option = key.strip().partition(".")
        if not sep or not dot or not name or not option or "." in option:
            raise CgfwError(
                f"--option {text!r}: expected METRIC.OPTION=VALUE, e.g. --option fid.resize=clean"
            )
        if name not in names:
            raise CgfwError(
                f"--option {key.strip()}: '{name}' is not scored here (metrics: "
                f"{', '.join(names)}); add it to --metrics"
            )
        options.setdefault(name, {})[option] = parse_value(raw, f"--option {key.strip()}")
    return options


def json_ready(node: Any) -> Any:
    """inf / nan -> None: metrics.json stays standard JSON (PSNR of identical images is inf)."""
    if isinstance(node, dict):
        return {k: json_ready(v) for k, v in node.items()}
    if isinstance(node, float) and not math.isfinite(node):
        return None
    return node


def table(results: dict[str, Any], metrics: dict[str, Metric], title: str) -> Table:
    grid = Table(title=f"{title}: {results['split']} split, {results['samples']} sample(s)")
    grid.add_column("metric")
    for column in ("a2b", "b2a", "baseline (no translation)"):
        grid.add_column(column, justify="right")
    for name in results["a2b"]:
        better = "higher" if metrics[name].higher_is_better else "lower"
        cells = [
            f"{results[row][name]:.4f}" if row in results else "one-sided"
            for row in ("a2b", "b2a", "baseline")
        ]
        grid.add_row(f"{name} ({better} is better)", *cells)
    cycle = results.get("cycle")
    if cycle is not None:  # a model that learns both directions
        grid.add_row(
            "cycle l1 (lower is better)", f"{cycle['a']['l1']:.4f}", f"{cycle['b']['l1']:.4f}", ""
        )
    settings = options_text(results.get("options") or {})
    if settings:  # a FID is comparable only with FIDs computed the same way
        grid.caption = f"options: {settings}"
    return grid


def options_text(options: Mapping[str, Mapping[str, Any]]) -> str:
    """{"fid": {"resize": "tf1"}} -> "fid.resize=tf1"."""
    return ", ".join(f"{m}.{k}={v}" for m, values in options.items() for k, v in values.items())


def track(run_dir: Path, results: dict[str, Any], iteration: int, registry: Registry) -> None:
    """The scores to the run's trackers (TensorBoard HParams, its MLflow or W&B run); a
    tracker that cannot take them is named and skipped, metrics.json is written already."""
    try:
        tracking = Tracking.open(run_dir, read_toml(RunDir(run_dir).recipe), registry, console)
    except CgfwError as exc:
        console.print(f"[yellow]trackers skipped: {exc}[/yellow]", highlight=False)
        return
    tracking.summary(flat_metrics(results), iteration)
    tracking.close("evaluated")


def eval_run(
    run_dir: Path,
    split: str,
    metrics: dict[str, Metric],
    registry: Registry,
    dev: torch.device,
    batch_size: int,
    raw: bool = False,
    which: str = "latest",
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    g_ab = load_generator(run_dir, "a2b", raw, which)
    resolved: Resolved = g_ab.resolved
    one_sided = "b2a" not in resolved.model.info("directions", {})
    g_ba: Generator | None = None
    if one_sided:
        console.print(
            f"[yellow]note:[/yellow] model '{resolved.model.name}' is one-sided: a -> b only, "
            "no b -> a scores or cycle error",
            highlight=False,
        )
    else:
        try:
            g_ba = load_generator(run_dir, "b2a", raw, which)
        except OneSided as exc:  # an import of one generator (a pretrained model): b2a untrained
            console.print(
                f"[yellow]note:[/yellow] {exc}; scored a -> b only, no b -> a scores or cycle "
                "error",
                highlight=False,
            )
    dataset = build_dataset(resolved, split)
    paired = bool(getattr(dataset, "paired", False))
    skipped = sorted(n for n, m in metrics.items() if m.paired and not paired)
    if skipped:
        console.print(
            f"[yellow]note:[/yellow] dataset '{resolved.components['data'].name}' has no "
            f"aligned pairs in its {split} split, so the paired metrics "
            f"({', '.join(skipped)}) are skipped",
            highlight=False,
        )
    try:
        results = evaluate(
            g_ab.net.to(dev), g_ba.net.to(dev) if g_ba else None, dataset, split,
            list(metrics), registry, dev,
            batch_size, options, real_images(resolved, dataset, split),
        )  # fmt: skip
    except torch.cuda.OutOfMemoryError:
        raise CgfwError("out of GPU memory; use a smaller --batch-size or --device cpu") from None
    results |= {"checkpoint": str(g_ab.checkpoint), "iteration": g_ab.iteration}
    results["weights"] = "ema" if g_ab.averaged else "trained"
    RunDir(run_dir).write_metrics(json_ready(results))
    # A model folder's recipe names its author's trackers (their W&B project, their MLflow
    # store): scoring a downloaded model must not log into them.
    if not ModelFolder(run_dir).is_folder():
        track(run_dir, results, g_ab.iteration, registry)
    return results
