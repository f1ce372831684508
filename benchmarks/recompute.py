"""What train.activation_checkpointing costs and saves: peak memory and time of the paper's
CycleGAN step (paper_default: ResNet-9 generators, ngf 64, 70x70 PatchGAN, batch 1, fp32) with
and without it, at 256 and 512 px, on the CPU or the GPU.

Each configuration runs in a fresh process. Memory is the step's own: on the CPU the peak
resident set (VmHWM, reset after the model is built, through /proc/self/clear_refs) less the
resident set before the first step; on the GPU torch.cuda.max_memory_allocated less the memory
allocated before it. Time is the median of the timed iterations after one warm-up.

    python benchmarks/recompute.py [--sizes 256,512] [--iters 2] [--device cpu|cuda] [--ngf 64]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
import torch
from rich.console import Console
from cgfw.plugin.loader import load_plugins
from cgfw.recipe import load
from cgfw.training.loop import train_iteration
from cgfw.training.model import Speed, build_model
from cgfw.training.progress import LossLog

size, recompute, iters, device, ngf = json.loads(sys.argv[1])
loaded = load_plugins()
data = f"data={{name='emoji', load_size={size}, crop_size={size}}}"
resolved = load("paper_default", loaded.registry, [data, f"generator.ngf={ngf}"])
dev = torch.device(device)
torch.manual_seed(0)
m = build_model(resolved, dev, Speed("fp32", False, "off", False, recompute))
log = LossLog(None, Console(quiet=True), iters + 1, 0)
real_a, real_b = (torch.rand(1, 3, size, size, device=dev) * 2 - 1 for _ in range(2))

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    raise RuntimeError(field)

def step(i):
    train_iteration(m.step, m, real_a, real_b, log, i, Path("."))
    if dev.type == "cuda":
        torch.cuda.synchronize()

from pathlib import Path
if dev.type == "cuda":
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
else:
    open("/proc/self/clear_refs", "w").write("5")  # resets VmHWM to the current RSS
    base = rss("VmRSS:")
times = []
for i in range(iters + 1):
    start = time.perf_counter()
    step(i + 1)
    if i:
        times.append(time.perf_counter() - start)
peak = torch.cuda.max_memory_allocated() if dev.type == "cuda" else rss("VmHWM:")
print(json.dumps({"memory": peak - base, "seconds": times}))
"""


def measure(size: int, recompute: bool, iters: int, device: str, ngf: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps([size, recompute, iters, device, ngf])],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"mib": result["memory"] / 2**20, "s": statistics.median(result["seconds"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    opts = parser.parse_args()
    rows = []
    print(f"{'px':>5} {'checkpointing':>13} {'step MiB':>9} {'s/iter':>7}")
    for size in (int(s) for s in opts.sizes.split(",")):
        for recompute in (False, True):
            r = measure(size, recompute, opts.iters, opts.device, opts.ngf)
            rows.append({"px": size, "checkpointing": recompute, **r})
            print(f"{size:5} {'on' if recompute else 'off':>13} {r['mib']:9.0f} {r['s']:7.2f}")
    for size in sorted({r["px"] for r in rows}):
        off, on = (
            next(r for r in rows if r["px"] == size and r["checkpointing"] is c)
            for c in (False, True)
        )
        memory, slower = on["mib"] / off["mib"], on["s"] / off["s"]
        print(f"{size} px: memory x{memory:.2f}, time x{slower:.2f} with it")
    if opts.json:
        opts.json.write_text(json.dumps({"when": time.ctime(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
