"""`cgfw eval` on a tiny trained run: metrics.json, the baseline, refusals, unpaired data."""

from __future__ import annotations

import json
import logging
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import tomli_w
import torch
import torchmetrics.image.fid
from click.testing import CliRunner, Result
from PIL import Image
from torch import nn
from torchmetrics.functional.image import peak_signal_noise_ratio

from cgfw.cli.evaluate import eval_cmd
from cgfw.plugin.loader import Loaded
from cgfw.plugin.registry import Registry
from cgfw.training import evaluation
from cgfw.training.evaluation import evaluate, flat_metrics
from cgfw_paper import distributions, references
from cgfw_paper.datasets import EmojiOptions
from cgfw_paper.image_sets import emoji
from tests.conftest import make_folder_dataset


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


class CountingInception(nn.Module):
    """A cheap stand-in for the TF-Inception network (fixed random features of a 4x4 pooling)
    that counts the images it is shown."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("projection", torch.randn(3 * 4 * 4, 2048, generator=g))
        self.images = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images += len(x)
        projection: torch.Tensor = self.projection
        return nn.functional.adaptive_avg_pool2d(x, 4).flatten(1) @ projection


def forget() -> None:
    """What a new process does not know: the features remembered in this one."""
    distributions.shared_features.cache_clear()
    references.Reference._open.clear()


@pytest.fixture
def inception(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[CountingInception]:
    net = CountingInception()
    monkeypatch.setattr(distributions, "inception_network", lambda: net)
    # The Frechet distance's 2048-d eigenvalues take 40 s on two cores; its formula is
    # torchmetrics', not what these tests are about: the squared distance of the means.
    monkeypatch.setattr(
        torchmetrics.image.fid, "_compute_fid", lambda m1, _s1, m2, _s2: (m1 - m2).square().sum()
    )
    monkeypatch.setenv("CGFW_CACHE", str(tmp_path / "cache"))
    forget()
    yield net
    forget()


def saved_references(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "cache" / "inception").glob("*.npz"))


@pytest.fixture
def folder_run(run_copy: Path, tmp_path: Path) -> Path:
    """The tiny run, scored on a folder dataset of 3 + 3 test images (the emoji's 193 pairs
    take minutes on two cores)."""
    root = make_folder_dataset(tmp_path / "h2z", {"testA": 3, "testB": 3})
    recipe = tomllib.loads((run_copy / "recipe.toml").read_text(encoding="utf-8"))
    recipe["data"] = {"name": "folder", "root": str(root), "load_size": 36, "crop_size": 32}
    (run_copy / "recipe.toml").write_text(tomli_w.dumps(recipe), encoding="utf-8")
    return run_copy


def images_seen(inception: CountingInception, *args: object) -> int:
    """The images the network is shown by `cgfw eval ARGS` in a new process."""
    forget()
    inception.images = 0
    result = invoke(*args, "--device", "cpu")
    assert result.exit_code == 0, result.output
    return inception.images


def test_the_fid_mode_is_recorded_and_the_reference_statistics_are_reused(
    folder_run: Path, inception: CountingInception, tmp_path: Path
) -> None:
    args = (folder_run, "--metrics", "fid", "--option", "fid.resize=clean")
    # Real A and B, fakes a2b and b2a; the baseline's "fakes" are the real A images.
    assert images_seen(inception, *args) == 4 * 3
    data = json.loads((folder_run / "metrics.json").read_text(encoding="utf-8"))
    assert data["options"] == {"fid": {"resize": "clean"}, "kid": {"resize": "clean"}}
    side_a, side_b = saved_references(tmp_path)
    assert side_a.name.startswith("folder-testA-") and side_b.name.endswith("-clean.npz")
    with np.load(side_b, allow_pickle=False) as saved:
        assert (str(saved["resize"]), int(saved["count"])) == ("clean", 3)
        assert saved["features"].shape == (3, 2048) and saved["sigma"].shape == (2048, 2048)
        assert np.allclose(saved["mu"], saved["features"].astype(np.float64).mean(axis=0))
    assert images_seen(inception, *args) == 2 * 3  # the translations: the reals are saved
    second = json.loads((folder_run / "metrics.json").read_text(encoding="utf-8"))
    assert [second[r] for r in ("a2b", "b2a", "baseline")] == [
        data[r] for r in ("a2b", "b2a", "baseline")
    ]
    # Another mode is another file: its reals are computed (and saved) apart.
    assert images_seen(inception, folder_run, "--metrics", "kid") == 4 * 3
    assert len(saved_references(tmp_path)) == 4
    tf1 = json.loads((folder_run / "metrics.json").read_text(encoding="utf-8"))
    assert tf1["options"] == {"kid": {"resize": "tf1"}}
    assert tf1["a2b"]["kid"] != data["a2b"]["kid"]


def test_the_eval_table_names_the_mode(folder_run: Path, inception: CountingInception) -> None:
    result = invoke(folder_run, "--metrics", "fid", "--option", "fid.resize=torch")
    assert result.exit_code == 0, result.output
    assert "options: fid.resize=torch, kid.resize=torch" in result.output


def test_a_changed_file_list_invalidates_the_reference_statistics(
    folder_run: Path,
    inception: CountingInception,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    args = (folder_run, "--metrics", "kid")
    assert images_seen(inception, *args) == 3 + 3 + 3 + 3  # reals A and B, fakes a2b and b2a
    assert images_seen(inception, *args) == 3 + 3  # the fakes only
    Image.new("RGB", (40, 48), (1, 2, 3)).save(tmp_path / "h2z" / "testB" / "003.png")
    assert images_seen(inception, *args) == 4 + 3 + 4  # testB's 4 reals again, and the fakes
    _, side_b = saved_references(tmp_path)  # testB's file, rewritten in place
    with np.load(side_b, allow_pickle=False) as saved:
        assert int(saved["count"]) == 4
    assert images_seen(inception, *args) == 3 + 4
    # A damaged file is named, computed again and rewritten.
    side_b.write_bytes(b"not a zip file")
    with caplog.at_level(logging.WARNING, logger="cgfw.eval"):
        assert images_seen(inception, *args) == 4 + 3 + 4
    assert f"{side_b}: unreadable" in caplog.text
    assert images_seen(inception, *args) == 3 + 4
    # A file changed under the same name: the whole set again, not only the image that changed.
    Image.new("RGB", (40, 48), (200, 100, 0)).save(tmp_path / "h2z" / "testB" / "000.png")
    assert images_seen(inception, *args) == 4 + 3 + 4


def test_a_bad_metric_option_is_one_clear_error(
    run_copy: Path, inception: CountingInception
) -> None:
    for option, message in (
        ("fid.resize=bicubic", "--option fid.resize: Input should be 'tf1', 'clean' or 'torch'"),
        ("fdi.resize=clean", "--option fdi.resize: 'fdi' is not scored here"),
        ("resize=clean", "expected METRIC.OPTION=VALUE"),
    ):
        result = invoke(run_copy, "--metrics", "fid", "--option", option)
        assert result.exit_code == 2 and message in result.output, result.output
    assert not (run_copy / "metrics.json").exists()
