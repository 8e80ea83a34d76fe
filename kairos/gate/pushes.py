"""Venue balance pushes into the gate's book without counting a fill twice.

The book moves balances itself when it applies a fill, and a venue's push (Binance
outboundAccountPosition, OKX ``account``) is the account *after* some set of fills. A push may
reach the gate before or after the fill events behind it (OKX sends them on two channels; a fill
found by REST arrives whenever). The venue's clock decides which fills a push includes: one
stamped at or after a fill's trade time includes it. Per balance slot the gate keeps the newest
push and the newest trade time among the fills it applied, and after each batch of reports:

- a push at least as new as every fill applied to that slot replaces the book's total (free +
  locked): the venue's numbers, fills and out-of-band changes (deposits, withdrawals) included;
- a push older than a fill already applied waits for the next one (the venue pushes after every
  fill), so the book keeps "last push + that fill" meanwhile, never the fill twice;
- a fill applied after a push that already includes it (trade time <= push time) re-applies that
  push at once, in the same batch: the book's brief double count never leaves `settle`.

A fill without a venue time (0) counts as made at the gate's wall clock. Reservations (funds
locked by the gate's own open orders) are the gate's own and are not touched: the venue's
``locked`` is part of the total, the gate's free = total - reserved. Converges: the newest push,
sent after the venue's last fill, is applied once the gate has applied that fill.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Final

from kairos.execution.base import BalancePush
from kairos.logs import ErrorTally
from kairos.risk.state import Grid

log = logging.getLogger(__name__)

OUTCOMES: Final = ("applied", "held", "stale", "foreign", "bad")
"""What became of a push, counted per venue: applied (set a balance); held (waited for a newer push: a fill
was newer); stale (older than the slot's last push); foreign (an asset no instrument trades); bad (not a
finite, non-negative amount: ignored, logged)."""


class Pushes:
    """Per balance slot: the newest venue push (total, ms), the newest fill's venue ms, what to settle; per venue
    the `OUTCOMES` counts (``of``), which the gate publishes (kairos/gate/state.py)."""

    __slots__ = ("_counts", "_dirty", "_fill_ms", "_grid", "_latest", "_tally")

    def __init__(self, grid: Grid) -> None:
        self._grid = grid
        self._latest: dict[int, tuple[float, int]] = {}
        self._fill_ms: dict[int, int] = {}
        self._dirty: set[int] = set()
        self._tally = ErrorTally(log)
        self._counts: dict[int, dict[str, int]] = {}

    def pushed(self, venue: int, pushes: Mapping[str, BalancePush]) -> None:
        """Record what the venue pushed; applied at the next `settle`."""
        grid, latest = self._grid, self._latest
        counts = self._of(venue)
        for asset, (free, locked, ts_ms) in pushes.items():
            slot = grid.asset_slot(venue, asset)
            if not (math.isfinite(free + locked) and free >= 0.0 and locked >= 0.0):
                counts["bad"] += 1
                self._tally("venue balance push ignored: not a finite non-negative amount",
                            f"venue {venue} {asset} free={free} locked={locked}")
            elif slot < 0:
                counts["foreign"] += 1
            elif ts_ms < latest.get(slot, (0.0, -1))[1]:
                counts["stale"] += 1
            else:
                latest[slot] = (free + locked, ts_ms)
                self._dirty.add(slot)

    def filled(self, slots: tuple[int, ...], ts_ms: int) -> None:
        """The book applied a fill moving these slots (-1: an asset it does not keep), made at the venue's ``ts_ms``."""
        fill_ms = self._fill_ms
        for slot in slots:
            if slot < 0:
                continue
            if ts_ms > fill_ms.get(slot, 0):
                fill_ms[slot] = ts_ms
            if slot in self._latest:
                self._dirty.add(slot)

    def settle(self, balance: list[float]) -> int:
        """Apply every push that is now the truth (module docstring); returns how many were applied."""
        if not self._dirty:
            return 0
        applied, n_assets = 0, self._grid.n_assets
        for slot in self._dirty:
            total, ts_ms = self._latest[slot]
            counts = self._of(slot // n_assets)
            if ts_ms >= self._fill_ms.get(slot, 0):
                balance[slot] = total
                counts["applied"] += 1
                applied += 1
            else:
                counts["held"] += 1
        self._dirty.clear()
        return applied

    def reset(self, venue: int) -> None:
        """A REST snapshot of the venue's balances was applied: pushes kept so far are superseded."""
        grid = self._grid
        for slot in [s for s in self._latest if s // grid.n_assets == venue]:
            del self._latest[slot]
            self._dirty.discard(slot)

    def of(self, venue: int) -> dict[str, int]:
        """The venue's `OUTCOMES` counts so far (all zero before its first push): a copy."""
        return dict(self._counts.get(venue) or dict.fromkeys(OUTCOMES, 0))

    def totals(self) -> dict[str, int]:
        """The `OUTCOMES` counts summed over venues."""
        return {name: sum(c[name] for c in self._counts.values()) for name in OUTCOMES}

    def _of(self, venue: int) -> dict[str, int]:
        counts = self._counts.get(venue)
        if counts is None:
            counts = self._counts[venue] = dict.fromkeys(OUTCOMES, 0)
        return counts
