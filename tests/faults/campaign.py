"""The fault campaign: cgfw attacked the ways a careless user, a full disk, a scheduler and a
hostile file would, every case classified and counted.

    python -m tests.faults.campaign           # the long campaign (about 10 min, 2 cores)
    python -m tests.faults.campaign --quick   # the slice CI runs (test_campaign.py)

Outcomes: clean (done, or refused with one `error:` line and exit 2), accepted (a recipe
mutant that validates and builds: not a fault by itself), traceback (an exception escaped to
the user), hang (no answer within the time limit) and lost (a run, a checkpoint or a result
damaged or wrong: a resumed run that differs from its uninterrupted twin, a checkpoint that
no longer loads after a failed write, damage loaded without a word). The counts are printed
last; the exit code is 1 when any case is a traceback, a hang or a loss, the bar being zero.

Campaigns: `mutants` (the resolved quickstart recipe with keys deleted, given wrong types,
extreme numbers, unicode, deep nesting; `cgfw recipe show`, then `cgfw run --dry-run` for those
accepted), `flips` (a bit flipped at a random offset of a real checkpoint), `disks` (a run on a
tmpfs filled to leave a random number of bytes; skipped where mount is not allowed), `kills`
(SIGKILLs at random moments of one run, each resumed, against an uninterrupted twin) and
`images` (tests/faults/bad_images.py's corpus through `cgfw data check` and `cgfw translate`)."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import tomli_w
from click.testing import CliRunner, Result

from cgfw.cli import main
from cgfw.recipe.keys import flatten
from cgfw.store import checkpoint
from tests.conftest import TINY, make_folder_dataset, run_dirs, state_equal

ROOT = Path(__file__).resolve().parents[2]
OUTCOMES = ("clean", "accepted", "traceback", "hang", "lost")


class Hang(BaseException):
    """Raised by the alarm: the case took longer than its limit."""


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def expired(_signum: int, _frame: FrameType | None) -> None:
        raise Hang

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@dataclass
class Tally:
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    faults: list[str] = field(default_factory=list)  # what each traceback, hang or loss was

    def add(self, campaign: str, outcome: str, case: str, detail: str = "") -> None:
        self.counts[campaign, outcome] += 1
        if outcome in ("traceback", "hang", "lost"):
            self.faults.append(f"{campaign}: {outcome}: {case}: {detail[-600:]}")

    def bad(self) -> int:
        return sum(n for (_, o), n in self.counts.items() if o in ("traceback", "hang", "lost"))

    def table(self) -> str:
        campaigns = sorted({c for c, _ in self.counts})
        lines = [f"{'campaign':<10}" + "".join(f"{o:>11}" for o in OUTCOMES)]
        for c in campaigns:
            lines.append(f"{c:<10}" + "".join(f"{self.counts[c, o]:>11}" for o in OUTCOMES))
        total = [sum(self.counts[c, o] for c in campaigns) for o in OUTCOMES]
        lines.append(f"{'all':<10}" + "".join(f"{n:>11}" for n in total))
        return "\n".join(lines)


def invoke(
    *args: Any, limit: int = 60, codes: tuple[int, ...] = (0, 2)
) -> tuple[Result | None, str]:
    """`cgfw ARGS` in this process: (result, outcome so far: clean/traceback/hang); `codes`,
    the exit codes the command documents."""
    try:
        with time_limit(limit):
            result = CliRunner().invoke(main, [str(a) for a in args])
    except Hang:
        return None, "hang"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return result, "traceback"
    if "Traceback" in result.output:
        return result, "traceback"
    if result.exit_code not in codes:
        return result, "traceback"
    errors = sum(line.startswith("error:") for line in result.output.splitlines())
    if result.exit_code == 2 and errors != 1:
        return result, "traceback"  # refused, but not with one clear line
    return result, "clean"


# --- recipe mutants ---------------------------------------------------------------------------

ODD_VALUES: list[Any] = [
    "x", "", True, False, [], {}, [1, "a"], {"name": 5}, 1.5, -1, 0, 2**63 - 1, -(2**63),
    1e308, -1e308, math.inf, -math.inf, math.nan, 1e-308, "名前", "\u202e\u0000", "../../etc",
    "a" * 5000, "/abs/path", 10**6, 10**12,
]  # fmt: skip


def mutant(base: dict[str, Any], rng: random.Random) -> tuple[str, str]:
    """(what was done, the TOML text of a mutated recipe)."""
    flat = flatten(base)
    key = rng.choice(sorted(flat))
    section = key.split(".")[0]
    kind = rng.choice(["delete", "value", "value", "value", "section", "nest", "extra"])
    data = json.loads(json.dumps(base))  # a deep copy, TOML-able types only
    parts = key.split(".")
    holder = data
    for p in parts[:-1]:
        holder = holder[p]
    if kind == "delete":
        del holder[parts[-1]]
        return f"del {key}", tomli_w.dumps(data)
    if kind == "value":
        value = rng.choice(ODD_VALUES)
        holder[parts[-1]] = value
        text = tomli_w.dumps(data)
        return f"{key} = {value!r:.40}", text
    if kind == "section":
        value = rng.choice([5, "x", [1], True])
        data[section] = value
        return f"{section} = {value!r}", tomli_w.dumps(data)
    if kind == "nest":
        depth = rng.choice([40, 500, 2000])
        del holder[parts[-1]]
        return f"{key} nested {depth} deep", (
            tomli_w.dumps(data) + f"\n[nested_{section}]\nx = {'[' * depth}{']' * depth}\n"
        )
    extra = rng.choice(["colour", "ngf2", "名前"])
    holder[extra] = 1
    return f"{key.rsplit('.', 1)[0]}.{extra} = 1 (unknown)", tomli_w.dumps(data)


def mutants(n: int, rng: random.Random, work: Path, tally: Tally) -> None:
    shown, _ = invoke("recipe", "show", "quickstart")
    assert shown is not None and shown.exit_code == 0, shown.output if shown else "hang"
    import tomllib

    base = tomllib.loads(shown.stdout)
    base["run"]["output_dir"] = str(work / "runs")
    for i in range(n):
        what, text = mutant(base, rng)
        path = work / f"mutant_{i}.toml"
        path.write_text(text, encoding="utf-8")
        result, outcome = invoke("recipe", "show", path)
        if outcome == "clean" and result is not None and result.exit_code == 0:
            result, outcome = invoke("run", path, "--dry-run", "--device", "cpu", limit=120)
            if outcome == "clean" and result is not None and result.exit_code == 0:
                outcome = "accepted"
        tally.add("mutants", outcome, what, result.output if result else "")
    left = list((work / "runs").iterdir()) if (work / "runs").exists() else []
    if left:
        tally.add("mutants", "lost", "a dry run left a run directory", str(left))


# --- bit flips --------------------------------------------------------------------------------


def flips(n: int, rng: random.Random, run: Path, work: Path, tally: Tally) -> None:
    good = run / "checkpoints" / "latest.pt"
    original = checkpoint.load(good)
    data = good.read_bytes()
    for i in range(n):
        damaged = bytearray(data)
        at, bit = rng.randrange(len(damaged)), 1 << rng.randrange(8)
        damaged[at] ^= bit
        path = work / f"flip_{i}.pt"
        path.write_bytes(bytes(damaged))
        case = f"byte {at} of {len(data)}, bit {bit}"
        try:
            loaded = checkpoint.load(path)
        except checkpoint.DamagedCheckpoint:
            tally.add("flips", "clean", case)
            continue
        except Exception as exc:
            tally.add("flips", "traceback", case, f"{type(exc).__name__}: {exc}")
            continue
        same = loaded.iteration == original.iteration and all(
            state_equal(loaded.model["networks"][k], original.model["networks"][k])
            for k in original.model["networks"]
        )
        # A flip in what the zip reader ignores (a timestamp, a comment) changes nothing.
        tally.add("flips", "clean" if same else "lost", case, "damage loaded without a word")


# --- full disks -------------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path | None]:
    where.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True)  # fmt: skip
    try:
        yield None if made.returncode else where
    finally:
        if not made.returncode:
            subprocess.run(["umount", "-l", str(where)], check=False)


def disks(n: int, rng: random.Random, work: Path, tally: Tally) -> None:
    with tmpfs(work / "disk", "16m") as disk:
        if disk is None:
            print("disks: skipped (cannot mount a tmpfs here: not root?)")
            return
        recipe = work / "disk_tiny.toml"
        recipe.write_text(TINY.format(out=disk / "runs"), encoding="utf-8")
        for _ in range(n):
            for p in disk.iterdir():
                shutil.rmtree(p) if p.is_dir() else p.unlink()
            leave = rng.choice([0, rng.randrange(4096), rng.randrange(2 * 2**20)])
            (disk / "runs").mkdir()
            stat = os.statvfs(disk)
            with open(disk / "filler", "wb") as f:
                f.write(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave))
            result, outcome = invoke("run", recipe, "--set", "train.max_iters=20")
            case = f"{leave} bytes left"
            if outcome == "clean":
                tmp = [p for p in disk.rglob("*.tmp")]
                broken = []
                for run_dir in run_dirs(disk / "runs"):
                    try:
                        checkpoint.load(checkpoint.latest_in(run_dir / "checkpoints"))
                    except Exception as exc:
                        broken.append(f"{run_dir.name}: {exc}")
                if tmp or broken:
                    outcome = "lost"
                    case += f" ({tmp or ''} {broken or ''})"
            tally.add("disks", outcome, case, result.output if result else "")


# --- kills ------------------------------------------------------------------------------------

KILL_SETTINGS = [
    "--set", "train.checkpoint_every=4", "--set", "train.log_every=3",
    "--set", "train.image_every=7",
]  # fmt: skip


def child(*args: str, kill: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.faults.killer", kill, *args],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def kills(n: int, rng: random.Random, work: Path, tally: Tally) -> None:
    """`n` runs, each killed at 1 to 3 random moments (in a step, inside a checkpoint write,
    after the last checkpoint) and resumed after each."""
    if n == 0:
        return
    counts = {"trainA": 10, "trainB": 10, "testA": 2, "testB": 2}
    data = make_folder_dataset(work / "kill_data", counts)
    total = 17
    recipe = work / "kill_tiny.toml"
    recipe.write_text(
        TINY.format(out=work / "kill_runs").replace(
            'name = "emoji"', f'name = "folder"\nroot = "{data}"'
        ),
        encoding="utf-8",
    )
    settings = [*KILL_SETTINGS, "--set", f"train.max_iters={total}"]
    twin_out = work / "kill_twin"
    result, outcome = invoke("run", recipe, *settings, "--set", f"run.output_dir={twin_out}")
    assert outcome == "clean" and result is not None and result.exit_code == 0
    (twin,) = run_dirs(twin_out)
    for i in range(n):
        points = sorted(
            rng.sample(range(2, total + 1), rng.randint(1, 3)),
        )
        chain = [
            rng.choice([f"step:{k}", f"save:{k - k % 4}" if k >= 4 else f"step:{k}"])
            for k in points
        ]
        if rng.random() < 0.3:
            chain.append("final")
        out = work / f"killed_{i}"
        case = " -> ".join(chain)
        proc = child("run", str(recipe), *settings, "--set", f"run.output_dir={out}", kill=chain[0])
        if proc.returncode != -9 or not out.exists() or not run_dirs(out):
            tally.add("kills", "traceback" if "Traceback" in proc.stderr else "clean", case,
                      proc.stderr)  # fmt: skip
            continue
        (run_dir,) = run_dirs(out)
        faults = ""
        for point in chain[1:]:
            again = child("run", "--resume", str(run_dir), kill=point)
            if "Traceback" in again.stderr or again.returncode not in (-9, 0, 2):
                faults = again.stderr
        if (run_dir / "final_losses.json").exists():  # a kill point the resume never reached
            result, outcome = None, "clean"
        elif not (run_dir / "checkpoints" / "latest.pt").exists():
            result, outcome = invoke("run", recipe, *settings, "--set", f"run.output_dir={out}")
        else:
            result, outcome = invoke("run", "--resume", run_dir)
        if faults:
            tally.add("kills", "traceback", case, faults)
            continue
        if outcome != "clean" or (result is not None and result.exit_code != 0):
            tally.add("kills", "lost" if outcome == "clean" else outcome, case,
                      result.output if result else "")  # fmt: skip
            continue
        finished = [d for d in run_dirs(out)]
        a = checkpoint.load(twin / "checkpoints" / "latest.pt")
        b = checkpoint.load(finished[-1] / "checkpoints" / "latest.pt")
        same = all(
            state_equal(a.model["networks"][k], b.model["networks"][k]) for k in a.model["networks"]
        ) and json.loads((twin / "final_losses.json").read_text()) == json.loads(
            (finished[-1] / "final_losses.json").read_text()
        )
        tally.add("kills", "clean" if same else "lost", case, "differs from its twin")


# --- images -----------------------------------------------------------------------------------


def images(run: Path, work: Path, tally: Tally) -> None:
    try:
        from tests.faults.bad_images import bad_images
    except ImportError:
        print("images: skipped (no tests/faults/bad_images.py)")
        return
    folder = work / "bad" / "trainA"
    paths = bad_images(folder)
    result, outcome = invoke("data", "check", folder, codes=(0, 1))  # 1: files need attention
    tally.add("images", outcome, "cgfw data check on the corpus", result.output if result else "")
    for path in paths:
        result, outcome = invoke("translate", run, path, work / "translated" / f"{path.stem}.png")
        tally.add("images", outcome, f"translate {path.name}", result.output if result else "")


def campaign(args: argparse.Namespace) -> Tally:
    rng = random.Random(args.seed)
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="cgfw-faults-") as tmp:
        work = Path(tmp)
        recipe = work / "tiny.toml"
        recipe.write_text(TINY.format(out=work / "trained"), encoding="utf-8")
        result, outcome = invoke("run", recipe)
        assert outcome == "clean" and result is not None and result.exit_code == 0
        (trained,) = run_dirs(work / "trained")
        steps: list[tuple[str, Callable[[], None]]] = [
            ("mutants", lambda: mutants(args.mutants, rng, work, tally)),
            ("flips", lambda: flips(args.flips, rng, trained, work, tally)),
            ("disks", lambda: disks(args.disks, rng, work, tally)),
            ("images", lambda: images(trained, work, tally)),
            ("kills", lambda: kills(args.kills, rng, work, tally)),
        ]
        for name, step in steps:
            start = time.perf_counter()
            step()
            print(f"{name}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return tally


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the CI slice: few cases of each")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mutants", type=int, default=300)
    parser.add_argument("--flips", type=int, default=200)
    parser.add_argument("--disks", type=int, default=12)
    parser.add_argument("--kills", type=int, default=8)
    args = parser.parse_args(argv)
    if args.quick:
        args.mutants, args.flips, args.disks, args.kills = 30, 30, 2, 0
    return args


if __name__ == "__main__":
    tally = campaign(parse())
    for fault in tally.faults:
        print(fault)
    print(tally.table())
    sys.exit(1 if tally.bad() else 0)
