"""The `cgfw` command line."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

import cgfw
from cgfw import ablate as ablation
from cgfw import distributed
from cgfw.cli.compare import compare_cmd, find_runs, group_seeds, render, table_rows
from cgfw.cli.data import download_cmd
from cgfw.cli.evaluate import eval_cmd
from cgfw.cli.export import export
from cgfw.cli.schema import schema_cmd, validate_cmd
from cgfw.cli.translate import translate
from cgfw.console import QUIET, console, friendly, out
from cgfw.errors import CgfwError, TrainingStopped, did_you_mean
from cgfw.launch import launch
from cgfw.layout import RunDir
from cgfw.model import build_model, count_parameters
from cgfw.plugins import Loaded, load_plugins
from cgfw.recipe import (
    Resolved,
    apply_overrides,
    load,
    load_data,
    read_toml,
    slots_of,
    validate,
)
from cgfw.registry import KINDS
from cgfw.runs import new_run_dir

SET_HELP = "Override a recipe key, e.g. --set generator.n_blocks=6 (TOML value; repeatable)."


def _plugins() -> Loaded:
    return load_plugins()


def _version_text() -> str:
    lines = [f"cgfw {cgfw.__version__}"]
    for p in _plugins().plugins:
        lines.append(f"  plugin {p.name} ({p.distribution} {p.version}) {p.status}")
    return "\n".join(lines)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(_version_text())
        ctx.exit()


class PluginCommands(click.Group):
    """cgfw's own commands, and those plugins register with ``register_commands``. A plugin's
    command cannot replace one of cgfw's; one whose factory fails is left out and named."""

    _found: dict[str, click.Command] | None = None

    def plugin_commands(self) -> dict[str, click.Command]:
        if self._found is None:
            self._found = {}
            registry = _plugins().registry
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
                    self._found[name] = command
        return self._found

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.plugin_commands()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        own = super().get_command(ctx, cmd_name)
        return own if own is not None else self.plugin_commands().get(cmd_name)


@click.group(cls=PluginCommands, context_settings={"help_option_names": ["-h", "--help"]})
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
        resolved = validate(
            apply_overrides(read_toml(saved), overrides, loaded.registry),
            loaded.registry,
            str(saved),
        )
        _train(resolved, loaded, device, resume_dir, allow_changes)
        return
    if recipe is None:
        raise CgfwError("give a recipe: a TOML file or a bundled name (`cgfw recipes` lists them)")
    resolved = load(recipe, loaded.registry, overrides)
    if into is not None:
        launch(resolved, loaded, into, console, device)
        return
    if not dry_run:
        _train(resolved, loaded, device)
        return
    click.echo(resolved.to_toml(), nl=False)
    for name, net in build_model(resolved).networks.items():
        out.print(f"{name:5} {type(net).__name__:24} {count_parameters(net)} parameters")


def _train(
    resolved: Resolved,
    loaded: Loaded,
    device: str | None,
    resume_dir: Path | None = None,
    allow_changes: bool = False,
) -> None:
    """A new run, or a resumed one; under torchrun every process joins and the main one names
    the directory. A new run that fails before its first checkpoint leaves no directory behind."""
    r = resolved.recipe
    group = distributed.setup(device or r.train.device)
    new = resume_dir is None
    run_dir = resume_dir
    try:
        if new:
            run_dir = group.share(
                new_run_dir(Path(r.run.output_dir), r.run.name) if group.main else None
            )
        assert run_dir is not None
        result = launch(
            resolved,
            loaded,
            run_dir,
            console if group.main else QUIET,
            device,
            resume=not new,
            group=group,
            allow_changes=allow_changes,
        )
    except CgfwError as exc:
        created = new and group.main and run_dir is not None  # only what this command made
        untrained = created and not RunDir(run_dir).checkpoints.exists()  # type: ignore[arg-type]
        if untrained and not isinstance(exc, TrainingStopped):
            shutil.rmtree(run_dir, ignore_errors=True)  # type: ignore[arg-type]
        raise
    finally:
        group.close()
    if group.main:
        console.print(f"[green]done[/green]: {result.iterations} iterations in {result.run_dir}")
        console.print(f"TensorBoard: tensorboard --logdir {r.run.output_dir}")


