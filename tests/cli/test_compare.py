"""cgfw compare: differing recipe keys and results of several runs in one table."""

import json
import shutil
from pathlib import Path

from click.testing import CliRunner, Result
from PIL import Image

from cgfw.cli.compare import compare_cmd
from cgfw.cli.evaluate import eval_cmd
from cgfw.tools.compare import curves, load_run


def invoke(*args: object) -> Result:
    return CliRunner().invoke(compare_cmd, [str(a) for a in args], catch_exceptions=False)


def two_runs(trained_run: Path, tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "runs" / "lsgan", tmp_path / "runs" / "bce"
    for run, gan, psnr in ((a, "lsgan", 11.5), (b, "bce", 12.5)):
        shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("checkpoints", "events*"))
        recipe = (run / "recipe.toml").read_text().replace('name = "lsgan"', f'name = "{gan}"')
        (run / "recipe.toml").write_text(recipe)
        (run / "metrics.json").write_text(json.dumps({"a2b": {"psnr": psnr, "ssim": None}}))
    return a, b


def test_only_differing_keys_and_the_results_are_shown(trained_run: Path, tmp_path: Path) -> None:
    a, b = two_runs(trained_run, tmp_path)
    result = invoke(a, b, "--csv", "--sort", "a2b.psnr", "--descending")
    assert result.exit_code == 0, result.output
    header, first, second = result.output.strip().splitlines()
    columns = header.split(",")
    assert columns[:3] == ["run", "losses.gan.name", "a2b.psnr"]
    assert "generator.n_blocks" not in columns and "a2b.ssim" not in columns  # same / null
    assert "loss.g_total" in columns
    assert first.startswith("bce,bce,12.5") and second.startswith("lsgan,lsgan,11.5")


def test_the_terminal_table_shows_bracketed_values_as_written(
    trained_run: Path, tmp_path: Path
) -> None:
    a, b = two_runs(trained_run, tmp_path)
    recipe = (b / "recipe.toml").read_text()
    (b / "recipe.toml").write_text(recipe.replace('name = "bce"', 'name = "[bold]bce"'))
    result = invoke(a, b, "--results", "a2b.*")
    assert result.exit_code == 0 and "[bold]bce" in result.output, result.output


def test_a_parent_folder_means_every_run_in_it_and_markdown_works(
    trained_run: Path, tmp_path: Path
) -> None:
    two_runs(trained_run, tmp_path)
    result = invoke(tmp_path / "runs", "--markdown")
    assert result.exit_code == 0
    assert (
        result.output.startswith("| run | losses.gan.name |") and "| bce | bce |" in result.output
    )


def test_bad_arguments_are_one_clear_error(trained_run: Path, tmp_path: Path) -> None:
    a, b = two_runs(trained_run, tmp_path)
    bad = invoke(a, b, "--sort", "a2b.psnrr")
    assert bad.exit_code == 2 and "did you mean 'a2b.psnr'" in bad.output
    assert "neither a run directory" in invoke(tmp_path).output
    assert "no such run directory" in invoke(tmp_path / "nope").output


def test_results_filter_and_plot_of_the_curves(trained_run: Path, tmp_path: Path) -> None:
    a, b = two_runs(trained_run, tmp_path)
    result = invoke(a, b, "--csv", "--results", "a2b.*")
    assert result.output.splitlines()[0] == "run,losses.gan.name,a2b.psnr"
    assert "matches no result" in invoke(a, b, "--results", "fid*").output
    # Copies without event files have no curves: the error says where curves come from.
    no_curves = invoke(a, b, "--plot", tmp_path / "c.png")
    assert no_curves.exit_code == 2 and "[eval] every" in no_curves.output
    for run in (a, b):
        for events in trained_run.glob("events.out.tfevents.*"):
            shutil.copy(events, run)
    shutil.copytree(trained_run / "checkpoints", a / "checkpoints")
    # cgfw eval's scores land at the checkpoint's iteration, not at 0, and leave losses plottable.
    scored = CliRunner().invoke(eval_cmd, [str(a), "--metrics", "l1", "--device", "cpu"])
    assert scored.exit_code == 0, scored.output
    assert {step for step, _ in curves(load_run(a))["a2b.l1"]} == {4}
    png = tmp_path / "curves.png"
    result = invoke(a, b, "--plot", png, "--results", "loss.g_total")
    assert result.exit_code == 0, result.output
    assert "plotted loss.g_total" in result.output
    with Image.open(png) as image:
        assert image.format == "PNG" and image.width > 200


