"""`cgfw evaluate`: the command line over cgfw.tools.evaluate."""

from __future__ import annotations

from pathlib import Path

import click

from cgfw.cli.console import checkpoint_option, console, friendly, out, raw_option
from cgfw.plugin.loader import load_plugins
from cgfw.store.layout import RunDir
from cgfw.tools.compare import run_dirs
from cgfw.tools.evaluate import (
    eval_run,
    parse_names,
    parse_options,
    table,
)
from cgfw.training.evaluation import (
    build_metric,
    default_metrics,
    metric_options,
    with_companions,
)
from cgfw.training.loop import resolve_device


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
    "--option",
    "option_texts",
    multiple=True,
    metavar="METRIC.OPTION=VALUE",
    help="A metric's option (`cgfw components metric` lists them), e.g. --option "
    "fid.resize=clean (KID, reported beside FID, takes FID's); repeatable.",
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
@checkpoint_option
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@friendly
def eval_cmd(
    paths: tuple[Path, ...],
    split: str,
    metric_names: str | None,
    option_texts: tuple[str, ...],
    batch_size: int,
    raw: bool,
    which: str,
    device: str,
) -> None:
    """Score each RUN_DIR's generators (latest checkpoint, or the one --checkpoint names) on
    its dataset's held-out split: each metric a -> b and b -> a, the untranslated inputs as a
    baseline, and the cycle error. Writes RUN_DIR/metrics.json and sends the scores to the
    run's trackers (TensorBoard HParams; its MLflow or W&B run when its recipe names them). A
    folder of runs (an ablation's) means every run in it."""
    dirs = run_dirs(list(paths))  # each has recipe.toml, or this is one clear error
    registry = load_plugins().registry
    # Before loading any weights: a typo, or KID without its network, fails fast.
    chosen = parse_names(metric_names) if metric_names is not None else default_metrics(registry)
    names = with_companions(chosen, registry)
    options = metric_options(names, parse_options(option_texts, names), registry)
    metrics = {n: build_metric(registry, n, options[n]) for n in names}  # their flags, read once
    dev = resolve_device(device, "--device")
    for run_dir in dirs:
        results = eval_run(run_dir, split, metrics, registry, dev, batch_size, raw, which, options)
        out.print(table(results, metrics, f"cgfw eval {run_dir.name}"))
        console.print(f"wrote {RunDir(run_dir).metrics}")
