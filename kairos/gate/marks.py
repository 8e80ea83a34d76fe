"""Market data -> the last valid top of book per (venue, instrument) in the `RiskState`.

Only the records that move a mark are looked at: BBO, the level-0 record of a DEPTH burst, and
STATUS. A quote becomes the mark only if it is valid: finite, 0 < bid < ask, a spread of at most
``risk.mark_max_move_bps`` of the bid, and a mid within that distance of a reference: the key's own
mark while younger than ``risk.mark_max_age_ms``, else a fresh mark of the instrument on another
venue, else the key's own last mark however old; none only before the first mark and after the feed
invalidated the book (then the first valid quote is taken as is). So a 1e15 or 1e-8 print, a crossed
or one-sided book never prices risk; a real jump beyond the limit is taken once another venue shows it
or the feed resyncs. Anything else is counted in
``bad`` (the last one kept in ``last_bad`` for the log) and leaves the previous mark, which keeps
valuing positions while it ages. ``mark_ns`` records when a key's mark was last valid (monotonic,
once per batch); a STATUS that invalidates a book sets it to `NEVER`, so orders there get
MARK_UNAVAILABLE until fresh data.

Records are applied in ring order; the keys whose mark moved are collected for the paper venue and
the post-trade scan, which run once per batch. A batch of up to ``SMALL`` records (one tick, the
usual case: the gate wakes per md publish) is read with one ``tolist()``; numpy masks, which cost ~1
us per call whatever the size, first cut longer batches to the records that matter.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

import numpy as np

from kairos.config import RiskConfig
from kairos.records import BookStatus, Kind
from kairos.risk.state import N_VENUES, NEVER, RiskState, active_age_ns

_BBO, _DEPTH, _STATUS = int(Kind.BBO), int(Kind.DEPTH), int(Kind.STATUS)
_SYNCED = int(BookStatus.SYNCED)
SMALL: Final = 64


class Marks:
    """Ring handler for one venue's md ring; ``changed`` accumulates keys until the caller clears it."""

    __slots__ = ("_age", "_base", "_clock", "_move", "_s", "_stride", "_wide", "bad", "changed", "last_bad")

    def __init__(self, state: RiskState, venue: int, changed: set[int], cfg: RiskConfig,
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        self._s = state
        self._stride = state.grid.stride
        self._base = venue * self._stride
        self._age = active_age_ns(cfg.mark_max_age_ms)
        self._move = cfg.mark_max_move_bps / 1e4
        self._wide = 1.0 + self._move
        self._clock = clock
        self.changed = changed
        self.bad = 0
        self.last_bad: tuple[int, float, float] = (0, 0.0, 0.0)

    def __call__(self, view: np.ndarray) -> None:
        s, stride, base, changed = self._s, self._stride, self._base, self.changed
        bid, ask, good, age, move, wide = s.bid, s.ask, s.mark_ns, self._age, self._move, self._wide
        now = self._clock()
        for _ex, _rx, _seq, px, _qty, px2, _qty2, inst, _venue, kind, flags in _relevant(view).tolist():
            if not 0 < inst < stride:
                continue
            k = base + inst
            if kind == _BBO or (kind == _DEPTH and flags == 0):
                ref = bid[k] + ask[k] if now - good[k] <= age else self._reference(k, inst, now)
                if 0.0 < px < px2 <= px * wide and (ref == 0.0 or abs(px + px2 - ref) <= ref * move):
                    bid[k], ask[k], good[k] = px, px2, now
                    changed.add(k)
                else:
                    self.bad += 1
                    self.last_bad = (k, px, px2)
            elif kind == _STATUS and flags != _SYNCED:
                good[k] = NEVER

    def _reference(self, k: int, inst: int, now: int) -> float:
        """Twice the mid a quote for stale key ``k`` is checked against (0.0: none, anything valid goes)."""
        s, stride = self._s, self._stride
        for other in range(stride + inst, N_VENUES * stride, stride):
            if now - s.mark_ns[other] <= self._age:
                return s.bid[other] + s.ask[other]
        return s.bid[k] + s.ask[k] if s.mark_ns[k] != NEVER else 0.0


def _relevant(view: np.ndarray) -> np.ndarray:
    """The batch itself when small (the loop skips trades and deeper levels), else only BBO, DEPTH level 0, STATUS."""
    if len(view) <= SMALL:
        return view
    kinds = view["kind"]
    return view[(kinds == _BBO) | (kinds == _STATUS) | ((kinds == _DEPTH) & (view["flags"] == 0))]
