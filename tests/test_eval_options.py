"""[eval.options]: a metric's options during training, as `cgfw eval --option` takes them
(issue 21: a training-time FID in clean-fid's or pytorch-fid's mode, not only TF1's)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cgfw.store.layout import RunDir
from tests.cli.test_evaluate import CountingInception, inception, saved_references
from tests.conftest import run_dirs
from tests.test_keep import folder_recipe, sets

# A metric that scores the value of its one option, so the run's scores show what it was given.
CONSTANT = """
from pydantic import BaseModel
from cgfw import hookimpl

class Options(BaseModel, extra="forbid"):
    value: float = 0.0

class Constant:
    name, paired, higher_is_better = "constant", False, True

    def __init__(self, options):
        self.value = options.value

    def update(self, fake, real):
        pass

    def compute(self):
        return self.value

    def reset(self):
        pass

@hookimpl
def register_metrics(register):
    register("constant", Constant, Options, "test: scores its option")
"""


__all__ = ["inception"]  # a fixture, used by name


@pytest.fixture
def constant(fake_distribution: Callable[[str, str], Path]) -> None:
    fake_distribution("cgfw-constant", CONSTANT)


def test_eval_options_reach_the_metric_during_training(
    cli,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    constant: None,
) -> None:
    recipe = folder_recipe(tmp_path)
    args = sets(
        train__max_iters=2, eval__every=2, eval__metrics=["constant"],
        train__keep_best="eval/a2b/constant",
    )  # fmt: skip
    result = cli("run", recipe, *args, "--set", "eval.options.constant.value=3.5")
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tmp_path / "runs")
    record = json.loads(RunDir(run_dir).best_record.read_text())
    assert record["value"] == 3.5


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("eval.options.psnr.value=1", "eval.options.psnr: 'psnr' is not among the metrics"),
        ("eval.options.constant.valeu=1", "eval.options.constant"),
        ("eval.options.constant.value='high'", "eval.options.constant"),
    ],
)
def test_a_bad_eval_option_is_one_error_before_training(
    cli,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    constant: None,
    option: str,
    expected: str,
) -> None:
    recipe = folder_recipe(tmp_path)
    args = sets(train__max_iters=2, eval__every=2, eval__metrics=["constant"])
    result = cli("run", recipe, *args, "--set", option)
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output
    assert not run_dirs(tmp_path / "runs")


def test_training_evaluations_save_the_reference_statistics_in_their_mode(
    cli,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    inception: CountingInception,
) -> None:
    """KID at an [eval] in clean-fid's mode: the real images' features are saved as the
    dataset's reference statistics in that mode, for later evaluations and `cgfw eval`."""
    recipe = folder_recipe(tmp_path)
    args = sets(train__max_iters=2, eval__every=2, eval__metrics=["kid"])
    result = cli("run", recipe, *args, "--set", "eval.options.kid.resize='clean'")
    assert result.exit_code == 0, result.output
    side_a, side_b = saved_references(tmp_path)
    assert side_a.name.startswith("folder-testA-") and side_b.name.endswith("-clean.npz")
    with np.load(side_b, allow_pickle=False) as saved:
        assert (str(saved["resize"]), int(saved["count"])) == ("clean", 2)
