import pytest

from cgfw_paper.schedules import (
    CosineOptions,
    LinearDecayOptions,
    StepOptions,
    constant,
    cosine,
    linear_decay,
    step,
)

BASE = 2e-4


@pytest.mark.parametrize(
    ("epoch", "lr"),
    [(1, BASE), (100, BASE), (101, BASE * 100 / 101), (150, BASE * 51 / 101), (200, BASE / 101)],
)
def test_linear_decay_matches_the_authors_rule(epoch: int, lr: float) -> None:
    assert BASE * linear_decay(LinearDecayOptions())(epoch) == pytest.approx(lr, rel=1e-12)


def test_constant_step_and_cosine() -> None:
    assert constant(None)(137) == 1.0  # type: ignore[arg-type]
    f = step(StepOptions(step_size=10, gamma=0.5))
    assert [f(1), f(10), f(11), f(21)] == [1.0, 1.0, 0.5, 0.25]
    c = cosine(CosineOptions(n_epochs=100))
    assert c(1) == 1.0
    assert c(51) == pytest.approx(0.5)
    assert c(101) == pytest.approx(0.0)


def test_a_run_shorter_than_its_schedule_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    from cgfw.training.loop import warn_if_schedule_unused

    warn_if_schedule_unused(linear_decay(LinearDecayOptions()), 200)  # the paper: decays in-run
    warn_if_schedule_unused(constant(None), 10)  # type: ignore[arg-type]
    assert not caplog.records
    warn_if_schedule_unused(linear_decay(LinearDecayOptions()), 100)  # decay would start at 101
    assert "only starts to change after epoch 100" in caplog.text
