"""`cgfw compare`: the command line over cgfw.tools.compare."""

from __future__ import annotations

from pathlib import Path

import click

from cgfw.cli.console import friendly, out
from cgfw.tools.compare import (
    GRID_IMAGES,
    find_runs,
    group_seeds,
    plot,
    render,
    table_rows,
)
from cgfw.tools.grid import sample_grid


@click.command("compare")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--sort", metavar="RESULT", help="Order the runs by a result, e.g. a2b.psnr or loss.g_total."
)
@click.option("--descending", is_flag=True, help="Highest first (for PSNR, SSIM).")
@click.option(
    "--results",
    "patterns",
    multiple=True,
    metavar="GLOB",
    help="Only the results (and curves) matching, e.g. --results 'a2b.*'; repeatable.",
)
@click.option("--csv", "fmt", flag_value="csv", help="Comma-separated values instead of a table.")
@click.option("--markdown", "fmt", flag_value="markdown", help="A markdown table.")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE.png",
    help="Also draw the runs' metric curves side by side ([eval] every; else the losses).",
)
@click.option(
    "--grid",
    "grid_path",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE.png",
    help="Also draw each run's translations of the same 10 held-out images (first seed).",
)
@friendly
def compare_cmd(
    paths: tuple[Path, ...],
    sort: str | None,
    descending: bool,
    patterns: tuple[str, ...],
    fmt: str | None,
    plot_path: Path | None,
    grid_path: Path | None,
) -> None:
    """Compare RUN_DIRs (or folders of runs, such as an ablation's) in one table: the recipe
    keys in which they differ, held-out metrics from `cgfw eval` and final losses.

    Runs that differ only in run.seed (`cgfw ablate --seeds`) share a row: mean ± sample std.
    """
    grouped, shown = group_seeds(find_runs(list(paths)))
    # With --plot, a pattern may name only curves (runs not yet scored by `cgfw eval`).
    columns, rows = table_rows(grouped, shown, sort, descending, patterns, strict=plot_path is None)
    rendered = render(columns, rows, fmt or "table")
    if isinstance(rendered, str):
        click.echo(rendered, nl=False)
    else:
        out.print(rendered)
    if plot_path is not None:
        drawn = plot(grouped, patterns, plot_path)
        click.echo(f"plotted {', '.join(drawn)} to {plot_path}", err=True)
    if grid_path is not None:
        sample_grid([(row.label, row.runs[0].path) for row in grouped], grid_path, GRID_IMAGES)
        click.echo(
            f"drew {len(grouped)} run(s) on {GRID_IMAGES} held-out images to {grid_path}", err=True
        )
