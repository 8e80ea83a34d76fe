"""MarketView: top of book and book status per (venue, instrument), updated in bulk from numpy batches.

One `Top` per (venue, instrument), kept in a flat list at ``venue * (n_instruments + 1) + instrument``
(0 is "none" on both axes and never valid). Strategies resolve their `Top` objects once and then read
plain attributes, which on CPython is ten times cheaper than indexing numpy arrays per value.

``update(batch)`` converts the batch with one ``tolist()``; a batch longer than ``DEDUPE_MIN`` is
first cut, with numpy, to the last relevant record per book. That is exact because each relevant
record fully determines a book: a BBO or DEPTH level-0 record sets both sides and marks it SYNCED;
a STATUS record (the feed's contract in kairos/records.py) sets the status and drops the prices,
so after RESYNCING/DISCONNECTED the next data record rebuilds the book. A book is `tradeable`
only if SYNCED, two-sided with finite positive prices and sizes, uncrossed, no wider than
``MAX_SPREAD`` (a 1e-8 bid or a 1e15 ask under a real other side is bad data, not a market) and
updated within the caller's age limit.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from kairos.records import BookStatus, Kind, Venue

N_VENUES: Final = len(Venue)
DEDUPE_MIN: Final = 64
MAX_SPREAD: Final = 1.5
"""ask / bid above this (a 50 % spread) is no market anyone trades: the book is not tradeable."""
_INF: Final = math.inf
_BBO, _DEPTH, _STATUS = int(Kind.BBO), int(Kind.DEPTH), int(Kind.STATUS)
_SYNCED: Final = int(BookStatus.SYNCED)
_STATUSES: Final = frozenset(int(s) for s in BookStatus)
_NAN: Final = math.nan


class Top:
    """One book's top of book; mutated in place by the view, read by strategies."""

    __slots__ = ("ask", "ask_qty", "bid", "bid_qty", "status", "ts_recv")

    def __init__(self) -> None:
        self.bid = self.ask = _NAN
        self.bid_qty = self.ask_qty = 0.0
        self.ts_recv = 0
        self.status = int(BookStatus.DISCONNECTED)

    def tradeable(self, now_ns: int, max_age_ns: int) -> bool:
        """SYNCED, both sides finite and present, not crossed, not absurdly wide, updated within ``max_age_ns``."""
        return (self.status == _SYNCED and 0.0 < self.bid < self.ask <= self.bid * MAX_SPREAD
                and 0.0 < self.bid_qty < _INF and 0.0 < self.ask_qty < _INF and now_ns - self.ts_recv <= max_age_ns)

    def drop(self, status: int, ts_recv: int) -> None:
        self.status, self.ts_recv = status, ts_recv
        self.bid = self.ask = _NAN
        self.bid_qty = self.ask_qty = 0.0


class MarketView:
    """Shared state the host updates once per batch and every strategy reads."""

    __slots__ = ("_books", "_width", "rejected", "touched")

    def __init__(self, n_instruments: int) -> None:
        self._width = n_instruments + 1
        self._books = [Top() for _ in range(N_VENUES * self._width)]
        self.touched: set[int] = set()
        self.rejected = 0

    def top(self, venue: int, instrument: int) -> Top:
        if not (0 < venue < N_VENUES and 0 < instrument < self._width):
            raise KeyError(f"no book for venue {venue} instrument {instrument}")
        return self._books[venue * self._width + instrument]

    def update(self, batch: np.ndarray) -> None:
        """Apply MARKET_DATA records in order (trades and deeper DEPTH levels are ignored)."""
        books, width, touched = self._books, self._width, self.touched
        if len(batch) > DEDUPE_MIN:
            batch = self._last_per_book(batch)
        for _ex, ts_recv, _seq, price, qty, price2, qty2, inst, venue, kind, flags in batch.tolist():
            if kind == _BBO or (kind == _DEPTH and flags == 0):
                if 0 < venue < N_VENUES and 0 < inst < width:
                    top = books[venue * width + inst]
                    top.bid, top.bid_qty, top.ask, top.ask_qty = price, qty, price2, qty2
                    top.ts_recv, top.status = ts_recv, _SYNCED
                    touched.add(inst)
                else:
                    self.rejected += 1
            elif kind == _STATUS:
                self._status(venue, inst, flags, ts_recv)

    def _status(self, venue: int, inst: int, flags: int, ts_recv: int) -> None:
        if 0 < venue < N_VENUES and 0 < inst < self._width and flags in _STATUSES:
            self._books[venue * self._width + inst].drop(flags, ts_recv)
            self.touched.add(inst)
        else:
            self.rejected += 1

    def _last_per_book(self, batch: np.ndarray) -> np.ndarray:
        """The last BBO / DEPTH level-0 / STATUS record of each book, in batch order."""
        kind = batch["kind"]
        relevant = np.flatnonzero((kind == _BBO) | (kind == _STATUS) | ((kind == _DEPTH) & (batch["flags"] == 0)))
        venue, inst = batch["venue"][relevant].astype(np.int64), batch["instrument"][relevant].astype(np.int64)
        valid = (venue > 0) & (venue < N_VENUES) & (inst > 0) & (inst < self._width)
        key = np.where(valid, venue * self._width + inst, -1 - relevant)  # bad records stay, to be counted
        _, last_rev = np.unique(key[::-1], return_index=True)
        return batch[np.sort(relevant[len(relevant) - 1 - last_rev])]

    def invalidate_venue(self, venue: int, status: BookStatus = BookStatus.RESYNCING) -> None:
        """Drop every book of a venue (after a ring overrun a STATUS record may have been missed)."""
        for inst in range(1, self._width):
            self._books[venue * self._width + inst].drop(int(status), 0)
            self.touched.add(inst)

    def clear_touched(self) -> None:
        self.touched.clear()

    def tradeable(self, venue: int, instrument: int, now_ns: int, max_age_ns: int) -> bool:
        return self.top(venue, instrument).tradeable(now_ns, max_age_ns)
