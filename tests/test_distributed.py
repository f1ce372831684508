"""Two gloo processes under torchrun train like one process with the same global batch."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cgfw.plugin.loader import load_plugins
from cgfw.recipe import load
from cgfw.store import checkpoint
from cgfw.training.model import build_network
from tests.conftest import run_dirs

# No pool (each process keeps its own) and no dropout: the only difference left is the order in
# which gradients are summed.
COMMON = [
    "--set",
    "buffer={name='none'}",
    "--set",
    "train.batch_size=2",
    "--set",
    "train.max_iters=3",
]


def cgfw_run(args: list[str], processes: int) -> subprocess.CompletedProcess[str]:
    launcher = [sys.executable, "-m", "cgfw"]
    if processes > 1:
        launcher = [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={processes}", "-m", "cgfw",
        ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(launcher + args, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch(tiny_recipe: Path) -> None:
    runs = tiny_recipe.parent / "runs"
    single = cgfw_run(["run", str(tiny_recipe), *COMMON, "--set", "run.name=single"], 1)
    assert single.returncode == 0, single.stderr
    double = cgfw_run(["run", str(tiny_recipe), *COMMON, "--set", "run.name=double"], 2)
    assert double.returncode == 0, double.stderr
    assert "2 process(es)" in double.stderr
    one, two = (checkpoint.load(d / "checkpoints" / "latest.pt") for d in run_dirs(runs)[::-1])
    assert one.iteration == two.iteration == 3
    for net in ("g_ab", "g_ba", "d_a", "d_b"):
        for key, w1 in one.model["networks"][net].items():
            if key.endswith(".weight"):
                w2 = two.model["networks"][net][key]
                torch.testing.assert_close(w2, w1, rtol=0, atol=2e-6, msg=f"{net}.{key}")
    # Biases of convs followed by instance norm have a zero gradient in exact arithmetic, so Adam
    # turns rounding noise into +-lr steps; they cancel in the norm, so compare what nets compute.
    g = build_network(load(str(tiny_recipe), load_plugins().registry), "generator")
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    outputs = []
    for state in (one, two):
        g.load_state_dict(state.model["networks"]["g_ab"])
        with torch.no_grad():
            outputs.append(g(x))
    torch.testing.assert_close(outputs[1], outputs[0], rtol=0, atol=1e-5)
    assert len(run_dirs(runs)) == 2  # the second process wrote nothing of its own
