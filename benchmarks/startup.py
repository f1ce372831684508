"""How long each `cgfw` command takes to start: the median of 5 runs of `python -m cgfw ARGS`
in fresh processes (each a cold interpreter; the OS file cache is warm after the first).

    python benchmarks/startup.py                   # this checkout
    python benchmarks/startup.py --tree OLD_TREE   # another checkout (e.g. a git worktree of an
                                                   # older commit), its cgfw and plugins first
                                                   # on sys.path, the same venv

Prints one row per command: median and min/max seconds. Machine and load matter: run it on
idle cores and quote the machine with the numbers (docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = [
    ["--help"],
    ["--version"],
    ["recipes"],
    ["recipe", "show", "quickstart"],
    ["plugins"],
    ["run", "--help"],
]


def time_once(args: list[str], env: dict[str, str], tree: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(  # in the tree: `-m` puts the working directory first on sys.path
        [sys.executable, "-m", "cgfw", *args], env=env, cwd=tree, capture_output=True, timeout=300
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"cgfw {' '.join(args)} failed: {done.stderr.decode()[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, help="a checkout to time instead of this one")
    parser.add_argument("--runs", type=int, default=5)
    opts = parser.parse_args()
    env = dict(os.environ)
    tree = (opts.tree or Path(__file__).parent.parent).resolve()
    env["PYTHONPATH"] = os.pathsep.join([str(tree), str(tree / "plugins")])
    print(f"{'command':28} {'median s':>9} {'min':>6} {'max':>6}")
    for args in COMMANDS:
        times = [time_once(args, env, tree) for _ in range(opts.runs)]
        label = "cgfw " + " ".join(args)
        print(f"{label:28} {statistics.median(times):9.2f} {min(times):6.2f} {max(times):6.2f}")


if __name__ == "__main__":
    main()
