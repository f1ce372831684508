"""train.ema: a moving average of the generators, checkpointed and resumed exactly, used by
samples, [eval], eval, translate and export unless --raw asks for the trained weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cgfw.plugin.loader import Loaded
from cgfw.recipe import load
from cgfw.store import checkpoint
from cgfw.training.ema import EMA
from cgfw.training.model import build_model
from tests.conftest import run_dirs, state_equal

EMA_ON = ["--set", "train.ema=0.9"]


def test_the_average_moves_by_one_minus_decay_and_is_applied_only_inside_the_block(
    loaded: Loaded, tiny_recipe: Path
) -> None:
    m: Any = build_model(load(str(tiny_recipe), loaded.registry))
    ema = EMA(m, 0.9)
    assert ema.names == ["g_ab", "g_ba"]  # the translators; not the discriminators
    before = {k: v.clone() for k, v in m.g_ab.state_dict().items()}
    with torch.no_grad():
        for p in m.g_ab.parameters():
            p.add_(1.0)
    ema.update()
    for key, value in m.g_ab.state_dict().items():
        assert torch.allclose(ema.avg["g_ab"][key], 0.9 * before[key] + 0.1 * value)
    trained = {k: v.clone() for k, v in m.g_ab.state_dict().items()}
    with ema.applied():
        assert state_equal(m.g_ab.state_dict(), ema.avg["g_ab"])
    assert state_equal(m.g_ab.state_dict(), trained)


def test_the_average_is_checkpointed_and_resumed_exactly(cli: Any, tiny_recipe: Path) -> None:
    runs = tiny_recipe.parent / "runs"
    assert cli("run", tiny_recipe, *EMA_ON, "--set", "train.max_iters=4").exit_code == 0
    (straight,) = run_dirs(runs)
    short = ["--set", "train.max_iters=2", "--set", "run.name=split"]
    assert cli("run", tiny_recipe, *EMA_ON, *short).exit_code == 0
    (split,) = [d for d in run_dirs(runs) if d.name.startswith("split")]
    assert cli("run", "--resume", split, "--set", "train.max_iters=4").exit_code == 0
    a = checkpoint.load(straight / "checkpoints" / "latest.pt")
    b = checkpoint.load(split / "checkpoints" / "latest.pt")
    for net in ("g_ab", "g_ba"):
        assert state_equal(a.ema[net], b.ema[net]), net
        assert not state_equal(a.ema[net], a.model["networks"][net])


def test_translate_eval_and_curves_use_the_average_unless_raw(
    cli: Any, tiny_recipe: Path, tmp_path: Path
) -> None:
    every = ["--set", "eval.every=2", "--set", "eval.metrics=['psnr']"]
    assert cli("run", tiny_recipe, *EMA_ON, *every).exit_code == 0
    (run_dir,) = run_dirs(tiny_recipe.parent / "runs")
    Image.new("RGB", (32, 32), (200, 30, 40)).save(tmp_path / "in.png")
    for name, extra in (("ema.png", []), ("raw.png", ["--raw"])):
        result = cli("translate", run_dir, tmp_path / "in.png", tmp_path / name, *extra)
        assert result.exit_code == 0, result.output
    assert (tmp_path / "ema.png").read_bytes() != (tmp_path / "raw.png").read_bytes()
    assert cli("eval", run_dir, "--metrics", "psnr").exit_code == 0
    averaged = json.loads((run_dir / "metrics.json").read_text())
    assert cli("eval", run_dir, "--metrics", "psnr", "--raw").exit_code == 0
    raw = json.loads((run_dir / "metrics.json").read_text())
    assert (averaged["weights"], raw["weights"]) == ("ema", "trained")
    assert averaged["a2b"]["psnr"] != raw["a2b"]["psnr"]
    tags: set[str] = set()
    for events in run_dir.glob("events.out.tfevents.*"):  # training's, then eval's
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"])
    assert {"eval/a2b/psnr", "eval_raw/a2b/psnr"} <= tags


def test_a_run_without_ema_resumed_with_it_starts_the_average_there(
    cli: Any, tiny_recipe: Path
) -> None:
    assert cli("run", tiny_recipe, "--set", "train.max_iters=2").exit_code == 0
    (run_dir,) = run_dirs(tiny_recipe.parent / "runs")
    more = ["--set", "train.max_iters=4", *EMA_ON, "--allow-changes"]
    result = cli("run", "--resume", run_dir, *more)
    assert result.exit_code == 0, result.output
    assert "train.ema: 0.0 -> 0.9" in result.output
    state = checkpoint.load(run_dir / "checkpoints" / "latest.pt")
    assert set(state.ema) == {"g_ab", "g_ba"}
