"""`cgfw bench` on the CPU: the table, the reference loop beside the framework, clear errors."""

from pathlib import Path

import pytest

SETTINGS = "reference (eager fp32),cgfw fp32 (calls apart),cgfw fp32,cgfw bf16"


def rows(table: str) -> dict[str, list[str]]:
    """The markdown table's data rows by setting name."""
    lines = [line for line in table.splitlines() if line.startswith("| ")][1:]  # no header
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return {row[0]: row[1:] for row in cells}


def test_compare_times_the_reference_and_each_setting(cli, tiny_recipe: Path) -> None:  # type: ignore[no-untyped-def]
    out = tiny_recipe.parent / "bench.md"
    args = ["--compare", "--only", SETTINGS, "--synthetic", "--device", "cpu"]
    result = cli("bench", tiny_recipe, *args, "--iters", "9", "--warmup", "1", "--output", out)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "TFLOP per iteration" in text and "9 iterations after 1 warm-up" in text
    table = rows(text)
    assert list(table) == SETTINGS.split(",")
    for setting, (ms, spread, it_s, img_s, tflops, _, _, _, _, hours) in table.items():
        assert float(ms) > 0 and float(tflops) > 0, setting
        # one round: no spread to show, but for the reference's turns beside each setting
        assert (spread == "-") != (setting == "reference (eager fp32)"), setting
        assert float(it_s) == pytest.approx(1e3 / float(ms), rel=0.05, abs=0.06)  # 1 decimal
        assert float(img_s) == pytest.approx(4e3 / float(ms), rel=0.05, abs=0.06)  # 2 a, 2 b
        assert float(hours) == pytest.approx(266_800 * float(ms) / 3.6e6, rel=0.01)
    assert "in chunks of 4 paired with 4 of the reference loop's in alternating order" in text
    assert table["reference (eager fp32)"][6] == "1.00"
    for setting, row in list(table.items())[1:]:  # timed beside the reference, chunk by chunk
        median, low_high = row[6].split(" ")  # "1.41 (1.36-1.45)": median and quartiles
        low, high = (float(x) for x in low_high.strip("()").split("-"))
        assert 0 < low <= float(median) <= high, setting
        assert f"  {setting}: " in result.output  # one line per setting as it finishes
        assert "the reference beside it" in result.output.split(f"  {setting}: ")[1].splitlines()[0]


def test_rounds_take_turns_and_report_a_spread(cli, tiny_recipe: Path) -> None:  # type: ignore[no-untyped-def]
    out = tiny_recipe.parent / "bench.md"
    reference, apart, fp32 = "reference (eager fp32)", "cgfw fp32 (calls apart)", "cgfw fp32"
    args = ["--compare", "--only", f"{reference},{apart},{fp32}", "--synthetic"]
    args += ["--iters", "2", "--warmup", "1", "--rounds", "2", "--output", str(out)]
    result = cli("bench", tiny_recipe, *args)
    assert result.exit_code == 0, result.output
    timed = [
        line.removeprefix("timing ").split(" (round")[0]
        for line in result.output.splitlines()
        if line.startswith("timing ")
    ]
    assert timed == [apart, fp32, fp32, apart]  # in turn, every other round reversed
    assert result.output.count(f"building and warming up {reference}") == 1  # kept, beside each
    text = out.read_text()
    assert "median of 2 rounds taken in turn" in text
    table = rows(text)
    for setting, row in table.items():
        assert float(row[1]) >= 0, setting  # a spread, in %
    assert table[reference][6] == "1.00"


def test_a_setting_timed_beside_the_reference_keeps_its_ratio_when_the_machine_drifts() -> None:
    """Chunks of each in turn: a machine that turns 3x slower half-way (a shared VM's cores)
    slows both sides of a pair alike, so the ratio stays the true one (the reference takes
    twice as long); timing all of one and then all of the other would read 6x."""
    import time

    import torch

    from cgfw.tools.bench import Beside, _time_beside

    calls = [0]

    def work(ms: float):  # type: ignore[no-untyped-def]
        def step(*_: object) -> None:
            calls[0] += 1
            time.sleep(ms * (1 if calls[0] <= 16 else 3) / 1e3)

        return step

    def data():  # type: ignore[no-untyped-def]
        while True:
            yield torch.zeros(1), torch.zeros(1)

    beside = Beside(work(16.0), data())
    ms, _, _, ratios = _time_beside(work(8.0), data(), beside, torch.device("cpu"), 16)
    assert len(ratios) == 4 and len(beside.rounds) == 1  # 16 iterations in 4 chunks of 4
    assert all(1.7 < r < 2.3 for r in ratios), ratios
    assert ms >= 8.0 and beside.rounds[0] >= 16.0


