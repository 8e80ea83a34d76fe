"""L2 order book for one instrument: exact integer price keys, sorted rank arrays, top-N output.

Layout (per side)::

    levels: dict[key -> qty]      key = price * 1e8 as an exact int (never a float compared for equality)
    ranks:  list[int], ascending  bids store -key, asks +key, so ranks[0] is always the best level

A wire price string becomes its key once, at the edge: ``int(float(s) * 1e8 + 0.5)``. The float
is only an intermediate: for prices < 2**53 / 1e8 (~9e7) with at most 8 decimals its error is far
below half a unit, so the int is exact (checked against Decimal in tests). Keys are memoised per
price string (prices recur across updates; a dict hit costs less than the conversion; the memo is
dropped when it reaches KEY_CACHE entries). Inserting or deleting a
level is a C ``bisect`` plus a list memmove (books hold hundreds to a few thousand levels);
updating an existing level is one dict store. `apply` reports whether the top ``depth`` levels
changed, by comparing the best rank it touched with the depth-th rank after the update.
"""

from __future__ import annotations

import sys
from bisect import bisect_left, insort
from typing import Any, Final

import numpy as np

from kairos.feeds.base import RECORD
from kairos.records import Kind

SCALE: Final = 100_000_000
MAX_PRICE: Final = float(2**53 // SCALE)
KEY_CACHE: Final = 65_536
_NONE: Final = 1 << 62
_DEPTH: Final = int(Kind.DEPTH)
_BBO: Final = int(Kind.BBO)


class L2Book:
    __slots__ = ("_keys", "ask_ranks", "asks", "bid_ranks", "bids", "depth", "instrument", "max_price", "max_qty",
                 "venue")

    def __init__(self, instrument: int, venue: int, depth: int, max_price: float = MAX_PRICE,
                 max_qty: float = sys.float_info.max) -> None:
        self.instrument = instrument
        self.venue = venue
        self.depth = depth
        self.max_price = min(max_price, MAX_PRICE)  # a level outside (0, max_price] or (0, max_qty] is a bad level
        self.max_qty = max_qty
        self.bids: dict[int, float] = {}
        self.asks: dict[int, float] = {}
        self.bid_ranks: list[int] = []
        self.ask_ranks: list[int] = []
        self._keys: dict[str, int] = {}

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.bid_ranks.clear()
        self.ask_ranks.clear()

    def load(self, bids: list[Any], asks: list[Any]) -> None:
        """Replace the whole book with a snapshot (ValueError on a bad level leaves it empty)."""
        self.clear()
        try:
            _apply(bids, self.bids, self.bid_ranks, -1, self._keys, self.max_price, self.max_qty)
            _apply(asks, self.asks, self.ask_ranks, 1, self._keys, self.max_price, self.max_qty)
        except BAD_LEVEL:
            self.clear()
            raise

    def apply(self, bids: list[Any], asks: list[Any]) -> bool:
        """Apply absolute level sizes ("0" deletes); True when the top ``depth`` levels changed.

        A bad level raises ValueError after earlier levels were applied: the caller must resync.
        """
        keys = self._keys
        if len(keys) > KEY_CACHE:
            keys.clear()
        best_bid = _apply(bids, self.bids, self.bid_ranks, -1, keys, self.max_price, self.max_qty)
        best_ask = _apply(asks, self.asks, self.ask_ranks, 1, keys, self.max_price, self.max_qty)
        return _touched_top(best_bid, self.bid_ranks, self.depth) or _touched_top(best_ask, self.ask_ranks, self.depth)

    def crossed(self) -> bool:
        return bool(self.bid_ranks and self.ask_ranks and -self.bid_ranks[0] >= self.ask_ranks[0])

    def top(self) -> tuple[float, float, float, float]:
        """Best bid price/qty, best ask price/qty (0.0 for an empty side)."""
        bid_price = bid_qty = ask_price = ask_qty = 0.0
        if self.bid_ranks:
            key = -self.bid_ranks[0]
            bid_price, bid_qty = key / SCALE, self.bids[key]
        if self.ask_ranks:
            key = self.ask_ranks[0]
            ask_price, ask_qty = key / SCALE, self.asks[key]
        return bid_price, bid_qty, ask_price, ask_qty

    def levels(self, side_is_bid: bool, count: int) -> list[tuple[int, float]]:
        """Best ``count`` levels of one side as (key, qty), best first."""
        if side_is_bid:
            return [(-r, self.bids[-r]) for r in self.bid_ranks[:count]]
        return [(r, self.asks[r]) for r in self.ask_ranks[:count]]

    def write_bbo(self, out: np.ndarray, at: int, ts_exchange_ns: int, recv_ns: int, seq: int) -> int:
        bp, bq, ap, aq = self.top()
        RECORD.pack_into(out, at << 6, ts_exchange_ns, recv_ns, seq, bp, bq, ap, aq, self.instrument, self.venue,
                         _BBO, 0)
        return 1

    def write_depth(self, out: np.ndarray, at: int, ts_exchange_ns: int, recv_ns: int, seq: int) -> int:
        """One DEPTH burst: ``depth`` rows, row i = bid level i and ask level i (missing = 0, 0)."""
        pack, bids, asks, br, ar = RECORD.pack_into, self.bids, self.asks, self.bid_ranks, self.ask_ranks
        nb, na, inst, venue = len(br), len(ar), self.instrument, self.venue
        for i in range(self.depth):
            bp = bq = ap = aq = 0.0
            if i < nb:
                key = -br[i]
                bp, bq = key / SCALE, bids[key]
            if i < na:
                key = ar[i]
                ap, aq = key / SCALE, asks[key]
            pack(out, (at + i) << 6, ts_exchange_ns, recv_ns, seq, bp, bq, ap, aq, inst, venue, _DEPTH, i)
        return self.depth


BAD_LEVEL: Final = (ValueError, TypeError, IndexError, KeyError, OverflowError)


def _apply(levels: list[Any], book: dict[int, float], ranks: list[int], sign: int, keys: dict[str, int],
           max_price: float, max_qty: float) -> int:
    """Hot path: returns the best (lowest) rank touched, or _NONE. NaN and inf fail both compares."""
    best, known = _NONE, keys.get
    for level in levels:
        key = known(level[0])
        if key is None:
            key = keys[level[0]] = _key(level[0], max_price)
        qty = float(level[1])
        rank = key * sign
        if 0.0 < qty <= max_qty:
            if key not in book:
                insort(ranks, rank)
            book[key] = qty
        elif qty == 0.0:
            if book.pop(key, None) is None:
                continue  # deleting a level we never had (beyond the snapshot): nothing changed
            del ranks[bisect_left(ranks, rank)]
        else:
            raise ValueError(f"bad size: {level[1]!r}")
        if rank < best:
            best = rank
    return best


def _key(text: str, max_price: float) -> int:
    price = float(text)
    key = int(price * SCALE + 0.5) if 0.0 < price <= max_price else 0
    if key <= 0:
        raise ValueError(f"price out of range: {text!r}")
    return key


def _touched_top(best: int, ranks: list[int], depth: int) -> bool:
    if best == _NONE:
        return False
    return len(ranks) < depth or best <= ranks[depth - 1]
