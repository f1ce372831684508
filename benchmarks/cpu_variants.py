"""CPU settings that `cgfw bench` has no row for, each timed against the plain fp32 loop in the
same process (issue 23): what the default fp32 step would gain or lose in one stream (the
sequential step, not two threads at once, cgfw_paper/streams.py), with one thread, with
oneDNN off, with foreach Adam, with the authors' modules (in-place activations, plain first and
output convs and instance norms), with every call apart, with the discriminators' calls apart
(not paired) and with the output conv's forward pass by oneDNN (its transposed form, not
im2col).

    python benchmarks/cpu_variants.py [--recipe quickstart] [--rounds 3] [--iters 40]
        [--only NAME [--only NAME ...]]

Rounds take turns (every other one in reverse order). Each variant is timed beside the plain
loop as `cgfw bench --compare` times a setting (chunks of 4 iterations of each in turn); "x
ref" is the median of the chunk pairs' ratios, with their quartiles.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
from collections.abc import Callable, Iterator
from typing import Any

import torch
from rich.console import Console

from cgfw.plugin.loader import load_plugins
from cgfw.recipe import load
from cgfw.tools.bench import (
    _framework_step,
    _reference_beside,
    _time_beside,
    batches,
    quartiles,
)
from cgfw.training.loop import build_for_run
from cgfw.training.model import Model, Speed
from cgfw.training.progress import LossLog
from cgfw_paper import nets
from cgfw_paper.reference import load_reference

Change = Callable[[Model], None]


def authors_modules(m: Model) -> None:
    for net in m.networks.values():
        load_reference().as_authors(net)


def foreach(m: Model) -> None:
    for opt in m.optimizers.values():
        for group in opt.param_groups:
            group["foreach"], group["fused"] = True, False


def apart(m: Model) -> None:
    m.stacking.enabled = False  # type: ignore[attr-defined]  # the CycleGAN's switch


def one_stream(m: Model) -> None:
    m.streams = None  # type: ignore[attr-defined]  # the sequential step (`CycleGAN.step`)


def discriminators_apart(m: Model) -> None:
    m.stacking.pair = None  # type: ignore[attr-defined]  # no paired call (`Stacking.judged`)


@contextlib.contextmanager
def output_conv_by_onednn() -> Iterator[None]:
    saved = nets._OUTPUT_IM2COL_MAX_PLANE
    nets._OUTPUT_IM2COL_MAX_PLANE = 0  # no plane is small enough: the transposed form
    try:
        yield
    finally:
        nets._OUTPUT_IM2COL_MAX_PLANE = saved


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# name -> (change to the built model, context each of its steps runs in)
VARIANTS: dict[str, tuple[Change | None, Callable[[], Any]]] = {
    "cgfw fp32 (the default)": (None, contextlib.nullcontext),
    "cgfw fp32, one stream (the sequential step)": (one_stream, contextlib.nullcontext),
    "cgfw fp32, every call apart": (apart, contextlib.nullcontext),
    "cgfw fp32, the authors' modules": (authors_modules, contextlib.nullcontext),
    "cgfw fp32, foreach Adam (calls apart's)": (foreach, contextlib.nullcontext),
    "cgfw fp32, one thread": (None, one_thread),
    "cgfw fp32, oneDNN off": (None, lambda: torch.backends.mkldnn.flags(enabled=False)),
    "cgfw fp32, the discriminators' calls apart": (discriminators_apart, contextlib.nullcontext),
    "cgfw fp32, the output conv's forward by oneDNN": (None, output_conv_by_onednn),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="quickstart")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=40)
    parser.add_argument("--only", action="append", help="a variant to time (default: all)")
    opts = parser.parse_args()
    chosen = list(VARIANTS) if opts.only is None else opts.only
    unknown = [n for n in chosen if n not in VARIANTS]
    if unknown:
        parser.error(f"--only: no variant {unknown[0]!r}; the variants: {'; '.join(VARIANTS)}")
    loaded = load_plugins()
    resolved = load(opts.recipe, loaded.registry, ["train.device='cpu'"])
    cpu = torch.device("cpu")
    beside = _reference_beside(resolved, loaded, cpu, False, 10)  # timed beside each variant
    times: dict[str, list[float]] = {name: [] for name in chosen}
    ratios: dict[str, list[float]] = {name: [] for name in times}
    names = list(times)
    for round_ in range(opts.rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            change, context = VARIANTS[name]
            torch.manual_seed(0)
            data = batches(resolved, loaded, cpu, False, torch.contiguous_format)
            m = build_for_run(resolved, cpu, Speed("fp32", False, "off"))
            m.setup(*next(data))
            if change is not None:
                change(m)
            framework = _framework_step(m, LossLog(None, Console(quiet=True), 10**6, 0))

            def step(real_a: Any, real_b: Any, run: Any = framework, ctx: Any = context) -> None:
                with ctx():  # the variant's context only: the plain loop runs as it is
                    run(real_a, real_b)

            for _ in range(10):
                step(*next(data))
            ms, _, _, pairs = _time_beside(step, data, beside, cpu, opts.iters)
            times[name].append(ms)
            ratios[name] += pairs
            print(f"round {round_ + 1}/{opts.rounds} {name}: {ms:.2f} ms/it", flush=True)
    print(f"\n| setting ({opts.recipe}, {opts.rounds} rounds) | ms/it | x ref (quartiles) |")
    print("|---|---|---|")
    print(f"| reference (eager fp32) | {statistics.median(beside.rounds):.2f} | 1.00 |")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.2f} | {quartiles(ratios[name])} |")


if __name__ == "__main__":
    main()
