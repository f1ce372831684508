"""The paper plugin's command line: `cgfw import-weights`. Only click here, so listing the
commands (`cgfw --help`) imports no torch; the work is cgfw_paper/import_weights.py's."""

from __future__ import annotations

from pathlib import Path

import click

from cgfw import Register, console, hookimpl, out

SET_HELP = "Override a recipe key, e.g. --set data.root=datasets/horse2zebra (repeatable)."


@click.command("import-weights")
@click.argument("files", nargs=-1, metavar="FILE...")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="The run directory to write (default: a new one under the recipe's run.output_dir).",
)
@click.option(
    "--recipe",
    default="paper_default",
    show_default=True,
    help="Recipe for everything the files do not decide (data, losses, training).",
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
def import_weights_cmd(
    files: tuple[str, ...], out_dir: Path | None, recipe: str, overrides: tuple[str, ...]
) -> None:
    """Turn networks trained with the authors' code into a cgfw run directory.

    FILE is one of the authors' .pth files, its network read from its name (latest_net_G_A.pth,
    200_net_D_B.pth, latest_net_G.pth for a pretrained model), or ROLE=FILE with ROLE one of
    G_A (A->B), G_B (B->A), D_A (judges B), D_B (judges A), G (= G_A).

    \b
    cgfw import-weights checkpoints/horse2zebra/latest_net_G_*.pth --out runs/h2z
    cgfw import-weights G=horse2zebra.pth --out runs/h2z-pretrained
    """
    from cgfw_paper.import_weights import describe, import_weights  # torch: only when run

    result = import_weights(files, out_dir, recipe, overrides)
    for s in result.sources:
        stale = f" ({len(s.dropped)} stale InstanceNorm keys dropped)" if s.dropped else ""
        out.print(f"{s.role} {s.path} -> {s.network}: {describe(s.settings)}{stale}", markup=False)
    if result.fresh:
        console.print(
            f"not in the files, freshly initialised: {', '.join(result.fresh)}"
            + (" (B -> A translation is untrained)" if "g_ba" in result.fresh else "")
        )
    out.print(f"run directory: {result.run_dir}")


@hookimpl
def register_commands(register: Register) -> None:
    register(
        "import-weights",
        lambda _options: import_weights_cmd,
        None,
        "networks trained with the authors' code (.pth) -> a cgfw run directory",
    )