@main.command(name="ablate")
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
    help="Variants run at once, each in its own process (spread over the GPUs if several).",
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
) -> None:
    """Run RECIPE and one-change variants of it side by side, then compare them in a table.

    Each variant changes one thing: --disable identity, pool, gan, cycle, cycle_backward,
    cycle_forward (and any a plugin adds); --vary KEY=V1,V2 adds a run per value;
    --seeds 0,1,2 repeats every run per seed (RECIPE alone with --seeds is fine too).
    """
    loaded = _plugins()
    data, source = load_data(recipe, loaded.registry, overrides)
    resolved_base = validate(data, loaded.registry, source).to_dict()
    seed_list = ablation.parse_seeds(seeds) if seeds is not None else None
    variants = ablation.plan(
        data, list(disable), list(vary), loaded.registry, resolved_base, seed_list
    )
    resolved = [validate(v.data, loaded.registry, f"{source} [{v.label}]") for v in variants]
    base = resolved[0].recipe.run
    parent = new_run_dir(Path(base.output_dir), f"ablate-{base.name}")
    dirs = {v.label: parent / v.label for v in variants}
    for d in dirs.values():
        d.mkdir()
    if jobs > 1:
        results = ablation.run_parallel(
            dict(zip(dirs.values(), resolved, strict=True)), jobs, device, console
        )
    else:
        results = {}
        for label, res in zip(dirs, resolved, strict=True):
            console.rule(label)
            results[label] = launch(res, loaded, dirs[label], console, device).final_losses
    (parent / "ablation.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    # The same table as `cgfw compare PARENT`: what differs, then the results (final losses, the
    # mean over the last log window; held-out metrics once `cgfw eval` has scored the runs).
    out.print(render(*table_rows(*group_seeds(find_runs([parent])), None, False), "table"))
    failed = [label for label, losses in results.items() if not losses]
    if failed:
        console.print(f"[red]failed: {', '.join(failed)}[/red] (their log.txt says why)")
    console.print(f"after `cgfw eval` on each run, `cgfw compare {parent}` adds the metrics")


@main.command()
@friendly
def recipes() -> None:
    """List the bundled recipes (run one with `cgfw run NAME`)."""
    registry = _plugins().registry
    table = Table("name", "summary", "plugin")
    for name in registry.names("recipe"):
        c = registry.get("recipe", name)
        table.add_row(name, Text(c.summary), c.plugin)
    out.print(table)


@main.group()
def recipe() -> None:
    """Show, validate and describe recipes (JSON Schema)."""


@recipe.command("show")
@click.argument("recipe")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@friendly
def recipe_show(recipe: str, overrides: tuple[str, ...]) -> None:
    """Print RECIPE fully resolved: overrides applied, every default filled in."""
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
    for p in loaded.plugins:
        provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in p.provides.items())
        status = {"ok": "[green]ok[/green]", "broken": "[red]broken[/red]"}.get(p.status, p.status)
        # Text: plugin-provided strings are shown as written, never read as rich markup.
        table.add_row(p.name, p.distribution, p.version, status, Text(provides or p.error))
    out.print(table)
    for (kind, name), owners in loaded.registry.conflicts.items():
        out.print(f"[red]conflict[/red]: {kind} '{name}' registered by {', '.join(owners)}")


TERMS_BASE = "paper_default"


