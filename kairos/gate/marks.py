"""Market data -> top of book per (venue, instrument) in the `RiskState`.

Only the records that move a mark are looked at: BBO, the level-0 record of a DEPTH burst, and
STATUS (a book invalidated by its feed clears the mark until fresh data: orders then get NO_MARK).
Records are applied in ring order; the keys touched are collected for the paper venue and the
post-trade scan, which run once per batch.
"""

from __future__ import annotations

import numpy as np

from kairos.records import BookStatus, Kind
from kairos.risk.state import RiskState

_BBO, _DEPTH, _STATUS = int(Kind.BBO), int(Kind.DEPTH), int(Kind.STATUS)
_SYNCED = int(BookStatus.SYNCED)
_FIELDS = ("instrument", "kind", "flags", "price", "price2")


class Marks:
    """Ring handler for one venue's md ring; ``changed`` accumulates keys until the caller clears it."""

    __slots__ = ("_base", "_s", "_stride", "changed")

    def __init__(self, state: RiskState, venue: int, changed: set[int]) -> None:
        self._s = state
        self._stride = state.grid.stride
        self._base = venue * self._stride
        self.changed = changed

    def __call__(self, view: np.ndarray) -> None:
        kinds = view["kind"]
        rows = view[(kinds == _BBO) | (kinds == _STATUS) | ((kinds == _DEPTH) & (view["flags"] == 0))]
        if not len(rows):
            return
        bid, ask, stride, base = self._s.bid, self._s.ask, self._stride, self._base
        for inst, kind, flags, px, px2 in zip(*(rows[f].tolist() for f in _FIELDS), strict=True):
            if not 0 < inst < stride:
                continue
            k = base + inst
            if kind == _STATUS:
                if flags != _SYNCED:
                    bid[k] = ask[k] = 0.0
            else:
                bid[k], ask[k] = px, px2
            self.changed.add(k)
