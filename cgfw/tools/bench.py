"""`cgfw bench`: time the training step of a recipe under each speed setting, side by side with
the plain eager fp32 reference loop (benchmarks/reference_loop.py), in one process."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import itertools
import resource
import statistics
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from cgfw.errors import CgfwError
from cgfw.plugin.loader import Loaded
from cgfw.recipe import Resolved
from cgfw.training.data import KeyBatches, train_loader
from cgfw.training.loop import build_dataset, build_for_run, make_step, train_iteration
from cgfw.training.model import Model, Speed, build_model
from cgfw.training.progress import LossLog

PAPER_ITERATIONS = 266_800  # horse2zebra, 200 epochs of 1,334 iterations

Step = Callable[[Tensor, Tensor], Any]


@dataclass
class Result:
    setting: str
    rounds: list[float] = field(default_factory=list)  # median ms per iteration, each round
    data_ms: float = float("nan")  # median time waiting for the batch (last round)
    peak_mb: float = float("nan")
    error: str = ""
    # --compare: the reference's ms over this setting's for each pair of chunks timed in turn
    ratios: list[float] = field(default_factory=list)

    @property
    def ms(self) -> float:
        """The median over rounds of each round's median ms per iteration."""
        return statistics.median(self.rounds) if self.rounds else float("nan")

    @property
    def spread(self) -> float:
        """(slowest - fastest round) / median, in %: how far apart repeated timings landed."""
        return 100 * (max(self.rounds) - min(self.rounds)) / self.ms if self.rounds else 0.0


@dataclass(frozen=True)
class Setting:
    name: str
    speed: Speed | None  # None: the reference loop
    # False: each network called once per input, as the reference loop does, so that the two
    # rows differ by the framework around the step and by what it does differently at the
    # same values (foreach Adam on a CPU, activations out of place), not by stacking; calls
    # apart also compute the paper networks' convs and instance norms as the authors' modules
    # do (compute_as_authors).
    stacked: bool = True


def settings(device: torch.device, compare: bool) -> list[Setting]:
    if not compare:
        return []
    reference = Setting("reference (eager fp32)", None)
    fp32 = [
        Setting("cgfw fp32 (calls apart)", Speed("fp32", False, "off"), stacked=False),
        Setting("cgfw fp32", Speed("fp32", False, "off")),
    ]
    bf16 = [
        Setting("cgfw bf16", Speed("bf16", False, "off")),
        Setting("cgfw bf16 + channels_last", Speed("bf16", True, "off")),
        Setting("cgfw bf16 + compile", Speed("bf16", False, "default")),
    ]
    if device.type != "cuda":
        # On a CPU also what fp32 gains from the memory layout and from inductor's kernels.
        fp32_cpu = [
            Setting("cgfw fp32 + channels_last", Speed("fp32", True, "off")),
            Setting("cgfw fp32 + compile", Speed("fp32", False, "default")),
        ]
        return [reference, *fp32, *fp32_cpu, *bf16]
    # On a GPU the settings that matter most come first, so that a bench cut short by a time
    # limit (benchmarks/gpu_check.sh) still has them. compile = "reduce-overhead" (torch's own
    # CUDA graphs per network) is left out: both runs that timed it found it far slower than
    # capturing the whole iteration (docs/benchmarks.md).
    graphed = [
        Setting("cgfw bf16 + cuda_graph", Speed("bf16", False, "off", cuda_graph=True)),
        Setting(
            "cgfw bf16 + compile + cuda_graph", Speed("bf16", False, "default", cuda_graph=True)
        ),
        Setting("cgfw fp32 + cuda_graph", Speed("fp32", False, "off", cuda_graph=True)),
    ]
    return [reference, *graphed, *fp32, *bf16, Setting("cgfw fp16", Speed("fp16", False, "off"))]


