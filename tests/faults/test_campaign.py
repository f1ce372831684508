"""The fault campaign's CI slice (`python -m tests.faults.campaign --quick`): recipe mutants,
bit-flipped checkpoints, full disks and the bad-image corpus, with zero tracebacks, hangs and
losses as the bar. The kills are tests/faults/test_kills.py's; the long campaign is the
module's own command."""

from __future__ import annotations

import pytest

from tests.faults.campaign import campaign, parse


@pytest.mark.slow
def test_the_quick_campaign_finds_no_traceback_hang_or_loss(
    capsys: pytest.CaptureFixture[str],
) -> None:
    tally = campaign(parse(["--quick"]))
    with capsys.disabled():
        print("\n" + tally.table())
    assert tally.faults == []
    assert sum(tally.counts.values()) >= 80  # every campaign ran its cases
