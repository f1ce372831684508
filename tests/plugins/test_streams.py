"""Two streams (issue 23): on a CPU with two threads or more, the CycleGAN's step runs as two
streams at once, one per direction (`CycleGAN._step_in_streams`). It must compute what the
sequential step computes (to rounding), be as reproducible, hand the other thread's errors to
the caller, and stay off where two threads would change the result (random draws in a network,
shared parameters) or the authors' order is asked for (calls apart)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from cgfw.plugin.loader import Loaded
from cgfw.recipe import load
from cgfw.training.model import Speed, build_model
from cgfw_paper.cyclegan import CycleGAN
from cgfw_paper.streams import Streams, draws_random, share_parameters


@pytest.fixture(autouse=True)
def two_threads() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the streams' condition, on any machine
    yield
    torch.set_num_threads(threads)


def batches(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [
        tuple(torch.rand(2, 3, 32, 32, generator=g) * 2 - 1 for _ in range(2)) for _ in range(n)
    ]  # type: ignore[misc]


def model(loaded: Loaded, tiny_recipe, *overrides: str) -> CycleGAN:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    resolved = load(str(tiny_recipe), loaded.registry, ["buffer.capacity=3", *overrides])
    cpu = torch.device("cpu")
    m = build_model(resolved, cpu, Speed.resolve(resolved.recipe.train, cpu))
    assert isinstance(m, CycleGAN)
    m.setup(*batches(1)[0])
    return m


def train(m: CycleGAN, iters: int) -> list[dict[str, float]]:
    torch.manual_seed(1)  # the pools' draws
    random.seed(1)
    return [{k: v.item() for k, v in m.step(a, b).items()} for a, b in batches(iters)]


@pytest.mark.parametrize(
    "overrides",
    [[], ["losses.identity.weight=0"], ["losses.cycle.forward=false"], ["losses.gan.weight=0"]],
    ids=["paper", "no identity", "no forward cycle", "cycle alone"],
)
def test_two_streams_compute_what_the_step_computes(  # type: ignore[no-untyped-def]
    loaded, tiny_recipe, overrides
) -> None:
    streamed = model(loaded, tiny_recipe, *overrides)
    sequential = model(loaded, tiny_recipe, *overrides)
    assert streamed.streams is not None
    sequential.streams = None
    ours, theirs = train(streamed, 2), train(sequential, 2)
    assert [list(x) for x in ours] == [list(x) for x in theirs]  # the same terms, in order
    for i, (mine, step) in enumerate(zip(ours, theirs, strict=True), start=1):
        for name, value in mine.items():  # gradients summed in another order: rounding
            assert value == pytest.approx(step[name], rel=1e-5, abs=1e-6), (i, name)
    # The trained networks compute the same (compared by their outputs: a conv's bias before
    # instance norm has a gradient of zero but for rounding, which Adam turns into steps of
    # either sign that the norm then removes).
    x = batches(1)[0][0]
    with torch.no_grad():
        for name, net in streamed.networks.items():
            mine, step = net(x), sequential.networks[name](x)
            torch.testing.assert_close(mine, step, rtol=1e-4, atol=1e-5, msg=name)


class Late:
    """A `Streams` whose calling stream (or the other) starts each job late: whatever depends
    on which thread gets somewhere first comes out otherwise."""

    def __init__(self, streams: Streams, here: float, there: float) -> None:
        self.streams, self.here, self.there = streams, here, there

    def both(self, here, there):  # type: ignore[no-untyped-def]
        return self.streams.both(
            lambda: (time.sleep(self.here), here())[1], lambda: (time.sleep(self.there), there())[1]
        )


def test_two_streams_are_reproducible(loaded, tiny_recipe) -> None:  # type: ignore[no-untyped-def]
    first, second = model(loaded, tiny_recipe), model(loaded, tiny_recipe)
    assert first.streams is not None
    first.streams = Late(first.streams, 0.0, 0.002)  # type: ignore[assignment]
    second.streams = Late(first.streams.streams, 0.002, 0.0)  # type: ignore[assignment]
    assert train(first, 4) == train(second, 4)  # bit for bit: the threads' timing is no input


def test_streams_stay_off_where_they_would_change_the_step(  # type: ignore[no-untyped-def]
    loaded, tiny_recipe
) -> None:
    assert model(loaded, tiny_recipe).streams is not None
    assert model(loaded, tiny_recipe, "train.stack_calls=false").streams is None  # authors' order
    dropout = model(loaded, tiny_recipe, "generator.dropout=true")  # draws in the forward pass
    assert dropout.streams is None
    assert "random" in str(dropout.streams_obstacle(*batches(1)[0]))
    torch.set_num_threads(1)
    assert model(loaded, tiny_recipe).streams is None


def test_the_check_for_random_draws_leaves_no_trace() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5))
    x = torch.randn(2, 3, 8, 8)
    before, stats = torch.get_rng_state(), net[1].running_mean.clone()
    assert draws_random(lambda: net(x), [net])
    assert torch.equal(before, torch.get_rng_state())
    assert torch.equal(stats, net[1].running_mean)  # batch norm's statistics restored
    net[2].p = 0.0
    net.eval()
    assert not draws_random(lambda: net(x), [net])
    assert draws_random(lambda: random.random())  # Python's generator too


def test_shared_parameters_are_found() -> None:
    conv = nn.Conv2d(3, 3, 1)
    assert share_parameters([nn.Sequential(conv), nn.Sequential(nn.ReLU(), conv)])
    assert not share_parameters([nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1)])


def test_the_other_streams_error_is_raised_here_after_both_end() -> None:
    streams = Streams()
    ended: list[str] = []

    def fails() -> None:
        raise ValueError("in the second stream")

    def slow() -> int:
        torch.randn(256, 256) @ torch.randn(256, 256)
        ended.append("here")
        return 1

    with pytest.raises(ValueError, match="second stream"):
        streams.both(slow, fails)
    assert ended == ["here"]
    assert torch.get_num_threads() == 2  # each stream ran on one; the caller's count is back
    threads = streams.both(torch.get_num_threads, torch.get_num_threads)
    assert threads == (1, 1)
    assert streams.both(lambda: 1, lambda: 2) == (1, 2)  # still usable
    torch.set_num_threads(1)  # e.g. set by the user after the streams were chosen
    assert streams.both(torch.get_num_threads, torch.get_num_threads) == (1, 1)
