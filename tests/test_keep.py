"""Checkpoints worth keeping (issue 21, item 4): train.keep_every's iter_N.pt, train.keep_best's
best.pt and best.json (read back on resume), and --checkpoint best|latest|iter_N in translate,
eval, export and cgfw.load."""

from __future__ import annotations

import errno
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import load_file

import cgfw
from cgfw.cli import main
from cgfw.errors import CgfwError
from cgfw.plugin.registry import Registry
from cgfw.store import checkpoint
from cgfw.store.layout import RunDir
from cgfw.training.keep import Best, KeepBest, declared_better
from tests.conftest import TINY, make_folder_dataset, run_dirs, state_equal

# A distribution metric whose values the test decides: each compute() takes the next value of
# the JSON list in $CGFW_TEST_SCORES (a file, so a resumed run goes on where the first stopped).
# An evaluation computes the a2b, b2a and baseline rows in that order: three values each.
SCRIPTED = """
import json, os
from pathlib import Path
from cgfw import hookimpl

class Scripted:
    name, paired = "scripted", False

    def __init__(self, higher):
        self.higher_is_better = higher

    def update(self, fake, real):
        pass

    def compute(self):
        path = Path(os.environ["CGFW_TEST_SCORES"])
        values = json.loads(path.read_text())
        path.write_text(json.dumps(values[1:]))
        return float(values[0])

    def reset(self):
        pass

@hookimpl
def register_metrics(register):
    register("scripted_high", lambda _o: Scripted(True), None, "test: higher is better")
    register("scripted_low", lambda _o: Scripted(False), None, "test: lower is better")
"""


def folder_recipe(root: Path) -> Path:
    """tiny.toml on a few folder images: two test pairs make an evaluation cheap."""
    data = make_folder_dataset(root / "data", {"trainA": 4, "trainB": 4, "testA": 2, "testB": 2})
    text = TINY.format(out=root / "runs").replace(
        'name = "emoji"', f'name = "folder"\nroot = "{data}"'
    )
    path = root / "tiny.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def scripted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_distribution: Callable[[str, str], Path]
) -> Callable[[list[float]], None]:
    """Install the scripted metrics; the returned function sets the a2b score of each coming
    evaluation, in order."""
    fake_distribution("cgfw-scripted", SCRIPTED)
    scores = tmp_path / "scores.json"
    monkeypatch.setenv("CGFW_TEST_SCORES", str(scores))

    def plan(a2b: list[float]) -> None:
        scores.write_text(json.dumps([v for value in a2b for v in (value, 0.0, 0.0)]))

    return plan


def sets(**keys: Any) -> list[str]:
    args = []
    for key, value in keys.items():
        args += ["--set", f"{key.replace('__', '.')}={json.dumps(value)}"]
    return args


def test_keep_every_keeps_those_iterations_past_the_rotation(cli, tiny_recipe: Path) -> None:  # type: ignore[no-untyped-def]
    # keep_every does not divide into checkpoint_every: its iterations are checkpointed too.
    args = sets(train__max_iters=6, train__checkpoint_every=4, train__keep_every=3)
    result = cli("run", tiny_recipe, *args)
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tiny_recipe.parent / "runs")
    run = RunDir(run_dir)
    assert run.kept_iterations() == [3, 6]
    assert [checkpoint.load(run.kept(i)).iteration for i in (3, 6)] == [3, 6]
    assert checkpoint.load(run.checkpoints / "latest.pt").iteration == 6
    assert checkpoint.load(run.checkpoints / "previous.pt").iteration == 4


def save(directory: Path, iteration: int) -> Path:
    networks = {"g_ab": {"weight": torch.full((2,), float(iteration))}}
    ckpt = checkpoint.Checkpoint(iteration=iteration, recipe={}, model={"networks": networks})
    return checkpoint.save(directory, ckpt)


def test_a_kept_checkpoint_outlives_latest_and_previous(tmp_path: Path) -> None:
    kept = checkpoint.keep(save(tmp_path, 1), tmp_path / "iter_0000001.pt")
    save(tmp_path, 2)
    save(tmp_path, 3)  # iteration 1's file is neither latest nor previous now
    assert checkpoint.load(kept).iteration == 1
    assert not list(tmp_path.glob(".*.tmp"))


