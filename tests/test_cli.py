"""End to end through the command line, on tiny models."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cgfw.store import checkpoint
from tests.conftest import run_dirs, state_equal


def test_dry_run_prints_the_papers_parameter_counts(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("run", "recipes/paper_default.toml", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.output.count("11,378,179 parameters") == 2
    assert result.output.count("2,764,737 parameters") == 2
    assert 'root = "datasets/horse2zebra"' in result.output  # the resolved recipe, data not needed
    six = cli("run", "paper_default", "--dry-run", "--set", "generator.n_blocks=6")
    assert six.output.count("7,837,699 parameters") == 2


def test_tiny_run_leaves_recipe_events_checkpoint_and_samples(cli, tiny_recipe: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("run", tiny_recipe)
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tiny_recipe.parent / "runs")
    assert "max_iters = 4" in (run_dir / "recipe.toml").read_text()
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["torch"] == torch.__version__ and meta["device"] == "cpu" and meta["command"]
    assert (run_dir / "checkpoints" / "latest.pt").is_file()
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == [
        "iter_0000002.png",
        "iter_0000004.png",
    ]
    events = EventAccumulator(str(run_dir), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    assert {"loss/g_total", "loss/cycle_a", "loss/idt_b", "loss/d_a", "lr"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("loss/g_total")] == [2, 4]
    assert tags["images"] == ["samples"]
    assert "_hparams_/session_start_info" in events.summary_metadata  # HParams in the run's own dir
    assert sorted(p.name for p in run_dir.iterdir() if p.is_dir()) == ["checkpoints", "samples"]


def test_resume_continues_bit_identically(cli, tiny_recipe: Path) -> None:  # type: ignore[no-untyped-def]
    runs = tiny_recipe.parent / "runs"
    tiny_recipe.write_text(
        tiny_recipe.read_text() + "\n[buffer]\ncapacity = 2\n"
    )  # fills, then swaps
    assert cli("run", tiny_recipe, "--set", "train.max_iters=6").exit_code == 0
    (straight,) = run_dirs(runs)
    assert (
        cli("run", tiny_recipe, "--set", "train.max_iters=3", "--set", "run.name=split").exit_code
        == 0
    )
    (split,) = [d for d in run_dirs(runs) if d.name.startswith("split")]
    result = cli("run", "--resume", split, "--set", "train.max_iters=6")
    assert result.exit_code == 0, result.output
    a = checkpoint.load(straight / "checkpoints" / "latest.pt")
    b = checkpoint.load(split / "checkpoints" / "latest.pt")
    assert a.iteration == b.iteration == 6
    for net in ("g_ab", "g_ba", "d_a", "d_b"):
        assert state_equal(a.model["networks"][net], b.model["networks"][net]), net


@pytest.mark.slow
def test_paper_recipe_trains_two_256px_iterations_on_any_folder(
    cli, folder_dataset: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    result = cli(
        "run",
        "recipes/paper_default.toml",
        "--set",
        f"data.root={folder_dataset}",
        "--set",
        "train.max_iters=2",
        "--set",
        "train.num_workers=0",
        "--set",
        f"run.output_dir={tmp_path / 'runs'}",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tmp_path / "runs")
    state = checkpoint.load(run_dir / "checkpoints" / "latest.pt")
    assert state.iteration == 2
    pool = state.model["buffers"]["b"]
    assert int(pool["count"]) == 2  # the pool filled, one fake per step
    assert pool["images"].shape == (50, 3, 256, 256)


def test_missing_paper_data_says_how_to_get_it(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli(
        "run",
        "paper_default",
        "--set",
        f"data.root={tmp_path}/horse2zebra",
        "--set",
        f"run.output_dir={tmp_path}/runs",
    )
    assert result.exit_code == 2
    assert "horse2zebra.zip" in result.output and "Traceback" not in result.output
    assert "cgfw data download horse2zebra" in result.output
    assert not list((tmp_path / "runs").iterdir())  # the failed run leaves no directory


@pytest.mark.parametrize(
    ("args", "labels"),
    [
        (["--disable", "identity"], ["base", "no-identity"]),
        (["--vary", "losses.gan.name=lsgan,bce"], ["base", "losses.gan.name=bce"]),
    ],
)
def test_ablate_leaves_one_run_per_variant_and_a_table(
    cli, tiny_recipe: Path, args, labels
) -> None:  # type: ignore[no-untyped-def]
    result = cli("ablate", tiny_recipe, *args, "--set", "train.max_iters=2")
    assert result.exit_code == 0, result.output
    (parent,) = run_dirs(tiny_recipe.parent / "runs")
    assert [p.name for p in run_dirs(parent)] == labels
    table = json.loads((parent / "ablation.json").read_text())
    assert list(table) == labels
    for label in labels:
        assert label in result.output
    if "no-identity" in labels:
        assert "idt_a" in table["base"] and "idt_a" not in table["no-identity"]
        assert "weight = 0.0" in (parent / "no-identity" / "recipe.toml").read_text()


def test_ablate_unknown_name_suggests(cli, tiny_recipe: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("ablate", tiny_recipe, "--disable", "identty")
    assert result.exit_code == 2 and "did you mean 'identity'" in result.output


def test_components_and_recipes_listing(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("components", "generator")
    assert (
        result.exit_code == 0
        and "resnet_upsample" in result.output
        and "n_blocks=9" in result.output
    )
    assert "paper_default" in cli("recipes").output
    # Summaries are shown as written: brackets are text, not rich markup.
    assert "(cgfw[metrics])" in cli("components", "metric").output
    bad = cli("components", "generators")
    assert bad.exit_code == 2 and "did you mean 'generator'" in bad.output


def test_ablate_seeds_runs_each_variant_per_seed_and_compare_groups_them(
    cli, tiny_recipe: Path
) -> None:  # type: ignore[no-untyped-def]
    result = cli(
        "ablate", tiny_recipe, "--disable", "identity", "--seeds", "0,1",
        "--set", "train.max_iters=2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (parent,) = run_dirs(tiny_recipe.parent / "runs")
    names = [p.name for p in run_dirs(parent)]
    assert names == ["base-seed0", "base-seed1", "no-identity-seed0", "no-identity-seed1"]
    assert "seed = 1" in (parent / "base-seed1" / "recipe.toml").read_text()
    table = cli("compare", parent, "--csv")
    rows = table.output.splitlines()
    assert rows[0].startswith("run,losses.identity.weight,seeds,")
    assert [r.split(",")[:3] for r in rows[1:]] == [
        ["base", "0.5", "2"],
        ["no-identity", "0.0", "2"],
    ]
    assert cli("ablate", tiny_recipe, "--disable", "pool", "--seeds", "0,0").exit_code == 2
    assert "nothing to compare" in cli("ablate", tiny_recipe).output


def test_ablate_jobs_runs_variants_in_parallel_processes(cli, tiny_recipe: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli(
        "ablate", tiny_recipe, "--disable", "pool", "--jobs", "2", "--set", "train.max_iters=2"
    )
    assert result.exit_code == 0, result.output
    (parent,) = run_dirs(tiny_recipe.parent / "runs")
    table = json.loads((parent / "ablation.json").read_text())
    assert list(table) == ["base", "no-pool"]
    assert all(table[label]["g_total"] > 0 for label in table)
    assert 'name = "none"' in (parent / "no-pool" / "recipe.toml").read_text()
    assert (parent / "no-pool" / "log.txt").is_file()
    # A run's lock file keeps the pid of the process that ran it; its variant.toml is written
    # as that process is started and its final_losses.json as it finishes.
    runs = [parent / label for label in table]
    pids = {int((d / ".lock").read_text()) for d in runs}
    assert len(pids) == 2 and os.getpid() not in pids
    started = [(d / "variant.toml").stat().st_mtime_ns for d in runs]
    finished = [(d / "final_losses.json").stat().st_mtime_ns for d in runs]
    assert max(started) < min(finished), "one run finished before the other started"


def test_shell_completion_and_version_list_plugins() -> None:
    cgfw = str(Path(sys.executable).parent / "cgfw")  # the console script pip installed
    env = {**os.environ, "_CGFW_COMPLETE": "bash_source"}
    script = subprocess.run([cgfw], env=env, capture_output=True, text=True, timeout=60)
    assert script.returncode == 0 and "_cgfw_completion" in script.stdout
    version = subprocess.run([cgfw, "--version"], capture_output=True, text=True, timeout=60)
    assert (
        version.stdout.startswith("cgfw 0.1.0")
        and "plugin paper-generators (cgfw 0.1.0) installed" in version.stdout
    )


def test_ablate_refuses_repeated_variants_and_names_dirs_safely(cli, tiny_recipe: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("ablate", tiny_recipe, "--vary", "run.seed=1,1")
    assert result.exit_code == 2 and "variants repeat: run.seed=1" in result.output
    assert not (tiny_recipe.parent / "runs").exists()  # refused before anything ran
    betas, description = "optimizer.betas=[0.9,0.99]", "run.description=a/b"
    args = ["--vary", betas, "--vary", description, "--set", "train.max_iters=1"]
    result = cli("ablate", tiny_recipe, *args)
    assert result.exit_code == 0, result.output
    (parent,) = run_dirs(tiny_recipe.parent / "runs")
    labels = [p.name for p in run_dirs(parent)]
    assert labels == ["base", "optimizer.betas=_0.9_0.99", "run.description=a_b"]


def test_training_can_evaluate_at_intervals(cli, tiny_recipe: Path) -> None:  # type: ignore[no-untyped-def]
    args = ["--set", "eval.every=2", "--set", 'eval.metrics=["psnr", "l1"]']
    assert cli("run", tiny_recipe, *args).exit_code == 0
    (run_dir,) = run_dirs(tiny_recipe.parent / "runs")
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    assert [e.step for e in events.Scalars("eval/a2b/psnr")] == [2, 4]
    assert {"eval/b2a/l1", "eval/baseline/psnr", "eval/cycle/a/l1"} <= set(events.Tags()["scalars"])
    bad = cli("run", tiny_recipe, "--set", "eval.every=2", "--set", 'eval.metrics=["psnrr"]')
    assert bad.exit_code == 2 and "did you mean 'psnr'" in bad.output


def test_a_run_from_before_models_were_plugins_resumes_translates_and_exports(
    cli, tiny_recipe: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Runs saved before the [model] section existed: their recipe.toml and checkpoint recipe
    have no [model] (the checkpoint layout is unchanged). Made here by removing the section
    from a fresh run; checked once by hand against a run of commit 8b83e61 too."""
    assert cli("run", tiny_recipe).exit_code == 0
    (run_dir,) = run_dirs(tiny_recipe.parent / "runs")
    saved = run_dir / "recipe.toml"
    # What 8b83e61 did not write: the [model] section and the options added since.
    old = saved.read_text().replace('[model]\nname = "cyclegan"\n', "")
    old = old.replace("in_channels = 3\n", "").replace("ema = 0.0\n", "")
    assert old != saved.read_text() and "[model]" not in old and "in_channels" not in old
    saved.write_text(old)
    latest = run_dir / "checkpoints" / "latest.pt"
    state = checkpoint.load(latest)
    del state.recipe["model"]
    del state.recipe["discriminator"]["in_channels"], state.recipe["train"]["ema"]
    checkpoint.save(latest.parent, state)

    Image.new("RGB", (32, 32), (200, 30, 40)).save(tmp_path / "in.png")
    translated = cli("translate", run_dir, tmp_path / "in.png", tmp_path / "out.png")
    assert translated.exit_code == 0, translated.output
    exported = cli("export", run_dir, "--format", "torchscript")
    assert exported.exit_code == 0, exported.output
    resumed = cli("run", "--resume", run_dir, "--set", "train.max_iters=6")
    assert resumed.exit_code == 0, resumed.output
    for new in ("model.name", "in_channels", "train.ema"):  # what is new is no change to accept
        assert new not in resumed.output
    assert checkpoint.load(latest).iteration == 6