def test_bench_without_compare_times_the_recipe_as_written(cli, tiny_recipe: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("bench", tiny_recipe, "--synthetic", "--iters", "2", "--warmup", "1")
    assert result.exit_code == 0, result.output
    assert "recipe (fp32, compile off)" in result.output


def test_unknown_setting_names_the_known_ones(cli, tiny_recipe: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("bench", tiny_recipe, "--compare", "--only", "cgfw fp64", "--synthetic")
    assert result.exit_code == 2
    assert "--only: unknown setting(s) ['cgfw fp64']" in result.output
    assert "reference (eager fp32)" in result.output


def test_the_recipes_data_is_timed_with_the_loader_alone(cli, tiny_recipe: Path) -> None:  # type: ignore[no-untyped-def]
    out = tiny_recipe.parent / "bench.md"
    result = cli("bench", tiny_recipe, "--iters", "2", "--warmup", "1", "--output", out)
    assert result.exit_code == 0, result.output
    line = next(x for x in out.read_text().splitlines() if x.startswith("- data: "))
    rate = float(line.split("brings ")[1].split(" ")[0])
    assert rate > 0 and "(0 workers)" in line
    assert float(rows(out.read_text())["recipe (fp32, compile off)"][8]) >= 0  # data ms


def test_the_loader_rate_is_how_fast_batches_are_made_not_how_fast_a_queue_empties(
    loaded, tiny_recipe: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    import time

    import torch

    from cgfw.recipe import load
    from cgfw.tools import bench

    def slow_batches(*_):  # type: ignore[no-untyped-def]
        while True:  # two batches ready at once (what 0 workers prefetch), then 20 ms each
            for ready in (True, True) + (False,) * 10**6:
                if not ready:
                    time.sleep(0.02)
                yield torch.zeros(1), torch.zeros(1)

    monkeypatch.setattr(bench, "batches", slow_batches)
    resolved = load(str(tiny_recipe), loaded.registry)  # train.num_workers = 0
    rate = bench.loader_rate(resolved, loaded, torch.device("cpu"), seconds=0.2)
    assert 0 < rate <= 50  # counting the two ready batches would give about 55


def test_setting_names_can_be_given_to_only() -> None:
    import torch

    from cgfw.tools.bench import settings

    for device in ("cpu", "cuda"):
        names = [s.name for s in settings(torch.device(device), compare=True)]
        assert len(set(names)) == len(names) and not any("," in n for n in names)  # --only splits
        assert names[0] == "reference (eager fp32)"
    cuda = [s.name for s in settings(torch.device("cuda"), compare=True)]
    assert cuda[1] == "cgfw bf16 + cuda_graph"  # the defaults on a GPU, timed first after it


def test_the_reference_does_the_same_work_as_the_step(loaded, tiny_recipe: Path) -> None:  # type: ignore[no-untyped-def]
    """The yardstick must train what cgfw trains, or the ratio compares different work: the
    bench's reference step and cgfw's step with calls apart, from the same weights, give the
    same loss terms (the pools are not full yet, so their random draws decide nothing)."""
    import torch

    from cgfw.recipe import load
    from cgfw.tools.bench import _reference_step
    from cgfw.training.model import build_model

    resolved = load(str(tiny_recipe), loaded.registry, ["train.stack_calls=false"])
    cpu = torch.device("cpu")
    torch.manual_seed(0)  # as bench seeds each setting before building it
    reference = _reference_step(resolved, loaded, cpu)
    torch.manual_seed(0)
    m = build_model(resolved, cpu)
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        real_a, real_b = (torch.rand(2, 3, 32, 32, generator=g) * 2 - 1 for _ in "ab")
        theirs, ours = reference(real_a, real_b), m.step(real_a, real_b)
        assert theirs.keys() == ours.keys()
        for name, value in ours.items():
            assert torch.allclose(value, theirs[name], rtol=1e-5, atol=1e-6), name


def test_on_a_cpu_the_bench_times_fp32_layouts_and_compiled_kernels() -> None:
    """Issue 23's rows beside the plain loop: fp32 + channels_last, fp32 + compile, bf16 +
    compile, each named with its precision."""
    import torch

    from cgfw.tools.bench import settings
    from cgfw.training.model import Speed

    cpu = {s.name: s.speed for s in settings(torch.device("cpu"), compare=True)}
    assert cpu["cgfw fp32 + channels_last"] == Speed("fp32", True, "off")
    assert cpu["cgfw fp32 + compile"] == Speed("fp32", False, "default")
    assert cpu["cgfw bf16 + compile"] == Speed("bf16", False, "default")
