"""`cgfw bench`: the command line over cgfw.tools.bench."""

from __future__ import annotations

from pathlib import Path

import click
import torch
from rich.console import Console
from rich.table import Table

from cgfw.cli.console import SET_HELP, console, friendly, out
from cgfw.plugin.loader import load_plugins
from cgfw.recipe import load
from cgfw.tools.bench import (
    CHUNK,
    Result,
    batches,
    count_flops,
    device_peak,
    loader_rate,
    report,
    run,
)


def timing_note(results: list[Result], iters: int, warmup: int, rounds: int) -> str:
    paired = any(r.ratios for r in results)  # timed beside the reference loop (--compare)
    note = f"median of {iters} iterations after {warmup} warm-up"
    if paired:
        note = (
            f"{iters} iterations after {warmup} warm-up, in chunks of {CHUNK} paired with "
            f"{CHUNK} of the reference loop's in alternating order; ms/it: the median over a "
            "setting's chunks (each row its own moments, so two rows' ms/it need not give "
            "x ref); x ref: the median of the pairs' ratios, with their interquartile range"
        )
    if rounds > 1:
        note += f"; median of {rounds} rounds taken in turn"
    return note


@click.command()
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

    from cgfw.training.loop import resolve_device

    loaded = load_plugins()
    resolved = load(recipe, loaded.registry, overrides)
    dev = (
        resolve_device(device, "--device")
        if device
        else resolve_device(resolved.recipe.train.device)
    )
    data = batches(resolved, loaded, dev, synthetic, torch.contiguous_format)
    flops = count_flops(resolved, loaded, dev, data)
    del data
    peak = device_peak(dev, torch.bfloat16 if dev.type == "cuda" else torch.float32)
    names = [n.strip() for n in only.split(",")] if only else None
    cfg = resolved.recipe.train
    loader = "synthetic: no loader"
    if not synthetic:
        console.print("timing the data loader alone ...")
        rate = loader_rate(resolved, loaded, dev)
        loader = (
            f"the loader alone brings {rate:.1f} batches/s to the device "
            f"({cfg.num_workers} workers): a step faster than this waits for data"
        )
    results = run(resolved, loaded, dev, compare, warmup, iters, synthetic, console, names, rounds)
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
        "timing": timing_note(results, iters, warmup, rounds),
    }
    columns, rows = report(results, flops, peak, cfg.batch_size, header)
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
