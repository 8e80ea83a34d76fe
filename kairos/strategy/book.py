"""MarketView: top of book and book status per (venue, instrument), updated in bulk from numpy batches.

Layout: one float/int array per field, shaped ``(len(Venue), n_instruments + 1)`` and indexed
``[venue, instrument]`` (0 is "none" on both axes and never valid). A batch is applied with a few
vectorised stores; only the last top-of-book record per book in a batch counts.

Book status (the feed's contract in kairos/records.py): a STATUS record RESYNCING/DISCONNECTED
drops the book (prices become NaN); the next BBO or DEPTH level-0 record for it rebuilds the book
and marks it SYNCED, since a feed publishes no book data while that book is out of sync. A book is
`tradeable` only if SYNCED, uncrossed, both sides present and its last update is fresh enough.
"""

from __future__ import annotations

import numpy as np

from kairos.records import BookStatus, Kind, Venue

N_VENUES = len(Venue)


class MarketView:
    """Shared, read-mostly state the host updates once per batch and every strategy reads."""

    __slots__ = ("_flat", "_width", "ask", "ask_qty", "bid", "bid_qty", "rejected", "status", "touched",
                 "ts_recv")

    def __init__(self, n_instruments: int) -> None:
        self._width = n_instruments + 1
        shape = (N_VENUES, self._width)
        self.bid = np.full(shape, np.nan)
        self.bid_qty = np.zeros(shape)
        self.ask = np.full(shape, np.nan)
        self.ask_qty = np.zeros(shape)
        self.ts_recv = np.zeros(shape, np.int64)
        self.status = np.full(shape, BookStatus.DISCONNECTED, np.uint8)
        self.touched = np.zeros(self._width, bool)
        self.rejected = 0
        self._flat = tuple(a.reshape(-1) for a in (self.bid, self.bid_qty, self.ask, self.ask_qty,
                                                   self.ts_recv, self.status))

    def update(self, batch: np.ndarray) -> None:
        """Apply MARKET_DATA records in order; STATUS records split the batch so order is kept."""
        lo = 0
        for pos in np.flatnonzero(batch["kind"] == Kind.STATUS).tolist():
            self._apply_top(batch[lo:pos])
            self._apply_status(batch[pos])
            lo = pos + 1
        self._apply_top(batch[lo:] if lo else batch)

    def _apply_top(self, rows: np.ndarray) -> None:
        kind = rows["kind"]
        top = (kind == Kind.BBO) | ((kind == Kind.DEPTH) & (rows["flags"] == 0))
        if not top.any():
            return
        rows = rows[top & self._valid(rows)]
        key = rows["venue"].astype(np.intp) * self._width + rows["instrument"]
        if len(key) > 1:
            key, first = np.unique(key[::-1], return_index=True)
            rows = rows[len(rows) - 1 - first]
        bid, bid_qty, ask, ask_qty, ts_recv, status = self._flat
        bid[key], bid_qty[key], ask[key], ask_qty[key] = rows["price"], rows["qty"], rows["price2"], rows["qty2"]
        ts_recv[key] = rows["ts_recv_ns"]
        status[key] = BookStatus.SYNCED
        self.touched[rows["instrument"]] = True

    def _valid(self, rows: np.ndarray) -> np.ndarray:
        venue, inst = rows["venue"], rows["instrument"]
        ok = (venue > 0) & (venue < N_VENUES) & (inst > 0) & (inst < self._width)
        self.rejected += int(len(ok) - np.count_nonzero(ok))
        return ok

    def _apply_status(self, rec: np.void) -> None:
        venue, inst, flags = int(rec["venue"]), int(rec["instrument"]), int(rec["flags"])
        if not (0 < venue < N_VENUES and 0 < inst < self._width and flags in BookStatus._value2member_map_):
            self.rejected += 1
            return
        self.status[venue, inst] = flags
        self.ts_recv[venue, inst] = rec["ts_recv_ns"]
        if flags != BookStatus.SYNCED:
            self.bid[venue, inst] = self.ask[venue, inst] = np.nan
        self.touched[inst] = True

    def invalidate_venue(self, venue: int, status: BookStatus = BookStatus.RESYNCING) -> None:
        """Drop every book of a venue (after a ring overrun a STATUS record may have been missed)."""
        self.status[venue, 1:] = status
        self.bid[venue, 1:] = self.ask[venue, 1:] = np.nan
        self.touched[1:] = True

    def clear_touched(self) -> None:
        self.touched[:] = False

    def tradeable(self, venue: int, instrument: int, now_ns: int, max_age_ns: int) -> bool:
        """SYNCED, both sides present, not crossed, and updated within ``max_age_ns``."""
        return bool(
            self.status[venue, instrument] == BookStatus.SYNCED
            and 0.0 < self.bid[venue, instrument] < self.ask[venue, instrument]
            and now_ns - self.ts_recv[venue, instrument] <= max_age_ns
        )
