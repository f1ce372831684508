"""The trackers of plugins/cgfw_track: MLflow on a local SQLite store and W&B offline, each read
back the way a user would look; a tracker that fails never stops or damages a run."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cgfw.errors import CgfwError
from cgfw.plugin.loader import Loaded
from cgfw.recipe import load_data, validate
from tests.conftest import run_dirs

WANDB_BLOCK = 32768  # the .wandb file is a LevelDB-style log of protobuf records


def _train(cli: Callable[..., Any], recipe: Path, trackers: str, *more: str) -> Path:
    result = cli(
        "run", recipe, "--set", f"run.trackers={trackers}", "--set", "train.max_iters=4",
        *more,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(recipe.parent / "runs")
    return run


def test_mlflow_holds_the_recipe_every_scalar_the_samples_and_the_eval_metrics(
    tiny_recipe: Path, cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.chdir(tiny_recipe.parent)  # MLflow's artifacts go to ./mlruns
    uri = f"sqlite:///{tiny_recipe.parent / 'mlflow.db'}"
    run = _train(cli, tiny_recipe, f'["tensorboard", {{name = "mlflow", uri = "{uri}"}}]')
    mlflow.set_tracking_uri(uri)
    client = mlflow.tracking.MlflowClient(uri)
    run_id = json.loads((run / "trackers.json").read_text())["mlflow"]["run_id"]
    client.set_terminated(run_id, status="KILLED")  # as a run stopped by a signal is left
    assert cli("eval", run, "--metrics", "psnr").exit_code == 0
    assert client.get_run(run_id).info.status == "KILLED"  # eval adds metrics, nothing else
    resumed = cli("run", "--resume", run, "--set", "train.max_iters=6")
    assert resumed.exit_code == 0, resumed.output

    found = mlflow.search_runs(experiment_names=["cgfw"])
    assert len(found) == 1  # resume and eval continued the same MLflow run
    row = found.iloc[0]
    assert row["status"] == "FINISHED"
    assert row["tags.mlflow.runName"] == run.name
    assert row["params.generator.ngf"] == "8"  # the flattened recipe
    assert row["params.train.batch_size"] == "2"
    assert row["metrics.eval/a2b/psnr"] == pytest.approx(
        json.loads((run / "metrics.json").read_text())["a2b"]["psnr"]
    )
    history = client.get_metric_history(row["run_id"], "loss/d_a")
    assert [m.step for m in history] == [2, 4, 6]  # log_every = 2, then resumed to 6
    final = json.loads((run / "final_losses.json").read_text())
    assert history[-1].value == pytest.approx(final["d_a"])
    samples = [a.path for a in client.list_artifacts(row["run_id"], "samples")]
    assert samples == [f"samples/{p.name}" for p in sorted((run / "samples").iterdir())]
    assert list(run.glob("events.out.tfevents.*"))  # TensorBoard beside it, as before


def _wandb_records(path: Path) -> Iterator[Any]:
    """The protobuf records of an offline W&B run file: a 7-byte header (":W&B", magic,
    version), then 32 KiB blocks of records (checksum, length, type: full / first / middle /
    last) as in LevelDB's log format."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = WANDB_BLOCK - pos % WANDB_BLOCK
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record
            pending = b""


