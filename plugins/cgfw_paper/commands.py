"""The paper plugin's command line: `cgfw import-weights` and `cgfw pretrained`. Only click here,
so listing the commands (`cgfw --help`) imports no torch; the work is cgfw_paper/import_weights.py's
and cgfw_paper/pretrained.py's."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table

from cgfw import Register, console, hookimpl, out

if TYPE_CHECKING:
    from cgfw_paper.import_weights import Imported

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
    from cgfw_paper.import_weights import import_weights  # torch: only when run

    report(import_weights(files, out_dir, recipe, overrides))


def report(result: Imported) -> None:
    from cgfw_paper.import_weights import describe

    for s in result.sources:
        stale = f" ({len(s.dropped)} stale InstanceNorm keys dropped)" if s.dropped else ""
        out.print(f"{s.role} {s.path} -> {s.network}: {describe(s.settings)}{stale}", markup=False)
    if result.fresh:
        console.print(
            f"not in the files, freshly initialised: {', '.join(result.fresh)}"
            + (" (B -> A translation is untrained)" if "g_ba" in result.fresh else "")
        )
    out.print(f"run directory: {result.run_dir}")


@click.command("pretrained")
@click.argument("name", required=False)
@click.option("--list", "listing", is_flag=True, help="List the authors' pretrained models.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="The run directory to write (default: runs/pretrained/NAME).",
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option(
    "--accept-new-hash",
    is_flag=True,
    help="Use (and record) a file whose SHA-256 differs from the one recorded on its first "
    "download, instead of refusing it.",
)
def pretrained_cmd(
    name: str | None,
    listing: bool,
    out_dir: Path | None,
    overrides: tuple[str, ...],
    accept_new_hash: bool,
) -> None:
    """Download one of the authors' pretrained CycleGAN generators (NAME: see --list) into a
    run directory that translate, eval, export and cgfw.load use.

    Each is one generator, A -> B in the name's direction (B -> A stays untrained). The file is
    kept in CGFW_CACHE/pretrained/ and its SHA-256 recorded on its first download
    (CGFW_CACHE/downloads.json): a later file that differs is refused. The server is the
    authors' (efrosgans.eecs.berkeley.edu); set CGFW_PRETRAINED_URL to use a mirror.

    \b
    cgfw pretrained horse2zebra
    cgfw translate runs/pretrained/horse2zebra horse.jpg zebra.jpg
    """
    from cgfw_paper.pretrained import PUBLISHED, pretrained

    if listing:
        table = Table("name", "translates (A -> B)", "dataset (cgfw data download)")
        for known, published in PUBLISHED.items():
            table.add_row(known, published.direction, published.dataset or "")
        out.print(table)
        return
    if name is None:
        raise click.UsageError("give NAME (cgfw pretrained --list lists them)")
    result = pretrained(name, out_dir, overrides, accept_new_hash)
    report(result)
    out.print(f"translate A -> B with: cgfw translate {result.run_dir} IN OUT", markup=False)


@hookimpl
def register_commands(register: Register) -> None:
    register(
        "import-weights",
        lambda _options: import_weights_cmd,
        None,
        "networks trained with the authors' code (.pth) -> a cgfw run directory",
    )
    register(
        "pretrained",
        lambda _options: pretrained_cmd,
        None,
        "the authors' pretrained generators by name -> a cgfw run directory",
    )
