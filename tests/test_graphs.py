"""GraphedStep's bookkeeping on the CPU, with CUDA's stream and graph calls stood in for: when it
captures, and what a failed capture leaves behind (tests/test_gpu.py runs the real thing)."""

import dataclasses
import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from cgfw.errors import CgfwError
from cgfw.plugin.loader import Loaded
from cgfw.recipe import load
from cgfw.training import graphs
from cgfw.training.loop import build_for_run
from cgfw.training.model import Model, Speed, build_model
from cgfw_paper.cyclegan import CycleGAN
from tests.conftest import state_equal

CPU = torch.device("cpu")


class FakeCuda:
    """Stands in for the torch.cuda calls GraphedStep makes. A capture runs its body (a real one
    would only record it); like torch, it fails on leaving when the body failed, and then leaves
    its capture stream current."""

    class Stream:
        def wait_stream(self, _: Any) -> None:
            pass

    def __init__(self) -> None:
        self.default = self.current = FakeCuda.Stream()
        self.capturing = False
        self.captures = self.replays = 0
        self.released: list[Any] = []

    def current_stream(self, *_: Any) -> Any:
        return self.current

    def stream(self, stream: Any) -> Any:
        fake = self

        class Context:  # like torch.cuda.stream: restores on exit, also when the body raised
            def __enter__(self) -> None:
                self.before, fake.current = fake.current, stream

            def __exit__(self, *_: Any) -> None:
                fake.current = self.before

        return Context()

    def graph(self, cuda_graph: Any, pool: Any) -> Any:
        fake = self

        class Capture:
            def __enter__(self) -> None:
                self.before = fake.current
                fake.current = FakeCuda.Stream()
                fake.capturing, fake.captures = True, fake.captures + 1

            def __exit__(self, kind: Any, *_: Any) -> None:
                fake.capturing = False
                if kind is not None:  # capture_end raises before the stream is restored
                    raise RuntimeError("operation failed due to a previous error during capture")
                fake.current = self.before

        return Capture()

    def replay(self) -> None:
        self.replays += 1


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeCuda:
    fake = FakeCuda()
    cuda = torch.cuda
    monkeypatch.setattr(graphs, "check_graphable", lambda *_: None)
    monkeypatch.setattr(graphs, "_release", lambda device, pool: fake.released.append(pool))
    monkeypatch.setattr(cuda, "Stream", lambda *_: FakeCuda.Stream())
    monkeypatch.setattr(cuda, "current_stream", fake.current_stream)
    monkeypatch.setattr(cuda, "stream", fake.stream)
    monkeypatch.setattr(cuda, "graph_pool_handle", lambda: (0, 7))
    monkeypatch.setattr(cuda, "graph", fake.graph)
    graph_class = type("FakeGraph", (), {"replay": lambda self: fake.replay()})
    monkeypatch.setattr(cuda, "CUDAGraph", graph_class)
    return fake


def model(loaded: Loaded, recipe: Path) -> CycleGAN:
    torch.manual_seed(0)
    return build_model(load(str(recipe), loaded.registry), torch.device("cpu"))


def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rand(n, 3, 32, 32) * 2 - 1, torch.rand(n, 3, 32, 32) * 2 - 1


def test_captures_the_full_batch_after_warm_up_and_replays_it(
    fake: FakeCuda, loaded: Loaded, tiny_recipe: Path
) -> None:
    m = model(loaded, tiny_recipe)
    step = graphs.GraphedStep(m)
    step(*batch(1))  # a resume that starts on a short last batch
    for _ in range(graphs.WARMUP):
        step(*batch(2))
    assert fake.captures == 0
    step(*batch(2))
    assert fake.captures == 1 and step.static is not None and step.static[0].shape[0] == 2
    step(*batch(2))
    step(*batch(1))  # another short batch: eager, not replayed
    assert fake.captures == 1 and fake.replays == 2


