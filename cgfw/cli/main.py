"""The `cgfw` command line."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape
from rich.table import Table
from rich.text import Text

import cgfw
from cgfw.cli.console import SET_HELP, console, friendly, out
from cgfw.cli.lazy import LazyGroup
from cgfw.errors import CgfwError
from cgfw.plugin.loader import Loaded, load_plugins
from cgfw.plugin.registry import KINDS, check_kind
from cgfw.store.layout import RunDir

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo


def _plugins() -> Loaded:
    return load_plugins()


def _version_text() -> str:
    """From the installed metadata alone: no plugin is imported (`cgfw plugins` loads them
    and says which are broken)."""
    lines = [f"cgfw {cgfw.__version__}"]
    for p in load_plugins(hooks=()).plugins:
        status = "installed" if p.status == "not loaded" else p.status
        lines.append(f"  plugin {p.name} ({p.distribution} {p.version}) {status}")
    return "\n".join(lines)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(_version_text())
        ctx.exit()


class PluginCommands(LazyGroup):
    """cgfw's own commands, and those plugins register with ``register_commands``. A plugin's
    command cannot replace one of cgfw's; one whose factory fails is left out and named."""

    _found: dict[str, click.Command] | None = None

    def plugin_commands(self) -> dict[str, click.Command]:
        if self._found is None:
            self._found = {}
            registry = load_plugins(hooks={"register_commands"}).registry
            for name in registry.names("command"):
                component = registry.get("command", name)
                if name in self.commands:
                    logging.getLogger("cgfw").warning(
                        "plugin '%s' registers a command '%s', which is cgfw's own; ignored",
                        component.plugin,
                        name,
                    )
                    continue
                try:
                    command = component.factory(None)
                except Exception as exc:
                    logging.getLogger("cgfw").warning(
                        "plugin '%s': command '%s' failed to load: %s", component.plugin, name, exc
                    )
                    continue
                if isinstance(command, click.Command):
                    # A CgfwError from the plugin's code is the user's mistake, shown as one
                    # line with exit code 2 as cgfw's own commands show it (a group's
                    # invoke runs its subcommands, so they are covered too).
                    command.invoke = friendly(command.invoke)  # type: ignore[method-assign]
                    self._found[name] = command
        return self._found

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.plugin_commands()})

    def listed_help(self, ctx: click.Context, name: str, limit: int = 45) -> str | None:
        """A plugin command's line in --help: its registered summary, so listing the
        commands builds none of them."""
        own = super().listed_help(ctx, name, limit)
        if own is not None or name not in self.plugin_commands():
            return own
        return self.plugin_commands()[name].get_short_help_str(limit)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        own = super().get_command(ctx, cmd_name)
        return own if own is not None else self.plugin_commands().get(cmd_name)


# Commands beyond training live in cgfw.cli, one module each, imported only when run.
LAZY = {
    "translate": "cgfw.cli.translate:translate",
    "ablate": "cgfw.cli.ablate:ablate_cmd",
    "bench": "cgfw.cli.bench:bench",
    "data": "cgfw.cli.data:data",
    "eval": "cgfw.cli.evaluate:eval_cmd",
    "compare": "cgfw.cli.compare:compare_cmd",
    "export": "cgfw.cli.export:export",
    "save-pretrained": "cgfw.cli.share:save_pretrained_cmd",
    "push": "cgfw.cli.share:push_cmd",
    "demo": "cgfw.cli.demo:demo",
}


