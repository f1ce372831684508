"""`cgfw ablate`: the command line over cgfw.tools.ablate."""

from __future__ import annotations

import click

from cgfw.cli.console import SET_HELP, console, friendly, out
from cgfw.tools.ablate import run_ablation
from cgfw.tools.compare import find_runs, group_seeds, render, table_rows


@click.command(name="ablate")
@click.argument("recipe", default="paper_default")
@click.option(
    "--disable",
    multiple=True,
    metavar="NAME",
    help="A named ablation (see `cgfw components ablation`); repeatable.",
)
@click.option(
    "--vary",
    multiple=True,
    metavar="KEY=V1,V2",
    help="One run per value, e.g. --vary losses.gan.name=lsgan,bce; repeatable.",
)
@click.option(
    "--seeds",
    metavar="S1,S2,...",
    help="Run every variant once per seed (run.seed), e.g. --seeds 0,1,2; "
    "`cgfw compare` then reports mean +- std over the seeds.",
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--device", help="auto, cpu, cuda or cuda:N (overrides train.device).")
@click.option(
    "--jobs",
    "-j",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Variants run at once, each in its own process (spread over the GPUs if several); "
    "with --launcher slurm, array tasks at once.",
)
@click.option(
    "--launcher",
    metavar="NAME",
    help="Where the runs train (`cgfw components launcher`): local (default) or slurm.",
)
@click.option(
    "--launcher-opt",
    "launcher_opts",
    multiple=True,
    metavar="KEY=VALUE,...",
    help="The launcher's options, e.g. --launcher-opt partition=gpu,gpus_per_node=1,"
    "timeout_min=720 (see `cgfw components launcher`); repeatable.",
)
@friendly
def ablate_cmd(
    recipe: str,
    disable: tuple[str, ...],
    vary: tuple[str, ...],
    seeds: str | None,
    overrides: tuple[str, ...],
    device: str | None,
    jobs: int,
    launcher: str | None,
    launcher_opts: tuple[str, ...],
) -> None:
    """Run RECIPE and one-change variants of it side by side, then compare them in a table.

    Each variant changes one thing: --disable identity, pool, gan, cycle, cycle_backward,
    cycle_forward (and any a plugin adds); --vary KEY=V1,V2 adds a run per value;
    --seeds 0,1,2 repeats every run per seed (RECIPE alone with --seeds is fine too).
    The runs train here (--jobs N side by side) or, with --launcher slurm, as one Slurm job
    array whose preempted or timed-out tasks checkpoint, requeue and resume.
    """
    parent, results = run_ablation(
        recipe, disable, vary, seeds, overrides, device, jobs, launcher, launcher_opts, console
    )
    if results is None:  # submitted to a scheduler: the runs go on after this command
        return
    # The same table as `cgfw compare PARENT`: what differs, then the results (final losses, the
    # mean over the last log window; held-out metrics once `cgfw eval` has scored the runs).
    out.print(render(*table_rows(*group_seeds(find_runs([parent])), None, False), "table"))
    failed = [label for label, losses in results.items() if not losses]
    if failed:
        console.print(f"[red]failed: {', '.join(failed)}[/red] (their log.txt says why)")
    console.print(f"after `cgfw eval` on each run, `cgfw compare {parent}` adds the metrics")