@pytest.mark.parametrize("strict", [True, False])
def test_a_failed_capture_leaves_the_run_as_it_was(
    fake: FakeCuda, loaded: Loaded, tiny_recipe: Path, strict: bool, caplog: Any
) -> None:
    m = model(loaded, tiny_recipe)
    frozen = next(m.g_ab.parameters())
    frozen.requires_grad_(False)

    def refuse_while_capturing(*_: Any) -> None:
        if fake.capturing:  # runs with the discriminators frozen, part-way through the step
            try:
                {}["cache miss"]  # an error handled on the way must not be the one named
            except KeyError:
                raise RuntimeError("operation not permitted when stream is capturing") from None

    m.d_b.register_forward_hook(refuse_while_capturing)
    step = graphs.GraphedStep(m, strict)
    for _ in range(graphs.WARMUP):
        step(*batch(2))
    if strict:
        with pytest.raises(CgfwError, match="operation not permitted when stream is capturing"):
            step(*batch(2))
    else:
        with caplog.at_level(logging.WARNING, logger="cgfw.train"):
            step(*batch(2))
            step(*batch(2))
        assert "training on with eager steps" in caplog.text
        assert "operation not permitted" in caplog.text
        adam = m.opt_d.state[next(m.d_b.parameters())]["step"]
        assert int(adam) == graphs.WARMUP + 2  # the failed iteration ran once, eagerly
        assert fake.captures == 1 and fake.replays == 0
    assert step.eager and fake.released == [(0, 7)]
    assert fake.current is fake.default  # not left on the capture stream
    assert not frozen.requires_grad
    assert all(p.requires_grad for net in (m.d_a, m.d_b) for p in net.parameters())


def capturable(m: Model) -> set[bool]:
    return {bool(g.get("capturable")) for opt in m.optimizers.values() for g in opt.param_groups}


@pytest.fixture
def capturable_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPU taken for a device a graph can capture on, so that only the model's reasons count
    (building on it makes capturable Adam, which is fine until it steps)."""
    monkeypatch.setattr(graphs, "settings_obstacle", lambda *_: None)


GRAPH = Speed("fp32", False, "off", cuda_graph=True)


def test_auto_with_a_regularizer_that_cannot_be_captured_builds_eager_optimizers(
    capturable_device: None, loaded: Loaded, tiny_recipe: Path
) -> None:
    penalised = load(str(tiny_recipe), loaded.registry, ["regularizer.name=r1"])
    assert not graphs.decide(GRAPH, CPU, 1, penalised, strict=False).cuda_graph  # before build
    m = build_for_run(penalised, CPU, GRAPH, strict=False)
    assert not m.rt.speed.cuda_graph and capturable(m) == {False}
    with pytest.raises(CgfwError, match=r"train.cuda_graph is not available with regularizer 'r1'"):
        build_for_run(penalised, CPU, GRAPH, strict=True)
    plain = build_for_run(load(str(tiny_recipe), loaded.registry), CPU, GRAPH, strict=False)
    assert plain.rt.speed.cuda_graph and capturable(plain) == {True}


def test_a_model_that_tells_its_obstacle_only_once_built_is_built_again_for_eager_steps(
    capturable_device: None, loaded: Loaded, tiny_recipe: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(CycleGAN, "graph_obstacle", lambda self: "draws on the host")
    resolved = load(str(tiny_recipe), loaded.registry)
    with pytest.raises(CgfwError, match=r"train.cuda_graph draws on the host"):
        build_for_run(resolved, CPU, GRAPH, strict=True)
    torch.manual_seed(0)
    m = build_for_run(resolved, CPU, GRAPH, strict=False)
    drawn_next = torch.rand(3)
    assert isinstance(m, CycleGAN) and not m.rt.speed.cuda_graph and capturable(m) == {False}
    torch.manual_seed(0)
    eager = build_model(resolved, CPU, dataclasses.replace(GRAPH, cuda_graph=False))
    assert isinstance(eager, CycleGAN)
    # As if built once, eagerly: the same initial weights, and the random state after them.
    assert state_equal(m.g_ab.state_dict(), eager.g_ab.state_dict())
    assert torch.equal(drawn_next, torch.rand(3))
