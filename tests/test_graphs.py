"""GraphedStep's bookkeeping on the CPU, with CUDA's stream and graph calls stood in for: when it
captures, and what a failed capture leaves behind (tests/test_gpu.py runs the real thing)."""

import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from cgfw.errors import CgfwError
from cgfw.plugin.loader import Loaded
from cgfw.recipe import load
from cgfw.train import graphs
from cgfw.train.model import build_model
from cgfw_paper.cyclegan import CycleGAN


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
