"""Where a paper-sized CycleGAN step spends its GPU time: torch.profiler's top kernels for the
eager bf16 step, then timings of a few compile variants.

Usage (on a GPU machine): python benchmarks/profile_step.py OUTDIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from rich.console import Console
from torch.profiler import ProfilerActivity, profile

from cgfw.bench import _framework_step, _time
from cgfw.model import Speed, build_cyclegan
from cgfw.plugins import load_plugins
from cgfw.recipe import load
from cgfw.trainer import LossLog

out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
loaded = load_plugins()
resolved = load(
    "paper_default", loaded.registry, ["data={name='emoji', load_size=256, crop_size=256}"]
)
dev = torch.device("cuda")
torch.backends.cudnn.benchmark = True


def data(fmt: torch.memory_format):  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(0)
    pairs = [
        [(torch.rand(1, 3, 256, 256, generator=g) * 2 - 1).to(dev) for _ in range(2)]
        for _ in range(4)
    ]
    while True:
        for a, b in pairs:
            yield a.contiguous(memory_format=fmt), b.contiguous(memory_format=fmt)


def step_for(speed: Speed):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    m = build_cyclegan(resolved, loaded.registry, dev, speed)
    return _framework_step(m, LossLog(None, Console(quiet=True), 10**6, 0))


speed = Speed("bf16", False, "off")
step, batches = step_for(speed), data(torch.contiguous_format)
for _ in range(10):
    step(*next(batches))
torch.cuda.synchronize()
with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
    for _ in range(5):
        step(*next(batches))
    torch.cuda.synchronize()
table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=40, max_name_column_width=70)
(out / "profile_bf16.txt").write_text(table)
print(table[:6000])
events = prof.key_averages()
gpu_us = sum(e.self_device_time_total for e in events) / 5
print(f"GPU busy per iteration: {gpu_us / 1e3:.1f} ms")

lines = []
for name, sp in [
    ("bf16 contiguous + compile(cudagraphs)", Speed("bf16", False, "reduce-overhead")),
    ("bf16 channels_last + compile(cudagraphs)", Speed("bf16", True, "reduce-overhead")),
    ("bf16 contiguous + compile(default)", Speed("bf16", False, "default")),
]:
    try:
        ms, _ = _time(step_for(sp), data(sp.memory_format), dev, 20, 60)
        lines.append(f"{name}: {ms:.2f} ms/it  {1e3 / ms:.1f} it/s")
    except Exception as exc:
        lines.append(f"{name}: failed {type(exc).__name__}: {exc}"[:300])
    print(lines[-1], flush=True)
    torch._dynamo.reset()
(out / "variants.txt").write_text("\n".join(lines) + "\n")
