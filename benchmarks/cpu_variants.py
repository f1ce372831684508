"""CPU settings that `cgfw bench` has no row for, each timed against the plain fp32 loop in the
same process (issue 23): what the default fp32 step would gain or lose with one thread, with
oneDNN off, with fused Adam, with the authors' in-place activations, with every call apart.

    python benchmarks/cpu_variants.py [--recipe quickstart] [--rounds 3] [--iters 40]

Rounds take turns (every other one in reverse order); "x ref" is the median of each round's
ratio to the plain loop timed in that round.
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
from cgfw.tools.bench import _framework_step, _reference_step, _time, batches
from cgfw.training.loop import build_for_run
from cgfw.training.model import Model, Speed
from cgfw.training.progress import LossLog
from cgfw_paper.reference import load_reference

Change = Callable[[Model], None]


def authors_modules(m: Model) -> None:
    for net in m.networks.values():
        load_reference().as_authors(net)


def fused(m: Model) -> None:
    for opt in m.optimizers.values():
        for group in opt.param_groups:
            group["foreach"], group["fused"] = False, True


def apart(m: Model) -> None:
    m.stacking.enabled = False  # type: ignore[attr-defined]  # the CycleGAN's switch


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# name -> (change to the built model, context the setting runs in); None: the plain loop
VARIANTS: dict[str, tuple[Change | None, Callable[[], Any]] | None] = {
    "reference (eager fp32)": None,
    "cgfw fp32 (the default)": (None, contextlib.nullcontext),
    "cgfw fp32, every call apart": (apart, contextlib.nullcontext),
    "cgfw fp32, the authors' modules": (authors_modules, contextlib.nullcontext),
    "cgfw fp32, fused Adam": (fused, contextlib.nullcontext),
    "cgfw fp32, one thread": (None, one_thread),
    "cgfw fp32, oneDNN off": (None, lambda: torch.backends.mkldnn.flags(enabled=False)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="quickstart")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=40)
    opts = parser.parse_args()
    loaded = load_plugins()
    resolved = load(opts.recipe, loaded.registry, ["train.device='cpu'"])
    cpu = torch.device("cpu")
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    names = list(VARIANTS)
    for round_ in range(opts.rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            variant = VARIANTS[name]
            torch.manual_seed(0)
            data = batches(resolved, loaded, cpu, False, torch.contiguous_format)
            context: Any = contextlib.nullcontext() if variant is None else variant[1]()
            with context:
                if variant is None:
                    step = _reference_step(resolved, loaded, cpu)
                else:
                    m = build_for_run(resolved, cpu, Speed("fp32", False, "off"))
                    m.setup(*next(data))
                    if variant[0] is not None:
                        variant[0](m)
                    step = _framework_step(m, LossLog(None, Console(quiet=True), 10**6, 0))
                ms, _ = _time(step, data, cpu, 10, opts.iters)
            times[name].append(ms)
            print(f"round {round_ + 1}/{opts.rounds} {name}: {ms:.2f} ms/it", flush=True)
    reference = times["reference (eager fp32)"]
    print(f"\n| setting ({opts.recipe}, {opts.rounds} rounds) | ms/it | x ref (range) |")
    print("|---|---|---|")
    for name, values in times.items():
        ratios = [r / v for r, v in zip(reference, values, strict=True)]
        ratio = f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
        print(f"| {name} | {statistics.median(values):.2f} | {ratio} |")


if __name__ == "__main__":
    main()
