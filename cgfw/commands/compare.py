"""`cgfw compare`: runs side by side, showing only the recipe keys in which they differ and their
results (held-out metrics from `cgfw eval`, final training losses)."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from cgfw.console import friendly, out
from cgfw.errors import CgfwError, did_you_mean
from cgfw.recipe import read_toml
from cgfw.tensorboard import flatten

# Keys that differ between any two runs without making them different experiments.
IGNORED = {"run.name", "run.output_dir", "run.description", "train.device"}


@dataclass
class Run:
    path: Path
    recipe: dict[str, Any]
    results: dict[str, float] = field(default_factory=dict)


def find_runs(paths: list[Path]) -> list[Run]:
    """Each path is a run directory (it has recipe.toml) or a folder of them (an ablation)."""
    dirs: list[Path] = []
    for path in paths:
        if (path / "recipe.toml").is_file():
            dirs.append(path)
        elif path.is_dir():
            found = sorted(p for p in path.iterdir() if (p / "recipe.toml").is_file())
            if not found:
                raise CgfwError(
                    f"{path}: neither a run directory nor a folder of runs (no recipe.toml)"
                )
            dirs += found
        else:
            raise CgfwError(f"{path}: no such run directory")
    return [load_run(d) for d in dirs]


def load_run(path: Path) -> Run:
    run = Run(path, flatten(read_toml(path / "recipe.toml")))
    metrics = path / "metrics.json"
    if metrics.is_file():
        data = json.loads(metrics.read_text(encoding="utf-8"))
        for direction in ("a2b", "b2a", "baseline", "cycle"):
            for key, value in flatten(data.get(direction) or {}).items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    run.results[f"{direction}.{key}"] = float(value)
    losses = path / "final_losses.json"
    if losses.is_file():
        for key, value in json.loads(losses.read_text(encoding="utf-8")).items():
            run.results[f"loss.{key}"] = float(value)
    return run


def table_rows(
    runs: list[Run], sort: str | None, descending: bool
) -> tuple[list[str], list[list[str]]]:
    keys = sorted({k for r in runs for k in r.recipe} - IGNORED)
    differing = [k for k in keys if len({repr(r.recipe.get(k)) for r in runs}) > 1]
    results = sorted({k for r in runs for k in r.results})
    if sort is not None:
        if sort not in results:
            raise CgfwError(
                f"--sort: no result named '{sort}'{did_you_mean(sort, results)} "
                f"(have: {', '.join(results) or 'none'})"
            )
        missing = -math.inf if descending else math.inf
        runs = sorted(runs, key=lambda r: r.results.get(sort, missing), reverse=descending)
    columns = ["run", *differing, *results]
    rows = [
        [
            r.path.name,
            *(str(r.recipe.get(k, "-")) for k in differing),
            *(_number(r.results.get(k)) for k in results),
        ]
        for r in runs
    ]
    return columns, rows


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def render(columns: list[str], rows: list[list[str]], fmt: str) -> str | Table:
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        writer.writerows(rows)
        return buffer.getvalue()
    if fmt == "markdown":
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"
    table = Table(*columns, title="runs: the recipe keys that differ, then the results")
    for row in rows:
        table.add_row(*row)
    return table


@click.command("compare")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--sort", metavar="RESULT", help="Order the runs by a result, e.g. a2b.psnr or loss.g_total."
)
@click.option("--descending", is_flag=True, help="Highest first (for PSNR, SSIM).")
@click.option("--csv", "fmt", flag_value="csv", help="Comma-separated values instead of a table.")
@click.option("--markdown", "fmt", flag_value="markdown", help="A markdown table.")
@friendly
def compare_cmd(
    paths: tuple[Path, ...], sort: str | None, descending: bool, fmt: str | None
) -> None:
    """Compare RUN_DIRs (or folders of runs, such as an ablation's) in one table: the recipe
    keys in which they differ, held-out metrics from `cgfw eval` and final losses."""
    runs = find_runs(list(paths))
    columns, rows = table_rows(runs, sort, descending)
    rendered = render(columns, rows, fmt or "table")
    if isinstance(rendered, str):
        click.echo(rendered, nl=False)
    else:
        out.print(rendered)
