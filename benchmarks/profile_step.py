"""Where a paper-sized CycleGAN step spends its GPU time, per speed variant: the median ms per
iteration, then torch.profiler's top kernels and the GPU-busy time of a few iterations.

The GPU-busy time (kernels of the same networks launched without the graph) is the floor a
variant can reach once the host is out of the way, so it says which variant to work on next.

Usage (on a GPU machine): python benchmarks/profile_step.py OUTDIR
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch.profiler import ProfilerActivity, profile

from cgfw.plugin.loader import load_plugins
from cgfw.recipe import load
from cgfw.tools.bench import _framework_step, _time
from cgfw.training.model import Speed, build_model
from cgfw.training.progress import LossLog

out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
out.mkdir(parents=True, exist_ok=True)
loaded = load_plugins()
resolved = load(
    "paper_default", loaded.registry, ["data={name='emoji', load_size=256, crop_size=256}"]
)
dev = torch.device("cuda")
torch.backends.cudnn.benchmark = True


def data() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)

    def image() -> torch.Tensor:
        return (torch.rand(1, 3, 256, 256, generator=g) * 2 - 1).to(dev)

    pairs = [(image(), image()) for _ in range(4)]
    while True:
        yield from pairs


def inductor(**options: Any) -> contextlib.AbstractContextManager[Any]:
    import torch._inductor.config as config

    return config.patch(**options)  # type: ignore[no-any-return]


GRAPH = Speed("bf16", False, "off", cuda_graph=True)
COMPILED_GRAPH = Speed("bf16", False, "default", cuda_graph=True)
# (name, speed, inductor options, calls stacked): "calls apart" runs each network once per input,
# as the step did before it stacked same-shaped inputs (train.stack_calls), to see that gain.
# The fastest setting first: a call cut short by its time limit keeps what finished.
VARIANTS: list[tuple[str, Speed, dict[str, Any], bool]] = [
    ("bf16 + compile + cuda_graph", COMPILED_GRAPH, {}, True),
    ("bf16 + compile + cuda_graph, calls apart", COMPILED_GRAPH, {}, False),
    ("bf16 + cuda_graph", GRAPH, {}, True),
    ("bf16 + cuda_graph, calls apart", GRAPH, {}, False),
    (
        "bf16 + compile(no layout optimization) + cuda_graph",
        COMPILED_GRAPH,
        {"layout_optimization": False},
        True,
    ),
    (  # last: autotuning can take minutes
        "bf16 + compile(max_autotune, no cudagraphs) + cuda_graph",
        COMPILED_GRAPH,
        {"max_autotune": True},
        True,
    ),
]

(out / "profiles.txt").unlink(missing_ok=True)
lines = []
for name, speed, options, stacked in VARIANTS:
    try:
        with inductor(**options):
            torch.manual_seed(0)
            m: Any = build_model(resolved, dev, speed)
            m.stacking.enabled = stacked  # the CycleGAN's switch (train.stack_calls)
            m.setup(*next(data()))
            step = _framework_step(m, LossLog(None, Console(quiet=True), 10**6, 0))
            batches = data()
            ms, _ = _time(step, batches, dev, 20, 60)
            # Profile the same networks launched without the graph (the profiler may not see
            # the kernels inside a replayed graph): the same kernels, the host's gaps aside.
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                for _ in range(5):
                    m.step(*next(batches))
                torch.cuda.synchronize()
        events = prof.key_averages()
        busy = sum(e.self_device_time_total for e in events) / 5 / 1e3
        table = events.table(sort_by="self_cuda_time_total", row_limit=30, max_name_column_width=70)
        with (out / "profiles.txt").open("a") as f:
            f.write(f"== {name} (5 iterations)\n{table}\n")
        lines.append(f"{name}: {ms:.2f} ms/it, {1e3 / ms:.1f} it/s, GPU busy {busy:.1f} ms/it")
    except Exception as exc:
        lines.append(f"{name}: failed {type(exc).__name__}: {exc}"[:300])
    print(lines[-1], flush=True)
    (out / "variants.txt").write_text("\n".join(lines) + "\n")  # after each: a timeout keeps it
    torch._dynamo.reset()
