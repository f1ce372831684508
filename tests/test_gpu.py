"""Checks that need a CUDA device; skipped elsewhere. benchmarks/gpu_check.sh runs them."""

from pathlib import Path
from typing import Any

import pytest
import torch

from cgfw.plugin.loader import Loaded
from cgfw.recipe import load
from cgfw.store import checkpoint
from cgfw.training.model import Speed, build_model
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
    assert state.iteration == 9
    assert all(torch.isfinite(w).all() for w in state.model["networks"]["g_ab"].values())


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_low_precision_stays_close_to_fp32_on_cuda(
    loaded: Loaded, tiny_recipe: Path, precision: str
) -> None:
    def step(speed: Speed) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        m = build_model(load(str(tiny_recipe), loaded.registry), CUDA, speed)
        g = torch.Generator().manual_seed(0)
        a, b = ((torch.rand(2, 3, 32, 32, generator=g) * 2 - 1).to(CUDA) for _ in range(2))
        a, b = (
            a.contiguous(memory_format=speed.memory_format),
            b.contiguous(memory_format=speed.memory_format),
        )
        return m.step(a, b)

    fp32 = step(Speed("fp32", False, "off"))
    low = step(Speed(precision, True, "off"))
    for name in ("cycle_a", "idt_b", "g_ab_gan", "d_b"):
        assert low[name].item() == pytest.approx(fp32[name].item(), rel=0.05), name


def test_fused_adam_on_cuda(
    loaded: Loaded, tiny_recipe: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step updates every parameter of the four networks through torch's fused Adam kernel
    (one launch for all of them), watched where torch.optim.Adam calls it."""
    m = build_model(load(str(tiny_recipe), loaded.registry), CUDA)
    fused = torch._fused_adam_
    stepped: set[int] = set()

    def watch(params: list[torch.Tensor], *args: Any, **kwargs: Any) -> None:
        stepped.update(id(p) for p in params)
        fused(params, *args, **kwargs)

    monkeypatch.setattr(torch, "_fused_adam_", watch)
    g = torch.Generator().manual_seed(0)
    a, b = ((torch.rand(2, 3, 32, 32, generator=g) * 2 - 1).to(CUDA) for _ in range(2))
    m.step(a, b)
    assert stepped == {id(p) for net in m.networks.values() for p in net.parameters()}


def losses(
    loaded: Loaded, tiny_recipe: Path, speed: Speed, iters: int, stacked: bool = True
) -> list[dict[str, float]]:
    """Each iteration's loss terms on the same random 32 px batches, the step replayed as a CUDA
    graph where `speed` says so; `stacked` False calls each network once per input."""
    from cgfw.training.graphs import GraphedStep

    torch.manual_seed(0)
    torch._dynamo.reset()
    m = build_model(load(str(tiny_recipe), loaded.registry), CUDA, speed)
    m.stacking.enabled = stacked
    step = GraphedStep(m) if speed.cuda_graph else m.step
    g = torch.Generator().manual_seed(0)
    history = []
    for _ in range(iters):
        a, b = ((torch.rand(2, 3, 32, 32, generator=g) * 2 - 1).to(CUDA) for _ in range(2))
        history.append({k: v.item() for k, v in step(a, b).items()})
    return history


def assert_close(got: list[dict[str, float]], want: list[dict[str, float]], rel: float) -> None:
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        for name in w:
            assert g[name] == pytest.approx(w[name], rel=rel, abs=1e-5), (i, name)


@pytest.mark.parametrize(("compile_mode", "rel"), [("off", 1e-3), ("default", 1e-2)])
def test_cuda_graph_replays_train_like_eager_steps(
    loaded: Loaded, tiny_recipe: Path, compile_mode: str, rel: float
) -> None:
    """Ten iterations (pool not yet full, no dropout): replayed graph == eager, closely; with
    compiled networks inside the graph too (inductor's fused kernels round differently)."""
    eager = losses(loaded, tiny_recipe, Speed("fp32", False, "off"), 10)
    graphed = losses(loaded, tiny_recipe, Speed("fp32", False, compile_mode, cuda_graph=True), 10)
    assert_close(graphed, eager, rel)


def test_stacked_calls_train_as_separate_calls_on_cuda(loaded: Loaded, tiny_recipe: Path) -> None:
    """The replayed graph of the stacked step (the default) against eager separate calls."""
    apart = losses(loaded, tiny_recipe, Speed("fp32", False, "off"), 6, stacked=False)
    stacked = losses(loaded, tiny_recipe, Speed("fp32", False, "off", cuda_graph=True), 6)
    assert_close(stacked, apart, 1e-3)


@pytest.mark.parametrize("compile_mode", ["off", "default"])
def test_cuda_graph_run_end_to_end_and_resume(cli, tiny_recipe: Path, compile_mode: str) -> None:  # type: ignore[no-untyped-def]
    args = ["--device", "cuda", "--set", "train.cuda_graph=true", "--set", "train.max_iters=12"]
    args += ["--set", f"train.compile={compile_mode}"]
    result = cli("run", tiny_recipe, *args, "--set", "train.checkpoint_every=6")
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tiny_recipe.parent / "runs")
    result = cli("run", "--resume", run_dir, "--device", "cuda", "--set", "train.max_iters=20")
    assert result.exit_code == 0, result.output
    state = checkpoint.load(run_dir / "checkpoints" / "latest.pt")
    assert state.iteration == 20
    assert all(torch.isfinite(w).all() for w in state.model["networks"]["g_ab"].values())


@pytest.mark.parametrize("strict", [True, False])
def test_a_step_that_cannot_be_captured(loaded: Loaded, tiny_recipe: Path, strict: bool) -> None:
    """train.cuda_graph = true stops with the reason; "auto" warns and trains on eagerly, with
    no iteration lost or doubled and the networks' flags as they were."""
    from cgfw.errors import CgfwError
    from cgfw.training.graphs import WARMUP, GraphedStep

    speed = Speed("fp32", False, "off", cuda_graph=True)
    m = build_model(load(str(tiny_recipe), loaded.registry), CUDA, speed)
    frozen = next(m.g_ab.parameters())
    frozen.requires_grad_(False)  # a plugin's deliberately fixed weight stays fixed

    def sync_while_capturing(net: torch.nn.Module, args: object, out: torch.Tensor) -> None:
        # A host sync inside d_b while the step has the discriminators frozen: capture refuses
        # it. (The hook returns None, so d_b's output is unchanged.)
        if torch.cuda.is_current_stream_capturing():
            out.sum().item()

    m.d_b.register_forward_hook(sync_while_capturing)
    step = GraphedStep(m, strict)
    a, b = (torch.rand(2, 3, 32, 32, device=CUDA) * 2 - 1 for _ in range(2))
    for _ in range(WARMUP):
        step(a, b)
    if strict:
        with pytest.raises(CgfwError, match=r"capturing.*set train\.cuda_graph = false"):
            step(a, b)
    else:
        for _ in range(2):
            assert torch.isfinite(step(a, b)["g_total"])
        assert step.eager
        adam_step = m.opt_d.state[next(m.d_b.parameters())]["step"]
        assert int(adam_step) == WARMUP + 2  # the failed iteration ran once, eagerly
    assert torch.cuda.current_stream(CUDA) == torch.cuda.default_stream(CUDA)
    assert not frozen.requires_grad
    assert all(p.requires_grad for net in (m.d_a, m.d_b) for p in net.parameters())