@main.command()
@click.argument("kind", required=False)
@friendly
def components(kind: str | None) -> None:
    """List registered components of KIND (or all), with summaries and options."""
    registry = _plugins().registry
    if kind is not None and kind not in KINDS:
        raise CgfwError(
            f"unknown kind '{kind}'{did_you_mean(kind, KINDS)} (known: {', '.join(KINDS)})"
        )
    for k in [kind] if kind else list(KINDS):
        columns = ["name", "summary", "options (default)", "plugin"]
        base = None
        if k == "ablation":  # what each one means in practice: the terms it leaves on
            with contextlib.suppress(CgfwError):  # the paper's recipes may be disabled
                base, _ = load_data(TERMS_BASE, registry, ())
                columns.append(f"loss terms left (on {TERMS_BASE})")
        table = Table(*columns, title=k, title_justify="left")
        for name in registry.names(k):
            c = registry.get(k, name)
            opts = ", ".join(
                f"{f}={'required' if info.is_required() else info.default!r}"
                for f, info in c.options.model_fields.items()
            )
            row: list[str | Text] = [name, Text(c.summary), Text(opts or "-"), c.plugin]
            if base is not None:
                try:
                    row.append(", ".join(ablation.terms_left(base, name, registry)))
                except CgfwError:  # e.g. it edits a component paper_default does not use
                    row.append("(does not apply)")
                except Exception as exc:  # a plugin's broken ablation must not hide the list
                    row.append(f"(error: {type(exc).__name__}: {exc})")
            table.add_row(*row)
        out.print(table)
    if kind is None:
        for name in registry.names("model"):
            slots = slots_of(registry.get("model", name)).items()
            sections = ", ".join(f"[{p}] -> {s.kind}" for p, s in slots)
            out.print(f"model {name}: recipe sections and the kinds they pick from: {sections}")


@main.command()
@click.argument("recipe", default="paper_default")
@click.option(
    "--iters",
    default=50,
    show_default=True,
    type=click.IntRange(min=2),
    help="Timed iterations per setting.",
)
@click.option(
    "--warmup",
    default=15,
    show_default=True,
    type=click.IntRange(min=1),
    help="Untimed iterations first (compilation happens here).",
)
@click.option(
    "--compare",
    is_flag=True,
    help="Also time the eager fp32 reference loop and each speed setting.",
)
@click.option(
    "--rounds",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Time every setting this many times, taking turns, and report the median and the "
    "spread (for noisy machines; each round rebuilds and, if asked, recompiles).",
)
@click.option(
    "--only",
    metavar="NAME,NAME",
    help="With --compare: time only these settings (names as in the table).",
)
@click.option(
    "--synthetic",
    is_flag=True,
    help="Random tensors already on the device instead of the recipe's data.",
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--device", help="auto, cpu, cuda or cuda:N (overrides train.device).")
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    help="Also write the table (markdown) to this file.",
)
@friendly
def bench(
    recipe: str,
    iters: int,
    warmup: int,
    compare: bool,
    rounds: int,
    only: str | None,
    synthetic: bool,
    overrides: tuple[str, ...],
    device: str | None,
    output: Path | None,
) -> None:
    """Time RECIPE's training step: ms/iteration, it/s, TFLOP/s, memory, data wait."""
    import platform

    import torch

    from cgfw import bench as benchmark
    from cgfw.trainer import resolve_device

    loaded = _plugins()
    resolved = load(recipe, loaded.registry, overrides)
    dev = (
        resolve_device(device, "--device")
        if device
        else resolve_device(resolved.recipe.train.device)
    )
    data = benchmark.batches(resolved, loaded, dev, synthetic, torch.contiguous_format)
    flops = benchmark.count_flops(resolved, loaded, dev, data)
    del data
    peak = benchmark.device_peak(dev, torch.bfloat16 if dev.type == "cuda" else torch.float32)
    names = [n.strip() for n in only.split(",")] if only else None
    cfg = resolved.recipe.train
    loader = "synthetic: no loader"
    if not synthetic:
        console.print("timing the data loader alone ...")
        rate = benchmark.loader_rate(resolved, loaded, dev)
        loader = (
            f"the loader alone brings {rate:.1f} batches/s to the device "
            f"({cfg.num_workers} workers): a step faster than this waits for data"
        )
    results = benchmark.run(
        resolved, loaded, dev, compare, warmup, iters, synthetic, console, names, rounds
    )
    size = getattr(resolved.options["data"], "crop_size", "?")
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "CPU"
    header = {
        "device": f"{name} ({dev})",
        "torch": torch.__version__,
        "recipe": f"{resolved.source} {' '.join(overrides)}".strip(),
        "images": f"{size} px, batch {cfg.batch_size}, "
        + ("synthetic tensors" if synthetic else "the recipe's data"),
        "work": f"{flops / 1e12:.3f} TFLOP per iteration (torch.utils.flop_counter)",
        "data": loader,
        "peak": f"{peak:.1f} TFLOP/s measured, the faster of a "
        f"{'bf16' if dev.type == 'cuda' else 'fp32'} matmul and 3x3 convolution",
        "timing": f"median of {iters} iterations after {warmup} warm-up"
        + (
            f"; median of {rounds} rounds taken in turn (x ref: the median of each round's "
            "ratio, with their range)"
            if rounds > 1
            else ""
        ),
    }
    columns, rows = benchmark.report(results, flops, peak, cfg.batch_size, header)
    table = Table(*columns, title="cgfw bench")
    wide = Console(highlight=False, width=max(out.width, 170))
    for row in rows:
        table.add_row(*row)
    for key, value in header.items():
        wide.print(f"{key}: {value}")
    wide.print(table)
    if output is not None:
        lines = [f"- {k}: {v}" for k, v in header.items()] + [""]
        lines.append("| " + " | ".join(columns) + " |")
        lines.append("|" + "---|" * len(columns))
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        output.write_text("\n".join(lines) + "\n", encoding="utf-8")
        console.print(f"table written to {output}")


