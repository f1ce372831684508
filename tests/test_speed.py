"""Speed switches keep the step correct on CPU: bf16 / fp16 autocast, channels_last, compile."""

from pathlib import Path

import pytest
import torch
from torch._dynamo.utils import counters

from cgfw.plugin.loader import Loaded
from cgfw.recipe import load
from cgfw.training.loop import translate_samples
from cgfw.training.model import Speed, build_model
from cgfw_paper.cyclegan import CycleGAN

CPU = torch.device("cpu")


def build(loaded: Loaded, recipe: Path, speed: Speed, *overrides: str) -> CycleGAN:
    torch.manual_seed(0)
    m = build_model(load(str(recipe), loaded.registry, overrides), CPU, speed)
    assert isinstance(m, CycleGAN)
    return m


def batch(memory_format: torch.memory_format = torch.contiguous_format) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [
        (torch.rand(2, 3, 32, 32, generator=g) * 2 - 1).to(memory_format=memory_format)
        for _ in range(2)
    ]


def test_auto_precision_is_fp32_on_cpu(loaded: Loaded, tiny_recipe: Path) -> None:
    cfg = load(str(tiny_recipe), loaded.registry).recipe.train
    assert Speed.resolve(cfg, CPU) == Speed("fp32", False, "off")


@pytest.mark.parametrize(("bf16", "precision"), [(True, "bf16"), (False, "fp32")])
def test_auto_precision_is_bf16_on_cuda_that_has_it(
    loaded: Loaded, tiny_recipe: Path, monkeypatch: pytest.MonkeyPatch, bf16: bool, precision: str
) -> None:
    """Resolving only asks torch whether the GPU has bf16, so no GPU is needed to check it."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *_args, **_kwargs: bf16)
    cfg = load(str(tiny_recipe), loaded.registry).recipe.train
    assert Speed.resolve(cfg, torch.device("cuda")).precision == precision


@pytest.mark.parametrize(
    ("precision", "dtype"), [("bf16", torch.bfloat16), ("fp16", torch.float16)]
)
def test_autocast_runs_networks_in_low_precision_and_keeps_losses_and_pool_fp32(
    loaded: Loaded, tiny_recipe: Path, precision: str, dtype: torch.dtype
) -> None:
    m = build(loaded, tiny_recipe, Speed(precision, False, "off"))
    seen: list[torch.dtype] = []
    m.g_ab.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    terms = m.step(*batch())
    assert set(seen) == {dtype}
    assert all(t.dtype == torch.float32 and torch.isfinite(t) for t in terms.values())
    assert m.pool_b.stored().dtype == torch.float32  # type: ignore[attr-defined]
    assert m.rt.scaler.is_enabled() == (precision == "fp16")
    assert all(p.dtype == torch.float32 for p in m.g_ab.parameters())  # master weights stay fp32


def test_bf16_step_stays_close_to_fp32(loaded: Loaded, tiny_recipe: Path) -> None:
    fp32 = build(loaded, tiny_recipe, Speed("fp32", False, "off")).step(*batch())
    bf16 = build(loaded, tiny_recipe, Speed("bf16", False, "off")).step(*batch())
    for name in ("cycle_a", "idt_b", "g_ab_gan"):
        assert bf16[name].item() == pytest.approx(fp32[name].item(), rel=0.05), name


def test_channels_last_gives_the_same_step(loaded: Loaded, tiny_recipe: Path) -> None:
    plain = build(loaded, tiny_recipe, Speed("fp32", False, "off"))
    last = build(loaded, tiny_recipe, Speed("fp32", True, "off"))
    conv = next(m for m in last.g_ab.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    a = plain.step(*batch())
    b = last.step(*batch(torch.channels_last))
    for name in a:
        assert b[name].item() == pytest.approx(a[name].item(), rel=1e-4, abs=1e-5), name


@pytest.mark.slow
def test_compiled_networks_match_eager(loaded: Loaded, tiny_recipe: Path) -> None:
    eager = build(loaded, tiny_recipe, Speed("fp32", False, "off"), "generator.n_blocks=1")
    compiled = build(loaded, tiny_recipe, Speed("fp32", False, "default"), "generator.n_blocks=1")
    assert list(compiled.g_ab.state_dict()) == list(eager.g_ab.state_dict())  # no _orig_mod.
    counters.clear()
    for _ in range(2):
        a = eager.step(*batch())
        b = compiled.step(*batch())
    for name in a:
        assert b[name].item() == pytest.approx(a[name].item(), rel=1e-3, abs=1e-4), name
    assert counters["stats"]["unique_graphs"] > 0  # the step compiled its networks
    # An epoch's short last batch: two more shapes for each kind of network, past torch's
    # default of 8 variants of the one compiled function that all four share.
    short = [t[:1] for t in batch()]
    a, b = eager.step(*short), compiled.step(*short)
    for name in a:
        # Eager and inductor sum in other orders (eager instance norm as group norm, inductor's
        # own kernels), and Adam grows that rounding step by step: up to 4e-4 after two steps
        # and 1e-3 after this third at one thread. A network computed wrongly is off by far more.
        assert b[name].item() == pytest.approx(a[name].item(), rel=5e-3, abs=1e-4), name
    assert torch._dynamo.config.recompile_limit >= 16
    # Sample grids (eval mode, another batch size) run the networks as written, compiling nothing.
    counters.clear()
    grid = translate_samples(compiled, *(t[:1] for t in batch()))
    assert grid.shape[0] == 3 and not counters["stats"]


def test_cuda_graph_without_cuda_is_one_clear_error(cli, tiny_recipe: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("run", tiny_recipe, "--device", "cpu", "--set", "train.cuda_graph=true")
    assert result.exit_code == 2 and "train.cuda_graph needs a CUDA device" in result.output
    auto = cli("run", tiny_recipe, "--device", "cpu", "--set", "train.max_iters=1")
    assert auto.exit_code == 0  # auto: eager on a CPU


@pytest.mark.parametrize(
    ("speed", "reason"),
    [
        (Speed("bf16", False, "off", True), None),
        (Speed("bf16", False, "default", True), None),  # compiled kernels are captured as well
        (Speed("bf16", False, "reduce-overhead", True), 'train.compile = "reduce-overhead"'),
        (Speed("bf16", False, "max-autotune", True), 'train.compile = "max-autotune"'),
        (Speed("fp16", False, "off", True), "fp16"),
        (Speed("bf16", True, "off", True), "channels_last"),
    ],
)
def test_which_settings_a_cuda_graph_can_capture(
    speed: Speed, reason: str | None, loaded: Loaded, tiny_recipe: Path
) -> None:
    from cgfw.training.graphs import obstacle

    safe = build(loaded, tiny_recipe, Speed("fp32", False, "off"))  # the paper's image pool
    why = obstacle(speed, torch.device("cuda"), 1, safe)
    assert why is None if reason is None else (why is not None and reason in why)
    assert obstacle(speed, torch.device("cuda"), 2, safe) is not None  # several processes
    unsafe = build(loaded, tiny_recipe, Speed("fp32", False, "off"))

    class HostPool:  # a plugin's buffer that does not declare graph_safe
        pass

    unsafe.pool_a = unsafe.pool_b = HostPool()  # type: ignore[assignment]
    assert "graph_safe" in (
        obstacle(Speed("bf16", False, "off", True), torch.device("cuda"), 1, unsafe) or ""
    )


def test_a_cuda_graph_captures_the_full_batch_never_a_short_one() -> None:
    from cgfw.training.graphs import WARMUP, ready

    full, short = ((4, 3, 32, 32), (4, 3, 32, 32)), ((1, 3, 32, 32), (1, 3, 32, 32))
    runs = {short: 1}  # a resume that began on the epoch's short last batch
    runs[full] = WARMUP - 1
    assert not ready(runs, full) and not ready(runs, short)
    runs[full] = WARMUP
    assert ready(runs, full)
    runs[short] = WARMUP  # several epochs' short batches, still not the one to capture
    assert ready(runs, full) and not ready(runs, short)