def test_without_hard_links_a_kept_checkpoint_is_a_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(*_args: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    latest = save(tmp_path, 1)
    monkeypatch.setattr(checkpoint.os, "link", refused)
    kept = checkpoint.keep(latest, tmp_path / "best.pt")
    assert kept.stat().st_ino != latest.stat().st_ino
    save(tmp_path, 2)
    save(tmp_path, 3)
    assert checkpoint.load(kept).iteration == 1
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(
    ("metric", "best_iteration", "value", "better"),
    [("scripted_high", 4, 5.0, "higher"), ("scripted_low", 2, 1.0, "lower")],
)
def test_keep_best_keeps_the_best_evaluation_either_way(
    cli,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    scripted: Callable[[list[float]], None],
    metric: str,
    best_iteration: int,
    value: float,
    better: str,
) -> None:
    recipe = folder_recipe(tmp_path)
    scripted([1.0, 5.0, 3.0, 4.0])  # at iterations 2, 4, 6, 8
    args = sets(
        train__max_iters=8, train__checkpoint_every=100, eval__every=2,
        eval__metrics=[metric], train__keep_best=f"eval/a2b/{metric}",
    )  # fmt: skip
    result = cli("run", recipe, *args)
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tmp_path / "runs")
    run = RunDir(run_dir)
    record = json.loads(run.best_record.read_text())
    assert record == {
        "metric": f"eval/a2b/{metric}", "value": value, "iteration": best_iteration,
        "better": better, "options": {},
    }  # fmt: skip
    assert checkpoint.load(run.best_checkpoint).iteration == best_iteration
    assert checkpoint.load(run.checkpoints / "latest.pt").iteration == 8


def test_a_resume_between_evaluations_keeps_the_best_of_the_whole_run(
    cli,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    scripted: Callable[[list[float]], None],
) -> None:
    recipe = folder_recipe(tmp_path)
    scripted([3.0, 1.0, 2.0, 1.5])  # at 2 and 4; after the resume at 6 and 8
    args = sets(
        train__max_iters=5, train__checkpoint_every=100, eval__every=2,
        eval__metrics=["scripted_low"], train__keep_best="eval/a2b/scripted_low",
    )  # fmt: skip
    first = cli("run", recipe, *args)
    assert first.exit_code == 0, first.output
    (run_dir,) = run_dirs(tmp_path / "runs")
    resumed = cli("run", "--resume", run_dir, "--set", "train.max_iters=8")
    assert resumed.exit_code == 0, resumed.output
    assert "latest.pt at iteration 5" in resumed.output  # from latest, not from best (4)
    run = RunDir(run_dir)
    # The first evaluation after the resume (2.0 at 6) is worse than the best before it.
    assert json.loads(run.best_record.read_text())["iteration"] == 4
    assert checkpoint.load(run.best_checkpoint).iteration == 4
    assert checkpoint.load(run.checkpoints / "latest.pt").iteration == 8


def test_a_score_eval_does_not_compute_is_a_recipe_error(cli, tiny_recipe: Path) -> None:  # type: ignore[no-untyped-def]
    typo = cli(
        "run", tiny_recipe,
        *sets(eval__every=2, eval__metrics=["psnr"], train__keep_best="eval/a2b/psnrr"),
    )  # fmt: skip
    assert typo.exit_code == 2
    assert "train.keep_best = 'eval/a2b/psnrr'" in typo.output
    assert "did you mean 'eval/a2b/psnr'?" in typo.output
    assert "eval/b2a/psnr, eval/cycle/a/l1" in typo.output
    no_eval = cli("run", tiny_recipe, *sets(train__keep_best="eval/a2b/psnr"))
    assert no_eval.exit_code == 2
    assert "eval.every is not set" in no_eval.output
    assert not (tiny_recipe.parent / "runs").exists() or not run_dirs(tiny_recipe.parent / "runs")


def test_a_metric_that_declares_no_direction_cannot_pick_the_best() -> None:
    class Undeclared:
        name, paired = "mystery", False

    registry = Registry()
    registry.register_function("metric", "test-plugin")("mystery", lambda _o: Undeclared())
    with pytest.raises(CgfwError, match=r"'mystery' \(plugin 'test-plugin'\) declares no"):
        declared_better(registry, "mystery")


