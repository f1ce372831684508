"""`cgfw eval`: score a trained run on its dataset's held-out split.

Both generators translate every held-out item (a -> b and b -> a) and each metric compares the
translations with their real counterparts. Two reference rows put the numbers in context:
``baseline`` scores the untranslated inputs (real_a against real_b), the do-nothing translator
a model has to beat, and ``cycle`` is the L1 between each real image and its reconstruction
(a -> b -> a, b -> a -> b). Paired metrics (PSNR, SSIM, L1) need aligned pairs; on a dataset
without them (an image folder) only the distribution metrics (KID, FID, SWD) and the cycle error
are computed. FID always comes with KID beside it, and every result with its sample count.

Results go to RUN_DIR/metrics.json, to a table on stdout and to the run's TensorBoard HParams.
Several runs in one call share the real images' Inception features.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click
import torch
from rich.table import Table

from cgfw.cli.compare import run_dirs
from cgfw.cli.console import console, friendly, out
from cgfw.cli.translate import load_generator, raw_option
from cgfw.errors import CgfwError
from cgfw.evaluation import (
    Metric,
    build_metric,
    default_metrics,
    evaluate,
    flat_metrics,
    with_companions,
)
from cgfw.layout import RunDir
from cgfw.plugins import load_plugins
from cgfw.recipe import Resolved, read_toml
from cgfw.registry import Registry
from cgfw.tracking import Tracking
from cgfw.trainer import build_dataset, resolve_device


def parse_names(text: str) -> list[str]:
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise CgfwError("--metrics: give at least one metric name, e.g. --metrics psnr,ssim")
    return names


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
    return grid


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


@click.command("eval")
@click.argument(
    "paths", metavar="RUN_DIR...", nargs=-1, required=True, type=click.Path(path_type=Path)
)
@click.option(
    "--split",
    type=click.Choice(["test", "train"]),
    default="test",
    show_default=True,
    help="The dataset split to score (training items use a fixed seed).",
)
@click.option(
    "--metrics",
    "metric_names",
    default=None,
    help="Comma-separated metric names (`cgfw components metric` lists them); default: those "
    "their plugins mark as the default (psnr, ssim, l1 with cgfw's paper plugin); "
    "kid, fid need `pip install 'cgfw[metrics]'`.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=8,
    metavar="N",
    show_default=True,
    help="Images translated at once.",
)
@raw_option
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@friendly
def eval_cmd(
    paths: tuple[Path, ...],
    split: str,
    metric_names: str | None,
    batch_size: int,
    raw: bool,
    device: str,
) -> None:
    """Score each RUN_DIR's generators (latest checkpoint) on its dataset's held-out split:
    each metric a -> b and b -> a, the untranslated inputs as a baseline, and the cycle error.
    Writes RUN_DIR/metrics.json and sends the scores to the run's trackers (TensorBoard
    HParams; its MLflow or W&B run when its recipe names them). A folder of runs (an
    ablation's) means every run in it."""
    dirs = run_dirs(list(paths))  # each has recipe.toml, or this is one clear error
    registry = load_plugins().registry
    # Before loading any weights: a typo, or KID without its network, fails fast.
    chosen = parse_names(metric_names) if metric_names is not None else default_metrics(registry)
    names = with_companions(chosen, registry)
    metrics = {n: build_metric(registry, n) for n in names}  # their flags, read once
    dev = resolve_device(device, "--device")
    for run_dir in dirs:
        results = eval_run(run_dir, split, metrics, registry, dev, batch_size, raw)
        out.print(table(results, metrics, f"cgfw eval {run_dir.name}"))
        console.print(f"wrote {RunDir(run_dir).metrics}")


def eval_run(
    run_dir: Path,
    split: str,
    metrics: dict[str, Metric],
    registry: Registry,
    dev: torch.device,
    batch_size: int,
    raw: bool = False,
) -> dict[str, Any]:
    g_ab = load_generator(run_dir, "a2b", raw)
    resolved: Resolved = g_ab.resolved
    one_sided = "b2a" not in resolved.model_class.directions
    g_ba = None if one_sided else load_generator(run_dir, "b2a", raw)
    if one_sided:
        console.print(
            f"[yellow]note:[/yellow] model '{resolved.model.name}' is one-sided: a -> b only, "
            "no b -> a scores or cycle error",
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
            batch_size,
        )  # fmt: skip
    except torch.cuda.OutOfMemoryError:
        raise CgfwError("out of GPU memory; use a smaller --batch-size or --device cpu") from None
    results["checkpoint"], results["iteration"] = str(g_ab.checkpoint), g_ab.iteration
    results["weights"] = "ema" if g_ab.averaged else "trained"
    path = RunDir(run_dir).metrics
    path.write_text(json.dumps(json_ready(results), indent=2) + "\n", encoding="utf-8")
    track(run_dir, results, g_ab.iteration, registry)
    return results