def test_grid_draws_every_run_on_the_same_held_out_images(
    trained_run: Path, tmp_path: Path
) -> None:
    other = Path(shutil.copytree(trained_run, tmp_path / "other"))
    png = tmp_path / "grid.png"
    result = invoke(trained_run, other, "--grid", png)
    assert result.exit_code == 0, result.output
    assert "drew 2 run(s) on 10 held-out images" in result.output
    with Image.open(png) as image:
        # Rows per direction: input, true target (emoji test pairs), then one per run.
        assert image.size == (150 + 10 * 64, 2 * 4 * 64 + 6)
        halves = (
            image.crop((150, 0, image.width, 2 * 64)),
            image.crop((150, 4 * 64, image.width, 6 * 64)),
        )
    assert halves[0].tobytes() != halves[1].tobytes()
    # The two runs hold the same weights: their rows are identical.
    with Image.open(png) as image:
        first = image.crop((150, 2 * 64, image.width, 3 * 64)).tobytes()
        second = image.crop((150, 3 * 64, image.width, 4 * 64)).tobytes()
    assert first == second


def test_seeds_share_a_row_only_when_they_repeat_a_variant(
    trained_run: Path, tmp_path: Path
) -> None:
    runs = []
    for seed, psnr in ((0, 11.0), (1, 13.0), (2, None)):
        run = Path(shutil.copytree(trained_run, tmp_path / f"base-seed{seed}"))
        recipe = (run / "recipe.toml").read_text().replace("seed = 0", f"seed = {seed}")
        (run / "recipe.toml").write_text(recipe)
        if psnr is not None:
            (run / "metrics.json").write_text(json.dumps({"a2b": {"psnr": psnr}}))
        runs.append(run)
    header, row = invoke(*runs, "--csv", "--results", "a2b.*").output.splitlines()
    assert (header, row) == ("run,seeds,a2b.psnr,a2b.psnr.std", "base,3,12,1.41421")
    # The table says when a mean covers fewer runs than the row holds.
    assert "12 ± 1.4 (n=2)" in invoke(*runs, "--markdown", "--results", "a2b.*").output
    # Two runs of different seeds and nothing else in common to group: run.seed stays a column.
    other = Path(shutil.copytree(trained_run, tmp_path / "other"))
    recipe = (other / "recipe.toml").read_text().replace("n_blocks = 2", "n_blocks = 3")
    (other / "recipe.toml").write_text(recipe.replace("seed = 0", "seed = 5"))
    header = invoke(runs[0], other, "--csv").output.splitlines()[0]
    assert header.startswith("run,generator.n_blocks,run.seed,")


def test_same_variant_names_from_two_ablations_say_which(trained_run: Path, tmp_path: Path) -> None:
    for parent, n_blocks in (("first", 2), ("second", 3)):
        for seed in (0, 1):
            run = Path(shutil.copytree(trained_run, tmp_path / parent / f"base-seed{seed}"))
            recipe = (run / "recipe.toml").read_text().replace("seed = 0", f"seed = {seed}")
            (run / "recipe.toml").write_text(
                recipe.replace("n_blocks = 2", f"n_blocks = {n_blocks}")
            )
    lines = invoke(tmp_path / "first", tmp_path / "second", "--csv").output.splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["base (first)", "base (second)"]


def test_the_fid_mode_is_shown_even_when_every_run_shares_it(
    trained_run: Path, tmp_path: Path
) -> None:
    a, b = two_runs(trained_run, tmp_path)
    for run, resize, fid in ((a, "clean", 80.5), (b, "tf1", 90.5)):
        options = {"fid": {"resize": resize}, "kid": {"resize": resize}}
        scores = {"fid": fid, "kid": 0.05, "psnr": 11.0}
        (run / "metrics.json").write_text(json.dumps({"a2b": scores, "options": options}))
    header, *rows = invoke(a, b, "--csv", "--results", "a2b.fid").output.splitlines()
    assert header == "run,losses.gan.name,fid.resize,a2b.fid"
    assert sorted(rows) == ["bce,bce,tf1,90.5", "lsgan,lsgan,clean,80.5"]
    # One mode for every run: still shown, since a FID means something only beside its mode.
    assert "| clean |" in invoke(a, "--markdown", "--results", "a2b.*").output
    # The options of metrics not shown are left out.
    assert invoke(a, b, "--csv", "--results", "a2b.psnr").output.splitlines()[0] == (
        "run,losses.gan.name,a2b.psnr"
    )