@main.group()
def data() -> None:
    """Check and download datasets."""


@data.command("check")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--crop-size", default=256, show_default=True, help="Flag images smaller than this.")
@friendly
def data_check(path: Path, crop_size: int) -> None:
    """Decode every image under PATH (trainA/ trainB/ testA/ testB/, or one folder) and report
    what training would convert or skip. Exit 0: all usable; 1: some files would be skipped;
    2: a training folder is missing or has no usable image."""
    from cgfw.images import images_in, inspect

    if not path.is_dir():
        raise CgfwError(f"{path}: not a folder")
    folders = [path / s for s in ("trainA", "trainB", "testA", "testB") if (path / s).is_dir()]
    required = [path / s for s in ("trainA", "trainB")]
    missing = [f.name for f in required if f not in folders] if folders else []
    folders = folders or [path]
    table = Table("folder", "images", "ok", "converted", "skipped")
    problems: list[str] = []
    unusable = [f"{m}/ is missing" for m in missing]
    skipped_any = False
    for folder in folders:
        findings = [inspect(p, crop_size) for p in images_in(folder)]
        counts = {s: sum(f.status == s for f in findings) for s in ("ok", "converted", "skipped")}
        table.add_row(folder.name, str(len(findings)), *(str(counts[s]) for s in counts))
        problems += [f"{f.status}: {f.path} ({f.detail})" for f in findings if f.status != "ok"]
        skipped_any |= counts["skipped"] > 0
        if folder in required and len(findings) == counts["skipped"]:
            unusable.append(f"{folder.name}/ has no usable image")
    out.print(table)
    for line in problems:
        out.print(line, markup=False)
    if unusable:
        raise CgfwError(f"{path}: " + "; ".join(unusable))
    out.print(
        "every image is usable" if not problems else f"{len(problems)} file(s) need attention"
    )
    sys.exit(1 if skipped_any else 0)


# Commands beyond training live in cgfw.cli, one module each.
main.add_command(translate)
main.add_command(eval_cmd)
main.add_command(compare_cmd)
main.add_command(export)
data.add_command(download_cmd)
recipe.add_command(schema_cmd)
recipe.add_command(validate_cmd)
