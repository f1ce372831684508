"""The per-iteration losses of the quickstart and of paper_default (at a small size), pinned
before the CycleGAN step moved from the engine into the paper plugin. Any change to the step's
numerics (order of calls, loss sums, pool draws, seeding) changes these numbers.

The values in tests/data/pinned_losses.json were computed on this project's CPUs, torch 2.14.1,
first by commit 8b83e61's step. One torch thread: the thread count changes how convolutions sum,
so the numbers would differ between machines with other core counts. The CPU changes them too:
oneDNN picks its kernels by the vector extensions it finds, and an Intel Xeon and an AMD EPYC,
both AVX512 to torch, agree to 1e-7 for two iterations and then drift by up to 0.7 %. So the
file keeps a set per kind of machine, labelled with torch's CPU capability and the CPU's
AVX-512 and AMX extensions (`machine_kind`): a run matches its kind's set, and a machine of a
kind with none skips, saying how to add one. Add a set only from the unchanged step (`python
tests/test_pinned_losses.py --write` adds or replaces this kind's); regenerate them only for a
change meant to change the numerics, and drop the sets of the kinds it could not be run on.

Changes so far, all issue 23's, all within 1e-5 of the authors' loop over four iterations
(tests/test_parity.py): g_ba takes its three inputs in one stacked call (its weight gradients
sum in another order); the generator's output conv trains on a CPU as the transposed
convolution of its flipped kernel (tests/plugins/test_output_conv.py: the same values to
rounding); Adam is fused on a CPU too (7e-9 from torch's default after 20 steps); the generator's
first conv computes its gradient to its input without oneDNN, and instance norm trains as group
norm with a group per channel (tests/plugins/test_fast_on_cpu.py: the same values to rounding);
the output conv's forward pass is computed by im2col (tests/plugins/test_output_conv.py; the
losses 3e-7 apart at iteration 1); the two discriminators run as one network with grouped convs
(tests/plugins/test_paired_calls.py). The last five were made on an AMD EPYC; the Intel Xeon's
set of the first, of a step that no longer exists, was dropped, and a set for the Xeon with AMX
was added on 2026-12-07 from the step at 38bc19d (the EPYC's set unchanged).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from cgfw.cli import main
from cgfw.tools.compare import curves, load_run

PINNED = Path(__file__).parent / "data" / "pinned_losses.json"
SMALL = ["data.load_size=32", "data.crop_size=32", "train.device=cpu", "train.log_every=1"]
CASES: dict[str, list[str]] = {
    # The quickstart as shipped, but for the length of the run.
    "quickstart": [*SMALL, "train.max_iters=6"],
    # paper_default's structure (9 blocks, 3-layer PatchGAN, pool, identity, linear decay) on
    # the embedded emoji, with narrow networks.
    "paper_default": [
        *SMALL,
        "generator.ngf=8",
        "discriminator.ndf=8",
        "train.max_iters=6",
        "train.num_workers=0",
    ],
}


# paper_default's horse2zebra swapped for the embedded emoji (extends starts [data] afresh).
ON_EMOJI = """extends = "paper_default"
[data]
name = "emoji"
"""


def machine_kind() -> str:
    """torch's CPU capability and, on Linux, the CPU's AVX-512 and AMX flags (what oneDNN chooses
    its kernels by), e.g. 'AVX512 avx512_bf16 avx512_vnni ... amx_tile'."""
    info = Path("/proc/cpuinfo")
    words = info.read_text().split() if info.exists() else []
    flags = sorted({w for w in words if w.startswith(("avx512", "amx"))})
    return " ".join([torch.backends.cpu.get_cpu_capability(), *flags])


@contextmanager
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def losses(recipe: str, overrides: list[str], out: Path) -> dict[str, list[float]]:
    out.mkdir(parents=True, exist_ok=True)
    if recipe == "paper_default":
        (out / "paper_on_emoji.toml").write_text(ON_EMOJI, encoding="utf-8")
        recipe = str(out / "paper_on_emoji.toml")
    args = ["run", recipe, "--set", f"run.output_dir={out}"]
    for o in overrides:
        args += ["--set", o]
    with one_thread():
        result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    found = curves(load_run(run_dir))
    return {k: [v for _, v in sorted(found[k])] for k in sorted(found) if k.startswith("loss.")}


def matches(got: dict[str, list[float]], pinned: dict[str, list[float]]) -> list[str]:
    """The terms where `got` differs from `pinned` (all of them when the names differ)."""
    if sorted(got) != sorted(pinned):
        return [f"terms {sorted(got)} != {sorted(pinned)}"]
    return [
        term
        for term, values in pinned.items()
        if len(got[term]) != len(values) or got[term] != pytest.approx(values, rel=1e-6, abs=1e-7)
    ]


@pytest.mark.parametrize("recipe", sorted(CASES))
def test_per_iteration_losses_are_the_pinned_ones(recipe: str, tmp_path: Path) -> None:
    machines = json.loads(PINNED.read_text(encoding="utf-8"))["machines"]
    here = machine_kind()
    mine = [m for m in machines if m["cpu"] == here]
    if not mine:  # another kind sums convolutions otherwise: its losses drift from iteration 3
        pytest.skip(
            f"no pinned losses for a {here} CPU (recorded: {[m['cpu'] for m in machines]}); "
            "from an unchanged step, `python tests/test_pinned_losses.py --write` adds them"
        )
    got = losses(recipe, CASES[recipe], tmp_path)
    assert all(len(v) == 6 for v in got.values())
    misses = {m["note"]: matches(got, m["losses"][recipe]) for m in mine}
    assert any(not miss for miss in misses.values()), f"differs on this {here} CPU: {misses}"


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        table = {r: losses(r, CASES[r], Path(tmp) / r) for r in sorted(CASES)}
    kept = json.loads(PINNED.read_text(encoding="utf-8")) if PINNED.exists() else {"machines": []}
    kind = machine_kind()
    kept["machines"] = [m for m in kept["machines"] if m["cpu"] != kind]
    kept["machines"].append({"cpu": kind, "note": "written by --write", "losses": table})
    PINNED.write_text(json.dumps(kept, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {PINNED}")