def test_wandb_offline_run_holds_the_config_scalars_images_and_summary(
    tiny_recipe: Path, cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = _train(cli, tiny_recipe, '[{name = "wandb", mode = "offline"}]')
    assert cli("eval", run, "--metrics", "psnr").exit_code == 0
    saved = json.loads((run / "trackers.json").read_text())["wandb"]["id"]

    files = sorted(run.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 2  # training, then eval: the same run id, for `wandb sync`
    assert all(f.name == f"run-{saved}.wandb" for f in files)
    # W&B's own service process writes the file; on a loaded machine its last records (the
    # eval's summary) can land a moment after finish() returns (seen once in CI under
    # pytest-xdist). Read until they are there, for at most 30 s.
    deadline = time.monotonic() + 30
    training = list(_wandb_records(files[0]))
    while True:
        evaluation = list(_wandb_records(files[1]))
        kinds = {r.WhichOneof("record_type") for r in evaluation}
        if "summary" in kinds or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    records = training + evaluation

    def items(kind: str) -> list[tuple[str, str]]:
        found = []
        for r in records:
            if r.WhichOneof("record_type") == kind:
                entries = r.history.item if kind == "history" else r.summary.update
                found += [(i.key or "/".join(i.nested_key), i.value_json) for i in entries]
        return found

    (run_record,) = [r.run for r in records if r.WhichOneof("record_type") == "run"][:1]
    assert run_record.display_name == run.name
    config = {i.key: i.value_json for i in run_record.config.update}
    assert config["generator.ngf"] == "8"
    history = items("history")
    final = json.loads((run / "final_losses.json").read_text())
    d_a = [float(v) for k, v in history if k == "loss/d_a"]
    assert len(d_a) == 2 and d_a[-1] == pytest.approx(final["d_a"])
    assert sum(k == "samples/path" for k, _ in history) == 2  # image_every = 2: two grids
    summary = dict(items("summary"))
    psnr = json.loads((run / "metrics.json").read_text())["a2b"]["psnr"]
    assert float(summary["eval/a2b/psnr"]) == pytest.approx(psnr)


BROKEN_TRACKER = """
    import cgfw

    class Broken:
        state = {}

        def __init__(self, options, run):
            self.calls = 0

        def scalars(self, values, step):
            raise ConnectionError("tracking server unreachable")

        def image(self, name, grid, path, step):
            pass

        def summary(self, metrics, step):
            pass

        def close(self, status):
            pass

    @cgfw.hookimpl
    def register_trackers(register):
        register("broken", Broken, None, "fails on its first scalar")
"""


def test_a_failing_tracker_is_named_and_the_run_finishes_with_the_others(
    tiny_recipe: Path, cli: Callable[..., Any], fake_distribution: Any
) -> None:
    fake_distribution("cgfw-unreachable-tracker", BROKEN_TRACKER)
    run = _train(cli, tiny_recipe, '["broken", "tensorboard"]')
    log = (run / "final_losses.json").read_text()
    assert json.loads(log)  # trained to the end
    assert (run / "checkpoints" / "latest.pt").is_file()
    assert list(run.glob("events.out.tfevents.*"))  # the other tracker kept going


def test_the_failing_tracker_says_its_name_once(
    tiny_recipe: Path, fake_distribution: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from cgfw.cli import main

    fake_distribution("cgfw-unreachable-tracker", BROKEN_TRACKER)
    with pytest.raises(SystemExit) as done:
        main.main(
            ["run", str(tiny_recipe), "--set", 'run.trackers=["broken"]'], standalone_mode=True
        )
    assert done.value.code == 0
    err = capsys.readouterr()
    text = err.out + err.err
    assert text.count("tracker 'broken' failed: ConnectionError: tracking server") == 1
    assert "the run goes on without it" in text


def test_unknown_trackers_are_recipe_errors_and_a_missing_package_stops_training_only(
    tiny_recipe: Path,
    loaded: Loaded,
    cli: Callable[..., Any],
    trained_run: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def check(trackers: str) -> str:
        data, source = load_data(str(tiny_recipe), loaded.registry, (f"run.trackers={trackers}",))
        with pytest.raises(CgfwError) as err:
            validate(data, loaded.registry, source)
        return str(err.value)

    assert "run.trackers[1]" in check('["tensorboard", "mlfow"]')
    assert "mlflow" in check('["tensorboard", "mlfow"]')  # did you mean
    assert "listed twice" in check('["tensorboard", "tensorboard"]')
    assert "unknown option" in check('[{name = "mlflow", url = "x"}]')
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    result = cli("run", tiny_recipe, "--set", 'run.trackers=["wandb"]')
    assert result.exit_code == 2
    assert "run.trackers[0]: tracker 'wandb' needs the wandb package" in result.output
    assert 'pip install "cgfw[wandb]"' in result.output
    assert not list((tiny_recipe.parent / "runs").glob("*"))  # no run directory left behind
    # A finished run that names a tracker missing here still translates and scores.
    recipe = trained_run / "recipe.toml"
    monkeypatch.setattr(
        Path, "read_text", _with_trackers(Path.read_text, recipe, '["tensorboard", "wandb"]')
    )
    scored = cli("eval", trained_run, "--metrics", "l1")
    assert scored.exit_code == 0, scored.output
    assert "trackers skipped" in scored.output and "wandb" in scored.output


def _with_trackers(read: Any, recipe: Path, trackers: str) -> Any:
    """Path.read_text, with [run] trackers = `trackers` in `recipe` (the shared run is not
    rewritten on disk)."""

    def patched(self: Path, *args: Any, **kwargs: Any) -> str:
        text = read(self, *args, **kwargs)
        if self == recipe:
            text = text.replace("[run]\n", f"[run]\ntrackers = {trackers}\n", 1)
        return str(text)

    return patched


def test_a_run_that_fails_closes_its_mlflow_run_as_failed(
    tiny_recipe: Path,
    cli: Callable[..., Any],
    fake_distribution: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.faults.test_files_and_signals import NAN_LOSS

    mlflow = pytest.importorskip("mlflow")
    monkeypatch.chdir(tiny_recipe.parent)
    fake_distribution("cgfw-nan", NAN_LOSS)
    uri = f"sqlite:///{tiny_recipe.parent / 'mlflow.db'}"
    result = cli(
        "run", tiny_recipe, "--set", f'run.trackers=[{{name = "mlflow", uri = "{uri}"}}]',
        "--set", 'losses.gan={name = "nan_after", after = 6}', "--set", "train.max_iters=8",
    )  # fmt: skip
    assert result.exit_code != 0 and "non-finite" in result.output
    mlflow.set_tracking_uri(uri)
    (status,) = mlflow.search_runs(experiment_names=["cgfw"])["status"]
    assert status == "FAILED"
