"""`cgfw compare`: runs side by side, showing only the recipe keys in which they differ and their
results (held-out metrics from `cgfw eval`, with the metrics' options, final training losses)."""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from cgfw.errors import CgfwError, did_you_mean
from cgfw.recipe import read_toml
from cgfw.recipe.keys import flatten
from cgfw.store.layout import RunDir

# Keys that differ between any two runs without making them different experiments.
IGNORED = {"run.name", "run.output_dir", "run.description", "train.device"}
SEED = "run.seed"
GRID_IMAGES = 10
SEED_SUFFIX = re.compile(r"-seed\d+$")  # cgfw ablate --seeds names runs LABEL-seedN


@dataclass
class Run:
    path: Path
    recipe: dict[str, Any]
    results: dict[str, float] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)  # "fid.resize": "clean", from eval


def find_runs(paths: list[Path]) -> list[Run]:
    return [load_run(d) for d in run_dirs(paths)]


def run_dirs(paths: list[Path]) -> list[Path]:
    """Each path is a run directory (it has recipe.toml) or a folder of them (an ablation)."""
    dirs: list[Path] = []
    for path in paths:
        if RunDir(path).recipe.is_file():
            dirs.append(path)
        elif path.is_dir():
            found = sorted(p for p in path.iterdir() if RunDir(p).recipe.is_file())
            if not found:
                raise CgfwError(
                    f"{path}: neither a run directory nor a folder of runs (no recipe.toml)"
                )
            dirs += found
        else:
            raise CgfwError(f"{path}: no such run directory")
    return dirs


def load_run(path: Path) -> Run:
    run = Run(path, flatten(read_toml(RunDir(path).recipe)))
    metrics = RunDir(path).metrics
    if metrics.is_file():
        data = json.loads(metrics.read_text(encoding="utf-8"))
        if isinstance(data.get("samples"), int):
            run.results["samples"] = float(data["samples"])
        for direction in ("a2b", "b2a", "baseline", "cycle"):
            for key, value in flatten(data.get(direction) or {}).items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    run.results[f"{direction}.{key}"] = float(value)
        options = data.get("options")
        if isinstance(options, dict):
            run.options = {k: str(v) for k, v in flatten(options).items()}
    losses = RunDir(path).final_losses
    if losses.is_file():
        for key, value in json.loads(losses.read_text(encoding="utf-8")).items():
            run.results[f"loss.{key}"] = float(value)
    return run


@dataclass
class Row:
    """One line of the table: a run, or the runs of one variant that differ only in run.seed."""

    label: str
    recipe: dict[str, Any]
    runs: list[Run]

    def values(self, key: str) -> list[float]:
        return [r.results[key] for r in self.runs if key in r.results]

    def mean(self, key: str) -> float | None:
        values = self.values(key)
        return statistics.fmean(values) if values else None


@dataclass
class Stat:
    mean: float
    std: float | None  # None: a single run
    n: int  # runs that have the result
    of: int  # runs in the row

    def __str__(self) -> str:
        text = f"{self.mean:.4g}" if self.std is None else f"{self.mean:.4g} ± {self.std:.2g}"
        return text if self.n == self.of else f"{text} (n={self.n})"


def differing_keys(runs: list[Run]) -> list[str]:
    keys = sorted({k for r in runs for k in r.recipe} - IGNORED)
    return [k for k in keys if len({repr(r.recipe.get(k)) for r in runs}) > 1]


def group_seeds(runs: list[Run]) -> tuple[list[Row], list[str]]:
    """Runs whose recipes differ only in run.seed become one row; the recipe keys to show
    (those that differ)."""
    differing = differing_keys(runs)
    single = [Row(r.path.name, r.recipe, [r]) for r in runs]
    if SEED not in differing:
        return single, differing
    keys = [k for k in differing if k != SEED]
    groups: dict[tuple[str, ...], list[Run]] = {}
    for run in runs:
        groups.setdefault(tuple(repr(run.recipe.get(k)) for k in keys), []).append(run)
    if len(groups) == len(runs):  # no two runs differ only by seed: keep run.seed in view
        return single, differing
    rows = [Row(_group_label(g), g[0].recipe, g) for g in groups.values()]
    labels = [row.label for row in rows]
    for row in rows:  # "base" of two ablations: say whose
        if labels.count(row.label) > 1:
            row.label = f"{row.label} ({row.runs[0].path.parent.name})"
    return rows, keys


