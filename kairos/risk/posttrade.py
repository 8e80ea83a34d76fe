"""Post-trade checks on live marks: stop-loss / take-profit per position, and the daily loss limit.

Pure functions of a position, its average entry price and the mark; the gate turns a verdict into a
reduce-only closing order (exit) or into TradingState.HALTED (daily loss). A limit of 0 disables.
"""

from __future__ import annotations

from enum import IntEnum

from kairos.config import RiskConfig
from kairos.risk.state import active_limit


class Exit(IntEnum):
    NONE = 0
    STOP_LOSS = 1
    TAKE_PROFIT = 2


class PostTrade:
    """Thresholds from config; ``exit`` and ``loss_breached`` are the verdicts."""

    __slots__ = ("loss_limit", "stop_bps", "take_bps")

    def __init__(self, cfg: RiskConfig) -> None:
        self.stop_bps = active_limit(cfg.stop_loss_bps)
        self.take_bps = active_limit(cfg.take_profit_bps)
        self.loss_limit = active_limit(cfg.daily_loss_limit)

    @property
    def exits_enabled(self) -> bool:
        """Stop-loss or take-profit is configured (the desk scans positions only then)."""
        return self.stop_bps < float("inf") or self.take_bps < float("inf")

    def exit(self, position: float, entry_px: float, mark: float) -> Exit:
        """STOP_LOSS / TAKE_PROFIT when the mark moved that many bps against / for the position."""
        if position == 0.0 or entry_px <= 0.0 or mark <= 0.0:
            return Exit.NONE
        move_bps = (mark - entry_px) / entry_px * 1e4
        if position < 0.0:
            move_bps = -move_bps
        if move_bps <= -self.stop_bps:
            return Exit.STOP_LOSS
        if move_bps >= self.take_bps:
            return Exit.TAKE_PROFIT
        return Exit.NONE

    def loss_breached(self, realised: float, unrealised: float) -> bool:
        """True when today's realised plus unrealised PnL (quote) is at or below minus the limit."""
        return realised + unrealised <= -self.loss_limit
