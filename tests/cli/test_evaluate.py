"""`cgfw eval` on a tiny trained run: metrics.json, the baseline, refusals, unpaired data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from click.testing import CliRunner, Result
from torch import nn
from torchmetrics.functional.image import peak_signal_noise_ratio

from cgfw.cli.evaluate import eval_cmd
from cgfw.plugin.loader import Loaded
from cgfw.plugin.registry import Registry
from cgfw.training import evaluation
from cgfw.training.evaluation import evaluate, flat_metrics
from cgfw_paper.datasets import EmojiOptions
from cgfw_paper.image_sets import emoji


def invoke(*args: object) -> Result:
    return CliRunner().invoke(eval_cmd, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def run_copy(trained_run: Path, tmp_path: Path) -> Path:
    """A private copy: eval writes into the run, and trained_run is shared by the session."""
    return Path(shutil.copytree(trained_run, tmp_path / "run"))


def test_writes_metrics_json_with_the_baseline(run_copy: Path) -> None:
    events_before = set(run_copy.glob("events.out.tfevents.*"))
    result = invoke(run_copy, "--device", "cpu")
    assert result.exit_code == 0, result.output
    data = json.loads((run_copy / "metrics.json").read_text(encoding="utf-8"))
    assert set(data) >= {"split", "samples", "a2b", "b2a", "baseline", "cycle"}
    test_set = emoji(EmojiOptions(load_size=36, crop_size=32), "test")
    assert (data["split"], data["samples"], data["paired"]) == ("test", len(test_set), True)
    for row in ("a2b", "b2a", "baseline"):
        assert set(data[row]) == {"psnr", "ssim", "l1"}
    assert set(data["cycle"]) == {"a", "b"} and data["cycle"]["a"]["l1"] > 0
    # The baseline is the inputs themselves: PSNR(real_a, real_b) over the whole test set.
    items = [test_set[i] for i in range(len(test_set))]
    real_a = torch.stack([i["a"] for i in items]).add(1).div(2)
    real_b = torch.stack([i["b"] for i in items]).add(1).div(2)
    direct = float(peak_signal_noise_ratio(real_a, real_b, data_range=1.0))
    assert data["baseline"]["psnr"] == pytest.approx(direct, rel=1e-5)
    assert "baseline" in result.output and "psnr" in result.output
    assert set(run_copy.glob("events.out.tfevents.*")) - events_before  # HParams written


def test_unknown_metric_suggests_the_closest(run_copy: Path) -> None:
    result = invoke(run_copy, "--metrics", "psnr,ssmi")
    assert result.exit_code == 2
    assert "unknown metric 'ssmi'; did you mean 'ssim'?" in result.output
    assert not (run_copy / "metrics.json").exists()


def test_missing_run_dir(tmp_path: Path) -> None:
    result = invoke(tmp_path / "nowhere")
    assert result.exit_code == 2
    assert "no such run directory" in result.output


class Unpaired(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Test items like a folder dataset's: A[i] with an unrelated B."""

    paired = False

    def __len__(self) -> int:
        return 3

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(index)
        return {"a": torch.rand(3, 16, 16, generator=g), "b": torch.rand(3, 16, 16, generator=g)}


def test_unpaired_data_gets_distribution_metrics_and_the_cycle_error(loaded: Loaded) -> None:
    identity = nn.Identity()
    results = evaluate(
        identity, identity, Unpaired(), "test", ["psnr", "swd"], loaded.registry,
        torch.device("cpu"), 2,
    )  # fmt: skip
    assert results["samples"] == 3 and results["paired"] is False
    assert set(results["a2b"]) == set(results["baseline"]) == {"swd"}  # no PSNR without pairs
    # Doing nothing, a2b's fakes are the A images: the same distance as the baseline's.
    assert results["a2b"]["swd"] == pytest.approx(results["baseline"]["swd"])
    assert results["cycle"] == {"a": {"l1": 0.0}, "b": {"l1": 0.0}}  # identity reconstructs
    assert set(flat_metrics(results)) == {
        "eval/a2b/swd", "eval/b2a/swd", "eval/baseline/swd", "eval/cycle/a/l1", "eval/cycle/b/l1",
    }  # fmt: skip


def test_several_runs_in_one_call_each_get_their_metrics(run_copy: Path, tmp_path: Path) -> None:
    parent = tmp_path / "ablation"
    parent.mkdir()
    for name in ("one", "two"):
        shutil.copytree(run_copy, parent / name)
    result = invoke(parent, "--metrics", "l1,swd", "--device", "cpu")
    assert result.exit_code == 0, result.output
    one, two = (json.loads((parent / n / "metrics.json").read_text()) for n in ("one", "two"))
    assert set(one["a2b"]) == {"l1", "swd"} and one["a2b"] == two["a2b"]  # the same weights
    assert "cgfw eval one" in result.output and "cgfw eval two" in result.output


class Uneven(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """A folder-like unpaired test split: 2 A images, 5 B images, A repeated to fill 5 items."""

    paired = False
    a, b = [0, 1], [0, 1, 2, 3, 4]

    def __len__(self) -> int:
        return 5

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        a, b = index % 2, index
        return {"a": torch.full((3, 8, 8), a / 10), "b": torch.full((3, 8, 8), -b / 10)}


class Counter:
    """A distribution metric that records what it was fed."""

    name, paired, higher_is_better = "count", False, False
    seen: ClassVar[list[list[float]]] = []  # one entry per compute(), in order

    def __init__(self) -> None:
        self.fake: list[float] = []
        self.real: list[float] = []

    def update(self, fake: torch.Tensor, real: torch.Tensor) -> None:
        self.fake += fake[:, 0, 0, 0].tolist()
        self.real += real[:, 0, 0, 0].tolist()

    def compute(self) -> float:
        Counter.seen.append([*self.fake, 99.0, *self.real])
        return float(len(self.fake))

    def reset(self) -> None:
        self.fake, self.real = [], []


def test_an_uneven_unpaired_split_feeds_each_image_once(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry()
    registry.register_function("metric", "test")("count", lambda _opts: Counter())
    identity = nn.Identity()
    Counter.seen.clear()
    cycle: dict[str, list[int]] = {"a": [], "b": []}
    update = evaluation._MeanAbsError.update

    def counted(self: evaluation._MeanAbsError, fake: torch.Tensor, real: torch.Tensor) -> None:
        cycle["a" if len(cycle["a"]) == len(cycle["b"]) else "b"].append(len(real))
        update(self, fake, real)

    monkeypatch.setattr(evaluation._MeanAbsError, "update", counted)
    results = evaluate(
        identity, identity, Uneven(), "test", ["count"], registry, torch.device("cpu"), 2
    )
    assert (results["samples"], results["samples_a"], results["samples_b"]) == (5, 2, 5)
    a2b, b2a, baseline = Counter.seen
    assert sum(cycle["a"]) == 2 and sum(cycle["b"]) == 5  # the cycle error: each image once
    # a2b: the 2 A images translated (identity) against the 5 B images; b2a the reverse.
    assert a2b == pytest.approx([0.0, 0.1, 99, 0, -0.1, -0.2, -0.3, -0.4])
    assert b2a == pytest.approx([0, -0.1, -0.2, -0.3, -0.4, 99, 0.0, 0.1])
    assert baseline == a2b