def _group_label(runs: list[Run]) -> str:
    """LABEL for LABEL-seed0, LABEL-seed1 (ablate --seeds); else the runs' common run.name."""
    first = runs[0].path.name
    if len(runs) == 1:
        return first
    if SEED_SUFFIX.search(first):
        return SEED_SUFFIX.sub("", first)
    names = {str(r.recipe.get("run.name")) for r in runs}
    return names.pop() if len(names) == 1 else first


def select(
    names: list[str], patterns: tuple[str, ...], what: str, strict: bool = True
) -> list[str]:
    """The names matching any glob in `patterns` (all names when there are none)."""
    if not patterns:
        return names
    chosen = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    if not chosen and strict:
        have = ", ".join(names) or "none"
        raise CgfwError(f"--results {', '.join(patterns)}: matches no {what} (have: {have})")
    return chosen


def table_rows(
    rows: list[Row],
    shown: list[str],
    sort: str | None,
    descending: bool,
    patterns: tuple[str, ...] = (),
    strict: bool = True,
) -> tuple[list[str], list[list[str | Stat]]]:
    """The table of `group_seeds`' rows: run, differing keys, seeds, then the results."""
    grouped = any(len(row.runs) > 1 for row in rows)
    names = {k for row in rows for r in row.runs for k in r.results}
    results = select(sorted(names), patterns, "result", strict)
    if sort is not None:
        if sort not in results:
            raise CgfwError(
                f"--sort: no result named '{sort}'{did_you_mean(sort, results)} "
                f"(have: {', '.join(results) or 'none'})"
            )
        missing = -math.inf if descending else math.inf

        def key(row: Row) -> float:
            mean = row.mean(sort)
            return missing if mean is None else mean

        rows = sorted(rows, key=key, reverse=descending)
    options = metric_options(rows, results)
    columns = ["run", *shown, *options, *(["seeds"] if grouped else []), *results]
    table: list[list[str | Stat]] = []
    for row in rows:
        cells: list[str | Stat] = [row.label, *(str(row.recipe.get(k, "-")) for k in shown)]
        for option in options:
            values = sorted({r.options[option] for r in row.runs if option in r.options})
            cells.append(", ".join(values) or "-")
        if grouped:
            cells.append(str(len(row.runs)))
        cells += [_stat(row.values(k), len(row.runs)) for k in results]
        table.append(cells)
    return columns, table


def metric_options(rows: list[Row], results: list[str]) -> list[str]:
    """The options of the metrics among `results` (fid.resize for a2b.fid), shown even when
    every run shares them: a FID means something only beside FIDs computed the same way."""
    metrics = {r.split(".", 1)[1] for r in results if r.startswith(("a2b.", "b2a.", "baseline."))}
    keys = {k for row in rows for run in row.runs for k in run.options}
    return sorted(k for k in keys if k.split(".", 1)[0] in metrics)


def _stat(values: list[float], of: int) -> str | Stat:
    if not values:
        return "-"
    std = statistics.stdev(values) if len(values) > 1 else None
    return Stat(statistics.fmean(values), std, len(values), of)