def batches(
    resolved: Resolved,
    loaded: Loaded,
    device: torch.device,
    synthetic: bool,
    memory_format: torch.memory_format,
) -> Iterator[tuple[Tensor, Tensor]]:
    cfg = resolved.recipe.train
    if synthetic:
        size = int(getattr(resolved.options["data"], "crop_size", 256))
        g = torch.Generator().manual_seed(0)
        pool = [
            tuple(
                (torch.rand(cfg.batch_size, 3, size, size, generator=g) * 2 - 1).to(device)
                for _ in range(2)
            )
            for _ in range(4)
        ]
        while True:
            for a, b in pool:
                yield (
                    a.contiguous(memory_format=memory_format),
                    b.contiguous(memory_format=memory_format),
                )
    dataset = build_dataset(resolved, "train")
    sampler = KeyBatches(len(dataset), cfg.batch_size, resolved.recipe.run.seed)  # type: ignore[arg-type]
    loader = train_loader(dataset, sampler, cfg.num_workers, pin_memory=device.type == "cuda")
    for batch in loader:
        yield (
            batch["a"].to(device, non_blocking=True, memory_format=memory_format),
            batch["b"].to(device, non_blocking=True, memory_format=memory_format),
        )


def loader_rate(
    resolved: Resolved, loaded: Loaded, device: torch.device, seconds: float = 3.0
) -> float:
    """Batches per second the recipe's loader brings to the device when nothing else runs: a
    step faster than this would wait for data."""
    data = batches(resolved, loaded, device, False, torch.contiguous_format)
    # Drain what the workers prefetch while they start (4 batches each), so that what is timed
    # is how fast they make batches, not how fast a full queue empties.
    for _ in range(8 * resolved.recipe.train.num_workers + 2):
        next(data)
    count, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds or count < 20:  # a few seconds' worth
        next(data)
        count += 1
        if device.type == "cuda" and count % 20 == 0:
            torch.cuda.synchronize(device)  # batches arrived, not just queued copies
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - t0
    return count / elapsed


def _time(
    step: Step, data: Iterator[tuple[Tensor, Tensor]], device: torch.device, warmup: int, iters: int
) -> tuple[float, float]:
    """Median ms per iteration and median ms waiting for data. On CUDA, iterations are timed
    with events (no host sync inside the loop), so launch overlap counts as it does in training."""
    waits: list[float] = []
    cuda = device.type == "cuda"
    marks: list[Any] = []
    for i in range(warmup + iters):
        if i == warmup and cuda:
            torch.cuda.synchronize(device)
        if i >= warmup:
            if cuda:
                event = torch.cuda.Event(enable_timing=True)
                event.record()
                marks.append(event)
            else:
                marks.append(time.perf_counter())
        t0 = time.perf_counter()
        real_a, real_b = next(data)
        if i >= warmup:
            waits.append((time.perf_counter() - t0) * 1e3)
        step(real_a, real_b)
    if cuda:
        end = torch.cuda.Event(enable_timing=True)
        end.record()
        torch.cuda.synchronize(device)
        marks.append(end)
        per_iter = [a.elapsed_time(b) for a, b in itertools.pairwise(marks)]
    else:
        marks.append(time.perf_counter())
        per_iter = [(b - a) * 1e3 for a, b in itertools.pairwise(marks)]
    return statistics.median(per_iter), statistics.median(waits)


CHUNK = 4  # iterations a setting runs before the reference loop takes its turn (--compare)


@dataclass
class Beside:
    """The reference loop, built and warmed up once, that each setting is timed beside."""

    step: Step
    data: Iterator[tuple[Tensor, Tensor]]
    rounds: list[float] = field(default_factory=list)  # its median ms beside each setting
    waits: list[float] = field(default_factory=list)
    peak_mb: float = float("nan")