def test_best_json_is_read_back_unless_the_metric_or_its_options_changed(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.checkpoints.mkdir()
    saved = Best("eval/a2b/kid", 0.25, 4000, "lower")
    run.write_best_record(saved.to_dict())
    known: dict[str, Any] = {"eval/a2b/kid": "lower", "eval/a2b/fid": "lower"}
    assert KeepBest.start("eval/a2b/kid", known, run, "r.toml").best == saved
    # another metric starts afresh: its scale is not kid's
    assert KeepBest.start("eval/a2b/fid", known, run, "r.toml").best is None
    # and so does the same metric in another mode (a resume may change [eval.options])
    clean = {"kid": {"resize": "clean"}}
    assert KeepBest.start("eval/a2b/kid", known, run, "r.toml", clean).best is None
    run.write_best_record(Best("eval/a2b/kid", 0.25, 4000, "lower", clean).to_dict())
    assert KeepBest.start("eval/a2b/kid", known, run, "r.toml", clean).best is not None
    assert KeepBest.start("eval/a2b/kid", known, run, "r.toml").best is None
    run.write_best_record(saved.to_dict())
    run.best_record.write_text('{"metric": "eval/a2b/kid", "value": "low"}')
    with pytest.raises(CgfwError, match=r"best\.json: not a best-checkpoint record"):
        KeepBest.start("eval/a2b/kid", known, run, "r.toml")


@pytest.fixture(scope="module")
def kept_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run with iter_2, iter_4, best.pt (by the cycle error) and latest (iteration 5)."""
    root = tmp_path_factory.mktemp("kept")
    args = sets(
        train__max_iters=5, train__keep_every=2, train__checkpoint_every=100, eval__every=2,
        train__keep_best="eval/cycle/a/l1",
    )  # fmt: skip
    result = CliRunner().invoke(main, ["run", str(folder_recipe(root)), *args])
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(root / "runs")
    return run


def weights(path: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(path).weights("g_ab")


def test_translate_reads_the_checkpoint_asked_for(cli, kept_run: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    image = tmp_path / "in.png"
    Image.new("RGB", (32, 32), (200, 40, 10)).save(image)

    def translated(*args: object) -> bytes:
        out = tmp_path / f"out{len(list(tmp_path.iterdir()))}.png"
        result = cli("translate", *args, image, out)
        assert result.exit_code == 0, result.output
        return out.read_bytes()

    file = RunDir(kept_run).kept(2)
    assert translated(kept_run, "--checkpoint", "iter_2") == translated(file)
    assert translated(kept_run, "--checkpoint", "iter_2") != translated(kept_run)  # latest: 5
    best = RunDir(kept_run).best_checkpoint
    assert translated(kept_run, "--checkpoint", "best") == translated(best)
    missing = cli("translate", kept_run, image, tmp_path / "x.png", "--checkpoint", "iter_3")
    assert missing.exit_code == 2
    assert "has no checkpoints/iter_0000003.pt" in missing.output
    assert "it has latest, best, iter_2, iter_4" in missing.output
    bad = cli("translate", file, image, tmp_path / "y.png", "--checkpoint", "best")
    assert bad.exit_code == 2 and "give its run directory" in bad.output


def test_eval_and_export_read_the_checkpoint_asked_for(cli, kept_run: Path) -> None:  # type: ignore[no-untyped-def]
    run = RunDir(kept_run)
    best = json.loads(run.best_record.read_text())
    result = cli("eval", kept_run, "--checkpoint", "best", "--metrics", "swd", "--device", "cpu")
    assert result.exit_code == 0, result.output
    metrics = json.loads(run.metrics.read_text())
    assert (metrics["checkpoint"], metrics["iteration"]) == (
        str(run.best_checkpoint),
        best["iteration"],
    )
    # the record's score is the cycle error this evaluation measures of the same weights
    assert metrics["cycle"]["a"]["l1"] == pytest.approx(best["value"], rel=1e-5)
    result = cli("export", kept_run, "--format", "safetensors", "--checkpoint", "iter_4")
    assert result.exit_code == 0, result.output
    exported = load_file(run.export / "generator_a2b-iter_4.safetensors")
    assert state_equal(exported, weights(run.kept(4)))
    assert not (run.export / "generator_a2b.safetensors").exists()  # latest's is not overwritten


def test_load_takes_the_checkpoint_asked_for(kept_run: Path) -> None:
    run = RunDir(kept_run)
    loaded = cgfw.load(kept_run, device="cpu", checkpoint="iter_2")
    assert state_equal(loaded.generator().state_dict(), weights(run.kept(2)))
    latest = cgfw.load(kept_run, device="cpu")
    assert state_equal(latest.generator().state_dict(), weights(run.checkpoints / "latest.pt"))
    with pytest.raises(CgfwError, match="it has latest, best, iter_2, iter_4"):
        cgfw.load(kept_run, checkpoint="iter_5")
    with pytest.raises(CgfwError, match="use latest, best or iter_N"):
        cgfw.load(kept_run, checkpoint="newest")