@click.group(
    cls=PluginCommands,
    lazy=LAZY,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show cgfw's version and its plugins'.",
)
def main() -> None:
    """cgfw: CycleGAN experiments from TOML recipes and plugins.

    \b
    Quick start:   cgfw run quickstart
    The paper:     cgfw run paper_default --set data.root=datasets/horse2zebra
    An ablation:   cgfw ablate quickstart --disable identity
    Components:    cgfw components generator
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    logger = logging.getLogger("cgfw")
    if not logger.handlers:
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)


@main.command()
@click.argument("recipe", required=False)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Build the networks, print the resolved recipe and parameter counts; train nothing.",
)
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(path_type=Path),
    help="Continue the run in RUN_DIR from its latest checkpoint.",
)
@click.option("--device", help="auto, cpu, cuda or cuda:N (overrides train.device).")
@click.option("--into", type=click.Path(path_type=Path), hidden=True)  # cgfw ablate --jobs
@click.option(
    "--allow-changes",
    is_flag=True,
    help="With --resume: accept recipe changes beyond the run's length and logging.",
)
@friendly
def run(
    recipe: str | None,
    overrides: tuple[str, ...],
    dry_run: bool,
    resume_dir: Path | None,
    device: str | None,
    into: Path | None,
    allow_changes: bool,
) -> None:
    """Train the model of RECIPE (a TOML file or a bundled name: `cgfw recipes`); recipes
    without a [model] section train the CycleGAN."""
    from cgfw.recipe import load, read_toml, validate_overridden

    loaded = _plugins()
    if resume_dir is not None:
        if recipe is not None:
            raise CgfwError(
                "--resume reads the recipe saved in the run directory; "
                "drop RECIPE (use --set to change keys)"
            )
        saved = RunDir(resume_dir).recipe
        if not saved.is_file():
            raise CgfwError(f"--resume {resume_dir}: not a run directory (no recipe.toml)")
        resolved = validate_overridden(read_toml(saved), overrides, loaded.registry, str(saved))
        from cgfw.session.start import train_run

        train_run(resolved, loaded, console, device, resume_dir, allow_changes)
        return
    if recipe is None:
        raise CgfwError("give a recipe: a TOML file or a bundled name (`cgfw recipes` lists them)")
    resolved = load(recipe, loaded.registry, overrides)
    from cgfw.session.start import train_run  # torch: only once a run is really asked for

    if into is not None:  # a run that `cgfw ablate` planned, maybe under torchrun
        train_run(resolved, loaded, console, device, into=into)
        return
    if not dry_run:
        train_run(resolved, loaded, console, device)
        return
    from cgfw.training.model import build_model, count_parameters

    click.echo(resolved.to_toml(), nl=False)
    model = build_model(resolved)
    slot_of = model.build.slot_of if hasattr(model, "build") else {}  # set by Model.__init__
    for name, net in model.networks.items():
        # By the component it was built from: its class is often just nn.Sequential.
        path = slot_of.get(id(net))
        if path is None:
            what = type(net).__name__  # a network the model made itself
        else:
            c = resolved.components[path]
            what = f"{path} '{c.name}' (plugin {c.plugin})"
        out.print(f"{name}: {what} {count_parameters(net):,} parameters", markup=False)


@main.command()
@friendly
def recipes() -> None:
    """List the bundled recipes (run one with `cgfw run NAME`)."""
    registry = load_plugins(hooks={"register_recipes"}).registry
    table = Table("name", "summary", "plugin")
    for name in registry.names("recipe"):
        c = registry.get("recipe", name)
        table.add_row(name, Text(c.summary), c.plugin)
    out.print(table)


@main.group(
    cls=LazyGroup,
    lazy={"schema": "cgfw.cli.schema:schema_cmd", "validate": "cgfw.cli.schema:validate_cmd"},
)
def recipe() -> None:
    """Show, validate and describe recipes (JSON Schema)."""


@recipe.command("show")
@click.argument("recipe")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@friendly
def recipe_show(recipe: str, overrides: tuple[str, ...]) -> None:
    """Print RECIPE fully resolved: overrides applied, every default filled in."""
    from cgfw.recipe import load

    click.echo(load(recipe, _plugins().registry, overrides).to_toml(), nl=False)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly
def plugins(as_json: bool) -> None:
    """List installed plugins, their status and what they provide."""
    loaded = _plugins()
    if as_json:
        click.echo(json.dumps([p.__dict__ for p in loaded.plugins], indent=2))
        return
    table = Table("plugin", "distribution", "version", "status", "provides")
    # Folded, not cut: in 80 columns a name must still show whole (or on two lines), never "…".
    for column in (table.columns[0], table.columns[-1]):
        column.overflow = "fold"
    for p in loaded.plugins:
        provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in p.provides.items())
        status = {"ok": "[green]ok[/green]", "broken": "[red]broken[/red]"}.get(p.status, p.status)
        # Text: plugin-provided strings are shown as written, never read as rich markup.
        table.add_row(p.name, p.distribution, p.version, status, Text(provides or p.error))
    out.print(table)
    for (kind, name), owners in loaded.registry.conflicts.items():
        out.print(f"[red]conflict[/red]: {kind} '{name}' registered by {', '.join(owners)}")


@main.command()
@click.argument("kind", required=False)
@friendly
def components(kind: str | None) -> None:
    """List registered components of KIND (or all), with summaries and options."""
    registry = _plugins().registry
    if kind is not None:
        check_kind(kind)
    for k in [kind] if kind else list(KINDS):
        columns = ["name", "summary", "options (default)", "plugin"]
        if k == "ablation":  # what each one means in practice: what it leaves on
            from cgfw.tools import ablate as ablation

            columns.append("what stays on, on its base recipe")
        table = Table(*columns, title=k, title_justify="left")
        recipes: dict[str, dict[str, Any] | None] = {}  # each bundled recipe read once
        for name in registry.names(k):
            c = registry.get(k, name)
            opts = ", ".join(
                f"{f}={_default_text(info)}" for f, info in c.options.model_fields.items()
            )
            row: list[str | Text] = [name, Text(c.summary), Text(opts or "-"), c.plugin]
            if k == "ablation":
                row.append(ablation.what_stays_on(name, registry, recipes))
            table.add_row(*row)
        out.print(table)
    if kind in (None, "model"):
        from cgfw.recipe import slots_of

        for name in registry.names("model"):
            slots = slots_of(registry.get("model", name)).items()
            # Escaped: rich would read "[data]" as a markup tag and print nothing of it.
            sections = ", ".join(f"{escape(f'[{p}]')} -> {s.kind}" for p, s in slots)
            out.print(f"model {name}: recipe sections and the kinds they pick from: {sections}")


def _default_text(info: FieldInfo) -> str:
    """An option's default as a recipe would write it; "required" when it has none (a
    default_factory's value is the default, not pydantic's placeholder for "none given")."""
    if info.is_required():
        return "required"
    return repr(info.get_default(call_default_factory=True))