def _time_beside(
    step: Step,
    data: Iterator[tuple[Tensor, Tensor]],
    beside: Beside,
    device: torch.device,
    iters: int,
    base: float = 0.0,
) -> tuple[float, float, float, list[float]]:
    """`iters` iterations of `step` (warmed up) in chunks of CHUNK, each paired with as many of
    the reference's, the pair's order alternating (setting first, then reference first): a
    machine whose speed drifts within seconds (a shared VM's cores) then slows both sides of
    a pair alike, where rounds of tens of iterations each caught it at other moments. Returns
    the median ms per iteration over chunks, the median data wait, the setting's peak MB over
    its own chunks (CUDA: allocated above `base`, what the device held before it was built;
    NaN on a CPU), and each pair's ratio (reference over setting); the reference's chunks go to
    `beside`."""
    cuda = device.type == "cuda"
    sides: list[tuple[Step, Iterator[tuple[Tensor, Tensor]], list[float]]] = [
        (step, data, []),
        (beside.step, beside.data, beside.waits),
    ]
    marks: list[list[tuple[Any, Any, int]]] = [[], []]
    peak = float("nan")

    def mark() -> Any:
        if not cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    with torch.cuda.device(device) if cuda else contextlib.nullcontext():
        if cuda:
            torch.cuda.synchronize(device)
            peak = 0.0
        for pair, start in enumerate(range(0, iters, CHUNK)):
            n = min(CHUNK, iters - start)
            for side in (0, 1) if pair % 2 == 0 else (1, 0):
                run, batches_, side_waits = sides[side]
                if cuda and side == 0:  # the allocator's counters: no sync needed
                    torch.cuda.reset_peak_memory_stats(device)
                begin = mark()
                for _ in range(n):
                    t0 = time.perf_counter()
                    real_a, real_b = next(batches_)
                    side_waits.append((time.perf_counter() - t0) * 1e3)
                    run(real_a, real_b)
                marks[side].append((begin, mark(), n))
                if cuda and side == 0:
                    peak = max(peak, (torch.cuda.max_memory_allocated(device) - base) / 2**20)
        if cuda:
            torch.cuda.synchronize(device)
    per_iter = [
        [(a.elapsed_time(b) if cuda else (b - a) * 1e3) / n for a, b, n in side] for side in marks
    ]
    ours, theirs = per_iter
    beside.rounds.append(statistics.median(theirs))
    ratios = [ref / ms for ref, ms in zip(theirs, ours, strict=True)]
    return statistics.median(ours), statistics.median(sides[0][2]), peak, ratios


def count_flops(
    resolved: Resolved, loaded: Loaded, device: torch.device, data: Iterator[tuple[Tensor, Tensor]]
) -> float:
    """FLOPs of one cgfw step (forward and backward of every network), counted by torch, with
    calls apart: the same convolutions, each computed as written (a CPU's faster form of the
    generator's output conv counts its padded input, 1.4x that conv's work at 32 px)."""
    train = resolved.recipe.train.model_copy(update={"stack_calls": False})
    resolved = dataclasses.replace(
        resolved, recipe=resolved.recipe.model_copy(update={"train": train})
    )
    m = build_model(resolved, device)
    real_a, real_b = (x.contiguous() for x in next(data))
    m.setup(real_a, real_b)
    with FlopCounterMode(display=False) as counter:
        m.step(real_a, real_b)
    return float(counter.get_total_flops())


def _rate(run: Callable[[], Any], flops: float, device: torch.device, reps: int) -> float:
    """TFLOP/s of `run`, best of three timings of `reps` calls: a ceiling, not an average."""
    for _ in range(3):
        run()
    best = float("inf")
    for _ in range(3):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return flops * reps / best / 1e12


def device_peak(device: torch.device, dtype: torch.dtype) -> float:
    """The ceiling "% peak" is reported against: measured TFLOP/s of the faster of a large dense
    matmul and a dense 3x3 convolution (a residual block's, at batch 8). On a GPU the matmul
    wins; on some CPUs oneDNN's convolutions run twice as fast as torch's matmul, and a matmul
    ceiling alone would put a CycleGAN step above 100 %."""
    n = 8192 if device.type == "cuda" else 2048
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    reps = 20 if device.type == "cuda" else 5
    matmul = _rate(lambda: a @ b, 2 * n**3, device, reps)
    x = torch.randn(8, 256, 64, 64, device=device, dtype=dtype)
    w = torch.randn(256, 256, 3, 3, device=device, dtype=dtype)
    conv_flops = 2 * 256 * 256 * 9 * 8 * 64 * 64
    conv = _rate(lambda: torch.nn.functional.conv2d(x, w, padding=1), conv_flops, device, reps)
    return max(matmul, conv)


def _framework_step(m: Model, log: LossLog, strict: bool = True) -> Step:
    """What the trainer does per iteration besides fetching data. `strict`: a CUDA graph that
    fails to capture is an error (the --compare rows) rather than an eager fallback."""
    one_step = make_step(m, strict)

    def step(real_a: Tensor, real_b: Tensor) -> None:
        train_iteration(one_step, m, real_a, real_b, log, 0, Path("."))

    return step


