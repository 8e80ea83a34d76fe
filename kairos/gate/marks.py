"""Market data -> top of book per (venue, instrument) in the `RiskState`.

Only the records that move a mark are looked at: BBO, the level-0 record of a DEPTH burst, and
STATUS (a book invalidated by its feed clears the mark until fresh data: orders then get NO_MARK).
Records are applied in ring order; the keys touched are collected for the paper venue and the
post-trade scan, which run once per batch. A batch of up to ``SMALL`` records (one tick, the usual
case: the gate wakes per md publish) is read with one ``tolist()``; numpy masks, which cost ~1 us
per call whatever the size, first cut longer batches to the records that matter.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from kairos.records import BookStatus, Kind
from kairos.risk.state import RiskState

_BBO, _DEPTH, _STATUS = int(Kind.BBO), int(Kind.DEPTH), int(Kind.STATUS)
_SYNCED = int(BookStatus.SYNCED)
SMALL: Final = 64


class Marks:
    """Ring handler for one venue's md ring; ``changed`` accumulates keys until the caller clears it."""

    __slots__ = ("_base", "_s", "_stride", "changed")

    def __init__(self, state: RiskState, venue: int, changed: set[int]) -> None:
        self._s = state
        self._stride = state.grid.stride
        self._base = venue * self._stride
        self.changed = changed

    def __call__(self, view: np.ndarray) -> None:
        bid, ask, stride, base, changed = self._s.bid, self._s.ask, self._stride, self._base, self.changed
        for _ex, _rx, _seq, px, _qty, px2, _qty2, inst, _venue, kind, flags in _relevant(view).tolist():
            if not 0 < inst < stride:
                continue
            k = base + inst
            if kind == _BBO or (kind == _DEPTH and flags == 0):
                bid[k], ask[k] = px, px2
            elif kind == _STATUS:
                if flags != _SYNCED:
                    bid[k] = ask[k] = 0.0
            else:
                continue
            changed.add(k)


def _relevant(view: np.ndarray) -> np.ndarray:
    """The batch itself when small (the loop skips trades and deeper levels), else only BBO, DEPTH level 0, STATUS."""
    if len(view) <= SMALL:
        return view
    kinds = view["kind"]
    return view[(kinds == _BBO) | (kinds == _STATUS) | ((kinds == _DEPTH) & (view["flags"] == 0))]
