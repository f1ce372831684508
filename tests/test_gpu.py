"""Checks that need a CUDA device; skipped elsewhere. benchmarks/gpu_check.sh runs them."""

from pathlib import Path

import pytest
import torch

from cgfw import checkpoint
from cgfw.model import Speed, build_cyclegan
from cgfw.plugins import Loaded
from cgfw.recipe import load
from cgfw.step import cyclegan_step
from tests.conftest import run_dirs

pytestmark = pytest.mark.gpu
CUDA = torch.device("cuda")


def test_auto_settings_on_cuda_train_and_resume(cli, tiny_recipe: Path) -> None:  # type: ignore[no-untyped-def]
    """bf16 (the CUDA default), channels_last and compile through a whole run and a resume."""
    args = ["--device", "cuda", "--set", "train.max_iters=6", "--set", "train.checkpoint_every=3"]
    args += ["--set", "train.channels_last=true", "--set", "train.compile=default"]
    result = cli("run", tiny_recipe, *args)
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tiny_recipe.parent / "runs")
    assert cli("run", "--resume", run_dir, "--set", "train.max_iters=9").exit_code == 0
    state = checkpoint.load(run_dir / "checkpoints" / "latest.pt")
    assert state["iteration"] == 9
    assert all(torch.isfinite(w).all() for w in state["model"]["networks"]["g_ab"].values())


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_low_precision_stays_close_to_fp32_on_cuda(
    loaded: Loaded, tiny_recipe: Path, precision: str
) -> None:
    def step(speed: Speed) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        m = build_cyclegan(load(str(tiny_recipe), loaded.registry), loaded.registry, CUDA, speed)
        g = torch.Generator().manual_seed(0)
        a, b = ((torch.rand(2, 3, 32, 32, generator=g) * 2 - 1).to(CUDA) for _ in range(2))
        a, b = (
            a.contiguous(memory_format=speed.memory_format),
            b.contiguous(memory_format=speed.memory_format),
        )
        return cyclegan_step(m, a, b)

    fp32 = step(Speed("fp32", False, "off"))
    low = step(Speed(precision, True, "off"))
    for name in ("cycle_a", "idt_b", "g_ab_gan", "d_b"):
        assert low[name].item() == pytest.approx(fp32[name].item(), rel=0.05), name


def test_fused_adam_on_cuda(loaded: Loaded, tiny_recipe: Path) -> None:
    m = build_cyclegan(load(str(tiny_recipe), loaded.registry), loaded.registry, CUDA)
    assert m.opt_g.defaults["fused"] is True


def test_cuda_graph_replays_train_like_eager_steps(loaded: Loaded, tiny_recipe: Path) -> None:
    """Ten iterations (pool not yet full, no dropout): replayed graph == eager, closely."""
    from cgfw.graphs import GraphedStep

    def run(graph: bool) -> list[dict[str, float]]:
        torch.manual_seed(0)
        speed = Speed("fp32", False, "off", cuda_graph=graph)
        m = build_cyclegan(load(str(tiny_recipe), loaded.registry), loaded.registry, CUDA, speed)
        step = GraphedStep(m, cyclegan_step) if graph else cyclegan_step
        g = torch.Generator().manual_seed(0)
        history = []
        for _ in range(10):
            a, b = ((torch.rand(2, 3, 32, 32, generator=g) * 2 - 1).to(CUDA) for _ in range(2))
            history.append({k: v.item() for k, v in step(m, a, b).items()})
        return history

    eager, graphed = run(False), run(True)
    for i, (e, r) in enumerate(zip(eager, graphed, strict=True)):
        for name in e:
            assert r[name] == pytest.approx(e[name], rel=1e-3, abs=1e-5), (i, name)


def test_cuda_graph_run_end_to_end_and_resume(cli, tiny_recipe: Path) -> None:  # type: ignore[no-untyped-def]
    args = ["--device", "cuda", "--set", "train.cuda_graph=true", "--set", "train.max_iters=12"]
    assert cli("run", tiny_recipe, *args, "--set", "train.checkpoint_every=6").exit_code == 0
    (run_dir,) = run_dirs(tiny_recipe.parent / "runs")
    result = cli("run", "--resume", run_dir, "--device", "cuda", "--set", "train.max_iters=20")
    assert result.exit_code == 0, result.output
    state = checkpoint.load(run_dir / "checkpoints" / "latest.pt")
    assert state["iteration"] == 20
    assert all(torch.isfinite(w).all() for w in state["model"]["networks"]["g_ab"].values())