def _reference_step(resolved: Resolved, loaded: Loaded, device: torch.device) -> Step:
    step: Step = authors_loop(resolved, loaded, device).step
    return step


def authors_loop(resolved: Resolved, loaded: Loaded, device: torch.device) -> Any:
    """The model's reference implementation (for the CycleGAN, the authors' loop in
    benchmarks/reference_loop.py) on newly built networks of the recipe: its classmethod
    `reference(resolved, device)`."""
    reference = getattr(resolved.model_class, "reference", None)
    if reference is None:
        raise CgfwError(
            f"--compare: model '{resolved.model.name}' has no reference implementation to "
            "time against"
        )
    return reference(resolved, device)


def run(
    resolved: Resolved,
    loaded: Loaded,
    device: torch.device,
    compare: bool,
    warmup: int,
    iters: int,
    synthetic: bool,
    console: Any,
    only: list[str] | None = None,
    rounds: int = 1,
) -> list[Result]:
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    own = Speed.resolve(resolved.recipe.train, device)  # what `cgfw run` would use here
    rows = settings(device, compare) or [
        Setting(f"recipe ({own.precision}, compile {own.compile})", own)
    ]
    if only:
        unknown = sorted(set(only) - {row.name for row in rows})
        if unknown:
            known = ", ".join(row.name for row in rows)
            raise CgfwError(f"--only: unknown setting(s) {unknown}; known: {known}")
        rows = [row for row in rows if row.name in only]
    results = {row.name: Result(row.name) for row in rows}
    reference = next((row for row in rows if row.speed is None), None)
    beside = None
    if reference is not None and len(rows) > 1:
        # Built once; each setting is then timed in turn with it, chunk by chunk (_time_beside).
        console.print(f"building and warming up {reference.name} ...", markup=False)
        try:
            beside = _reference_beside(resolved, loaded, device, synthetic, warmup)
        except Exception as exc:  # the settings are still timed, without a ratio
            results[reference.name].error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            traceback.print_exc()
    timed = rows if beside is None else [row for row in rows if row is not reference]
    # Rounds take turns, every other one in reverse order, so that a machine that slows down or
    # speeds up part-way shifts the settings alike instead of biasing one ratio.
    for round_ in range(1, rounds + 1):
        for row in timed if round_ % 2 else timed[::-1]:
            name, result = row.name, results[row.name]
            if result.error:
                continue
            label = name if rounds == 1 else f"{name} (round {round_}/{rounds})"
            console.print(f"timing {label} ...", markup=False)
            try:
                ms, result.data_ms, result.peak_mb, ratios = _measure(
                    resolved, loaded, device, row, warmup, iters, synthetic, compare, beside
                )
                result.rounds.append(ms)
                result.ratios += ratios
            except Exception as exc:  # one setting failing (e.g. capture) must not lose the rest
                result.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
                traceback.print_exc()
            # A line per setting as it finishes: a long --compare cut short keeps what it timed.
            done = result.error or f"{result.rounds[-1]:.2f} ms/it, peak {result.peak_mb:.0f} MB"
            if beside is not None and not result.error:
                pairs = statistics.median(ratios)
                done += (
                    f", the reference beside it {beside.rounds[-1]:.2f} ms/it, x ref {pairs:.2f}"
                )
            console.print(f"  {label}: {done}", markup=False)
            gc.collect()
            torch._dynamo.reset()
    if beside is not None and reference is not None:
        timed_ref = results[reference.name]
        timed_ref.rounds, timed_ref.peak_mb = beside.rounds, beside.peak_mb
        timed_ref.data_ms = statistics.median(beside.waits) if beside.waits else float("nan")
    return list(results.values())


def _reference_beside(
    resolved: Resolved, loaded: Loaded, device: torch.device, synthetic: bool, warmup: int
) -> Beside:
    torch.manual_seed(0)
    base = _memory_start(device)
    data = batches(resolved, loaded, device, synthetic, torch.contiguous_format)
    beside = Beside(_reference_step(resolved, loaded, device), data)
    for _ in range(warmup):
        beside.step(*next(data))
    beside.peak_mb = _peak_mb(device, base)
    return beside


def _memory_start(device: torch.device) -> float:
    """Bytes the device holds before a setting is built (the reference's, when it is kept)."""
    if device.type != "cuda":
        return 0.0
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    return float(torch.cuda.memory_allocated(device))


