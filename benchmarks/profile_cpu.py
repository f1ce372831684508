"""Where a CPU training run spends its time (issue 23), in two views.

1. The run: a real `cgfw.train` of the recipe for --iters iterations with its own log, image
   and checkpoint intervals, each phase of the loop timed where it is called (the batch from
   the loader, the step, the sample grids, checkpoints, the log lines and the progress bar);
   start-up is the wall time before the first batch.
2. The step: torch.profiler over --profile-iters steps of the same model on the recipe's
   batches, each operator's own CPU time put in a category (convolutions, instance norm,
   reflection padding, the optimizer, the losses, the rest).

    python benchmarks/profile_cpu.py [--recipe quickstart] [--iters 1000] [--set KEY=VALUE ...]
        [--profile-iters 30] [--out DIR]

Prints two tables; --out also writes them and torch.profiler's operator table there.
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch.profiler import ProfilerActivity, profile

import cgfw
from cgfw.plugin.loader import load_plugins
from cgfw.recipe import load
from cgfw.recipe.keys import parse_value
from cgfw.tools.bench import _framework_step, batches
from cgfw.training import loop, progress
from cgfw.training.loop import build_for_run
from cgfw.training.model import Speed
from cgfw.training.progress import LossLog

seconds: collections.defaultdict[str, float] = collections.defaultdict(float)
calls: collections.Counter[str] = collections.Counter()


def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds[name] += time.perf_counter() - t0
            calls[name] += 1

    return wrapper


def timed_loader(original: Callable[..., Any]) -> Callable[..., Any]:
    def loader(self: Any) -> Iterator[Any]:
        it = iter(original(self))
        while True:
            t0 = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                return
            finally:
                if "first batch" not in seconds:
                    seconds["first batch"] = time.perf_counter()
                else:
                    seconds["data (loader)"] += time.perf_counter() - t0
                    calls["data (loader)"] += 1
            yield batch

    return loader


def run_view(recipe: str, overrides: dict[str, Any], iters: int) -> list[list[str]]:
    t = loop.Training
    t.loader = timed_loader(t.loader)  # type: ignore[method-assign]
    t.on_device = timed("batch to device", t.on_device)  # type: ignore[method-assign]
    t.save_samples = timed("sample grids", t.save_samples)  # type: ignore[method-assign]
    t.save_checkpoint = timed("checkpoints", t.save_checkpoint)  # type: ignore[method-assign]
    t.check_run_dir = timed("run-dir check", t.check_run_dir)  # type: ignore[method-assign]
    loop.train_iteration = timed("step", loop.train_iteration)
    progress.LossLog.flush = timed("log lines", progress.LossLog.flush)  # type: ignore[method-assign]
    progress.LossLog.advance = timed("progress bar", progress.LossLog.advance)  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        cgfw.train(recipe, {**overrides, "train.max_iters": iters, "run.output_dir": out})
        wall = time.perf_counter() - start
    first = seconds.pop("first batch") - start
    rows = [["start-up (to the first batch)", f"{first:.2f}", "1", "", f"{100 * first / wall:.1f}"]]
    for name in (
        "data (loader)", "batch to device", "step", "progress bar", "log lines",
        "run-dir check", "sample grids", "checkpoints",
    ):  # fmt: skip
        s = seconds[name]
        per_iter = 1e3 * s / iters
        rows.append(
            [name, f"{s:.2f}", str(calls[name]), f"{per_iter:.2f}", f"{100 * s / wall:.1f}"]
        )
    rest = wall - first - sum(seconds.values())
    rows.append(
        ["the rest (loop, EMA, final writes)", f"{rest:.2f}", "", "", f"{100 * rest / wall:.1f}"]
    )
    rows.append(["wall", f"{wall:.2f}", "", f"{1e3 * (wall - first) / iters:.2f}", "100"])
    return rows


CATEGORIES = [  # (category, test on an operator's name); the first that matches
    ("convolution backward", lambda n: "convolution_backward" in n),
    ("convolution", lambda n: "conv" in n),
    ("instance norm backward", lambda n: "batch_norm_backward" in n or "norm_backward" in n),
    ("instance norm", lambda n: "batch_norm" in n or "instance_norm" in n),
    ("reflection padding backward", lambda n: "reflection_pad" in n and "backward" in n),
    ("reflection padding", lambda n: "reflection_pad" in n),
    (
        "ReLU / LeakyReLU / tanh (+ backward)",
        lambda n: any(k in n for k in ("relu", "tanh", "threshold")),
    ),
    (
        "losses (l1, mse + backward)",
        lambda n: any(k in n for k in ("l1_loss", "mse_loss", "abs", "sgn")),
    ),
]


def category(event: Any) -> str:
    parent = event
    while parent is not None:  # whatever runs inside the optimizer's step is the optimizer's
        if parent.name.startswith("Optimizer.step"):
            return "optimizer (Adam)"
        if parent.name.startswith("Optimizer.zero_grad"):
            return "zero_grad"
        parent = parent.cpu_parent
    name = event.name.lower()
    return next((c for c, test in CATEGORIES if test(name)), "other (copies, sums, autograd)")


def step_view(
    recipe: str, sets: list[str], n: int, out: Path | None
) -> tuple[list[list[str]], float]:
    loaded = load_plugins()
    resolved = load(recipe, loaded.registry, sets)
    device = torch.device("cpu")
    speed = Speed.resolve(resolved.recipe.train, device)
    torch.manual_seed(0)
    m = build_for_run(resolved, device, speed)
    data = batches(resolved, loaded, device, False, speed.memory_format)
    m.setup(*next(data))
    step = _framework_step(m, LossLog(None, Console(quiet=True), 10**6, 0))
    for _ in range(10):
        step(*next(data))
    prepared = [next(data) for _ in range(n)]  # the loader stays out of the profile
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for real_a, real_b in prepared:
            step(real_a, real_b)
    wall = (time.perf_counter() - t0) * 1e3 / n
    own: collections.Counter[str] = collections.Counter()
    for event in prof.events():
        own[category(event)] += event.self_cpu_time_total
    total = sum(own.values())
    rows = [
        [name, f"{us / n / 1e3:.2f}", f"{100 * us / total:.1f}"] for name, us in own.most_common()
    ]
    if out is not None:
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=40)
        (out / "operators.txt").write_text(table)
    return rows, wall


def markdown(columns: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in rows)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="quickstart")
    parser.add_argument("--iters", type=int, default=1000, help="iterations of the timed run")
    parser.add_argument("--profile-iters", type=int, default=30)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path)
    opts = parser.parse_args()
    if opts.out:
        opts.out.mkdir(parents=True, exist_ok=True)
    overrides = {}
    for text in opts.sets:
        key, _, raw = text.partition("=")
        overrides[key] = parse_value(raw, f"--set {key}")
    overrides.setdefault("train.device", "cpu")
    ops, step_ms = step_view(opts.recipe, opts.sets, opts.profile_iters, opts.out)
    loop_rows = run_view(opts.recipe, overrides, opts.iters)
    head = f"{opts.recipe}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    text = "\n\n".join(
        [
            f"The run ({opts.iters} iterations; {head}):",
            markdown(["phase", "s", "calls", "ms/it", "% of wall"], loop_rows),
            f"The step ({opts.profile_iters} profiled steps, {step_ms:.2f} ms/it under the "
            "profiler; own CPU time of each operator):",
            markdown(["category", "ms/it", "%"], ops),
        ]
    )
    print(text)
    if opts.out:
        (opts.out / "profile.md").write_text(text + "\n")
        (opts.out / "profile.json").write_text(json.dumps({"run": loop_rows, "step": ops}))


if __name__ == "__main__":
    main()
