from __future__ import annotations

import pytest

from kairos.config import RiskConfig
from kairos.risk import Exit, PostTrade


@pytest.mark.parametrize(("position", "mark", "expected"), [
    (1.0, 99.0, Exit.STOP_LOSS),        # long, -100 bps
    (1.0, 99.5, Exit.NONE),             # long, -50 bps: inside
    (1.0, 102.0, Exit.TAKE_PROFIT),     # long, +200 bps
    (-1.0, 101.0, Exit.STOP_LOSS),      # short, price up = loss
    (-1.0, 98.0, Exit.TAKE_PROFIT),     # short, price down = profit
    (0.0, 50.0, Exit.NONE),             # flat: nothing to close
])
def test_stop_loss_and_take_profit(position: float, mark: float, expected: Exit) -> None:
    post = PostTrade(RiskConfig(stop_loss_bps=100.0, take_profit_bps=200.0))
    assert post.exit(position, 100.0, mark) == expected


def test_zero_thresholds_disable_exits_and_loss_limit() -> None:
    post = PostTrade(RiskConfig(stop_loss_bps=0.0, take_profit_bps=0.0, daily_loss_limit=0.0))
    assert post.exit(1.0, 100.0, 1.0) == Exit.NONE
    assert post.exit(1.0, 100.0, 1e6) == Exit.NONE
    assert not post.loss_breached(-1e12, -1e12)


def test_no_mark_or_entry_never_exits() -> None:
    post = PostTrade(RiskConfig(stop_loss_bps=1.0, take_profit_bps=1.0))
    assert post.exit(1.0, 100.0, 0.0) == Exit.NONE
    assert post.exit(1.0, 0.0, 100.0) == Exit.NONE


def test_daily_loss_counts_realised_plus_unrealised() -> None:
    post = PostTrade(RiskConfig(daily_loss_limit=100.0))
    assert not post.loss_breached(-60.0, -39.0)
    assert post.loss_breached(-60.0, -40.0)
    assert not post.loss_breached(-200.0, 150.0)