def _peak_mb(device: torch.device, base: float) -> float:
    """The setting's own peak: on CUDA allocated memory above `base`, on a CPU the process's
    resident high-water mark (which only grows)."""
    if device.type == "cuda":
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _measure(
    resolved: Resolved,
    loaded: Loaded,
    device: torch.device,
    setting: Setting,
    warmup: int,
    iters: int,
    synthetic: bool,
    compare: bool,
    beside: Beside | None = None,
) -> tuple[float, float, float, list[float]]:
    """One setting timed once: median ms per iteration, median data wait, peak MB (the
    setting's own: on CUDA not counting the kept reference's), and the ratios to `beside`
    timed with it."""
    speed = setting.speed
    torch.manual_seed(0)
    base = _memory_start(device)
    fmt = speed.memory_format if speed else torch.contiguous_format
    data = batches(resolved, loaded, device, synthetic, fmt)
    if speed is None:
        step = _reference_step(resolved, loaded, device)
    else:
        train = resolved.recipe.train.model_copy(update={"stack_calls": setting.stacked})
        recipe = resolved.recipe.model_copy(update={"train": train})
        strict = compare or resolved.recipe.train.cuda_graph is True  # as training would
        m = build_for_run(dataclasses.replace(resolved, recipe=recipe), device, speed, None, strict)
        quiet = Console(quiet=True)
        m.setup(*next(data))
        step = _framework_step(m, LossLog(None, quiet, iters + warmup, 0), strict)
    if beside is None:
        ms, data_ms = _time(step, data, device, warmup, iters)
        return ms, data_ms, _peak_mb(device, base), []
    for _ in range(warmup):
        step(*next(data))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    warm = _peak_mb(device, base)
    ms, data_ms, timed, ratios = _time_beside(step, data, beside, device, iters, base)
    # CUDA: the larger of the warm-up's peak and the timed chunks' (the image pools fill as
    # they go); a CPU's resident high-water mark only grows, so it is read last.
    peak = max(warm, timed) if device.type == "cuda" else _peak_mb(device, base)
    return ms, data_ms, peak, ratios


def _ratio(reference: Result | None, r: Result) -> str:
    """How many times faster than the reference loop, timed beside it (--compare): the median
    of the chunk pairs' ratios, with their interquartile range."""
    if reference is None or reference.error or not reference.rounds:
        return "-"
    if r is reference:
        return "1.00"
    return quartiles(r.ratios) if r.ratios else "-"


def quartiles(ratios: list[float]) -> str:
    """'median (first quartile-third quartile)' of paired ratios, e.g. '1.37 (1.35-1.39)'."""
    q1, median, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    return f"{median:.2f} ({q1:.2f}-{q3:.2f})"


def report(
    results: list[Result], flops: float, peak_tflops: float, batch: int, header: dict[str, str]
) -> tuple[list[str], list[list[str]]]:
    """Column names and rows; ratios are to the reference loop's row when there is one."""
    reference = next((r for r in results if r.setting.startswith("reference")), None)
    columns = [
        "setting", "ms/it", "spread %", "it/s", "img/s", "TFLOP/s", "% peak", "x ref",
        "data ms", "peak MB", f"h for {PAPER_ITERATIONS:,} it",
    ]  # fmt: skip
    rows = []
    for r in results:
        if r.error:
            rows.append([r.setting, "failed: " + r.error] + [""] * (len(columns) - 2))
            continue
        tflops = flops / (r.ms / 1e3) / 1e12
        rows.append(
            [
                r.setting,
                f"{r.ms:.2f}",
                f"{r.spread:.1f}" if len(r.rounds) > 1 else "-",
                f"{1e3 / r.ms:.1f}",
                f"{2 * batch * 1e3 / r.ms:.1f}",  # a and b images per iteration
                f"{tflops:.3g}",  # 3 digits: a tiny model on a CPU does 0.00x
                f"{100 * tflops / peak_tflops:.1f}",
                _ratio(reference, r),
                f"{r.data_ms:.2f}",
                f"{r.peak_mb:.0f}",
                f"{PAPER_ITERATIONS * r.ms / 3.6e6:.2f}",
            ]
        )
    return columns, rows