def render(columns: list[str], rows: list[list[str | Stat]], fmt: str) -> str | Table:
    if fmt == "csv":  # numbers stay numbers: a mean column, and a .std column where seeds vary
        with_std = {
            i
            for row in rows
            for i, c in enumerate(row)
            if isinstance(c, Stat) and c.std is not None
        }
        header: list[str] = []
        for i, name in enumerate(columns):
            header += [name, f"{name}.std"] if i in with_std else [name]
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        for row in rows:
            line: list[str] = []
            for i, cell in enumerate(row):
                value = f"{cell.mean:.6g}" if isinstance(cell, Stat) else cell
                line += [value, _csv_std(cell)] if i in with_std else [value]
            writer.writerow(line)
        return buffer.getvalue()
    text = [[str(c) for c in row] for row in rows]
    if fmt == "markdown":
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in text]) + "\n"
    table = Table(*columns, title="runs: the recipe keys that differ, then the results")
    for row_text in text:  # Text: recipe values are shown as written, never as rich markup
        table.add_row(*(Text(cell) for cell in row_text))
    return table


def _csv_std(cell: str | Stat) -> str:
    return f"{cell.std:.6g}" if isinstance(cell, Stat) and cell.std is not None else ""


def curves(run: Run) -> dict[str, list[tuple[int, float]]]:
    """The run's scalar curves from its TensorBoard events, named like the results
    (eval/a2b/psnr -> a2b.psnr, loss/g_total -> loss.g_total)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found: dict[str, list[tuple[int, float]]] = {}
    # File by file: a directory reader stops at the first file of a resumed or evaluated run.
    for path in sorted(run.path.glob("events.out.tfevents.*")):
        events = EventAccumulator(str(path), size_guidance={"scalars": 0})
        events.Reload()
        for tag in events.Tags().get("scalars", []):
            if tag.startswith(("eval/", "loss/")):
                name = tag.removeprefix("eval/").replace("/", ".")
                found.setdefault(name, []).extend((e.step, e.value) for e in events.Scalars(tag))
    return found


def plot(rows: list[Row], patterns: tuple[str, ...], path: Path) -> list[str]:
    """One panel per metric, one line per row (the mean over seeds, with a +- std band);
    held-out metric curves when the runs have them ([eval] every), else the loss curves."""
    from matplotlib.figure import Figure

    per_row = [[curves(run) for run in row.runs] for row in rows]
    names = sorted({n for runs in per_row for c in runs for n in c})
    if not names:
        raise CgfwError(
            "--plot: the runs logged no curves; held-out metric curves come from "
            "[eval] every = N in the recipe, losses from train.log_every"
        )
    names = select(names, patterns, "curve")
    # Held-out metrics when there are any (unless --results asks for losses), else losses.
    metrics = [n for n in names if not n.startswith("loss.")] or names
    cols = min(3, len(metrics))
    rows_n = math.ceil(len(metrics) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows_n), layout="constrained")
    axes = fig.subplots(rows_n, cols, squeeze=False).ravel()
    for ax, name in zip(axes, metrics, strict=False):
        for n, (row, runs) in enumerate(zip(rows, per_row, strict=True)):
            by_step: dict[int, list[float]] = {}
            for c in runs:
                for step, value in c.get(name, []):
                    by_step.setdefault(step, []).append(value)
            if not by_step:
                continue
            steps = sorted(by_step)
            mean = [statistics.fmean(by_step[s]) for s in steps]
            # Ten colours, then the same colours dashed, dotted: every row stays distinct.
            style = {"color": f"C{n % 10}", "linestyle": ("-", "--", ":")[n // 10 % 3]}
            (line,) = ax.plot(steps, mean, label=row.label, marker="o", markersize=2, **style)
            if len(runs) > 1:  # the sample std over seeds, as in the table
                values = [by_step[s] for s in steps]
                std = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
                low = [m - d for m, d in zip(mean, std, strict=True)]
                high = [m + d for m, d in zip(mean, std, strict=True)]
                ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2)
        ax.set_title(name)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize="small")
    try:
        fig.savefig(path, dpi=110)
    except (OSError, ValueError) as exc:  # ValueError: a file type matplotlib cannot write
        raise CgfwError(f"--plot {path}: cannot write: {exc}") from None
    return metrics
