"""Validation at the edge, shared by every venue: what is published is finite, positive, in bounds and sane.

Parsers (binance.py, okx.py) only decode; this module decides what may leave the feed:

- `QuoteGuard.rows` checks the BBO/TRADE rows a parser wrote: every price and size finite, > 0 and
  within ``feeds.max_price`` / ``feeds.max_qty``; a BBO has bid < ask, and a BBO whose mid moves more
  than ``feeds.max_jump_bps`` from the last good one is held back until ``feeds.jump_confirm_quotes``
  further quotes agree with it (or the instrument's book is rebuilt from a snapshot: `rebase`).
- `book_problem` checks a book message's shape before `BookSync` touches the book (sequence ids are
  ints, sides are lists of at most ``feeds.max_levels`` levels); the book itself rejects bad levels
  and `BookSync` resyncs a book that is empty on one side, crossed or jumped.
- `Rejections` counts every rejection per (instrument, reason) and logs it naming the book,
  rate-limited per book and reason (`ErrorTally` keys).

The checks are plain float compares (NaN fails every one of them), no numpy per record.
"""

from __future__ import annotations

import struct
from typing import Final

import numpy as np

from kairos.config import FeedConfig
from kairos.feeds.base import BookMsg
from kairos.logs import ErrorTally
from kairos.records import MARKET_DATA, Kind

NOT_FINITE: Final = "not_finite"
NOT_POSITIVE: Final = "not_positive"
OUT_OF_RANGE: Final = "out_of_range"
CROSSED: Final = "crossed"
JUMP: Final = "jump"
EMPTY_BOOK: Final = "empty_book"
LEVELS: Final = "levels"
INVALID_LEVEL: Final = "bad_level"
BAD_BOOK_MSG: Final = "bad_book_msg"
FRAME_SIZE: Final = "frame_size"
REASONS: Final = (NOT_FINITE, NOT_POSITIVE, OUT_OF_RANGE, CROSSED, JUMP, EMPTY_BOOK, LEVELS, INVALID_LEVEL,
                  BAD_BOOK_MSG, FRAME_SIZE)
"""Every rejection reason (names of counters and log kinds)."""

VENUE_WIDE: Final = -1
"""The instrument of a rejection that belongs to no book (an oversized frame)."""
MIN_PRICE: Final = 1e-8
"""The smallest price the 8-decimal book keys can hold."""

_TRADE: Final = int(Kind.TRADE)
_QUOTE: Final = struct.Struct("<ddddI2xB").unpack_from
"""price, qty, price2, qty2, instrument, kind of a MARKET_DATA row, read from its byte 24."""
assert [MARKET_DATA.fields[f][1] for f in ("price", "instrument", "kind")] == [24, 56, 62]
_U63: Final = 1 << 63


class Rejections:
    """Rejections counted per (instrument, reason); each logged naming its book, rate-limited per book and reason."""

    __slots__ = ("_names", "_tally", "counts")

    def __init__(self, tally: ErrorTally, names: dict[int, str]) -> None:
        self._tally = tally
        self._names = {**names, VENUE_WIDE: "*"}  # instrument id -> venue symbol
        self.counts: dict[tuple[int, str], int] = {}

    def __call__(self, instrument: int, reason: str, detail: str) -> None:
        key = (instrument, reason)
        self.counts[key] = self.counts.get(key, 0) + 1
        self._tally(reason, detail, key=self.name(instrument))

    def name(self, instrument: int) -> str:
        return self._names.get(instrument, f"#{instrument}")

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class QuoteGuard:
    """Checks parser rows in place; keeps the last good BBO mid per instrument for the jump check."""

    __slots__ = ("_confirm", "_held", "_jump", "_max_price", "_max_qty", "_ref", "_reject")

    def __init__(self, cfg: FeedConfig, reject: Rejections) -> None:
        self._reject = reject
        self._max_price = cfg.max_price
        self._max_qty = cfg.max_qty
        self._jump = cfg.max_jump_bps / 10_000.0
        self._confirm = cfg.jump_confirm_quotes
        self._ref: dict[int, float] = {}  # instrument -> bid + ask of the last good BBO
        self._held: dict[int, tuple[float, int]] = {}  # instrument -> (bid + ask held back, quotes agreeing since)

    def rows(self, out: np.ndarray, lo: int, hi: int) -> int:
        """Hot path: check rows [lo, hi); rejected rows are dropped (later ones move up); returns the new end.

        The common case is one chained compare per pair and one dict lookup for the jump reference;
        anything unusual (a bad value, a jump, a held quote) takes the slow path that names the reason.
        """
        end, max_price, max_qty, jump = lo, self._max_price, self._max_qty, self._jump
        refs, held = self._ref, self._held
        for row in range(lo, hi):
            p, q, p2, q2, inst, kind = _QUOTE(out, (row << 6) + 24)
            if kind == _TRADE:
                ok = MIN_PRICE <= p <= max_price and 0.0 < q <= max_qty
            else:  # BBO: both sides valid, bid < ask, mid within max_jump_bps of the last good one
                mid2 = p + p2
                ref = refs.get(inst, 0.0)
                ok = (MIN_PRICE <= p < p2 <= max_price and 0.0 < q <= max_qty and 0.0 < q2 <= max_qty
                      and abs(mid2 - ref) <= ref * jump and not held)
                if ok:
                    refs[inst] = mid2
            reason = None if ok else self._check(p, q, p2, q2, inst, kind)
            if reason is None:
                if end != row:
                    out[end] = out[row]
                end += 1
            else:
                self._reject(inst, reason, f"{Kind(kind).name} {p!r}/{q!r} {p2!r}/{q2!r}")
        return end

    def _check(self, p: float, q: float, p2: float, q2: float, inst: int, kind: int) -> str | None:
        """Slow path: why a row fails, or None after the jump bookkeeping for a first or returning quote."""
        max_price, max_qty = self._max_price, self._max_qty
        reason = level_problem(p, q, max_price, max_qty)
        if kind == _TRADE or reason is not None:
            return reason
        reason = level_problem(p2, q2, max_price, max_qty)
        if reason is not None:
            return reason
        return CROSSED if p >= p2 else self._jumped(inst, p + p2)

    def _jumped(self, instrument: int, mid2: float) -> str | None:
        ref, jump = self._ref.get(instrument, 0.0), self._jump
        if ref == 0.0 or abs(mid2 - ref) <= ref * jump:
            self._ref[instrument] = mid2
            if self._held:
                self._held.pop(instrument, None)
            return None
        held = self._held.get(instrument)
        agreeing = held[1] + 1 if held is not None and abs(mid2 - held[0]) <= held[0] * jump else 0
        if agreeing >= self._confirm:
            self._ref[instrument] = mid2
            del self._held[instrument]
            return None
        self._held[instrument] = (mid2, agreeing)
        return JUMP

    def rebase(self, instrument: int, bid: float, ask: float) -> None:
        """The instrument's book was rebuilt from a snapshot: its top is the new reference."""
        self._ref[instrument] = bid + ask
        self._held.pop(instrument, None)


def level_problem(price: float, qty: float, max_price: float, max_qty: float) -> str | None:
    """Why a price/size pair may not be published, or None (the fast path is one chained compare each)."""
    if MIN_PRICE <= price <= max_price and 0.0 < qty <= max_qty:
        return None
    for value in (price, qty):
        if value != value or value in (float("inf"), float("-inf")):
            return NOT_FINITE
    return NOT_POSITIVE if price <= 0.0 or qty <= 0.0 else OUT_OF_RANGE


def book_problem(msg: BookMsg, max_levels: int) -> str | None:
    """Why a book message cannot be applied at all (wrong types, absurd level counts), or None."""
    if type(msg.first) is not int or type(msg.last) is not int or type(msg.ts_exchange_ns) is not int:
        return BAD_BOOK_MSG
    if not (-1 <= msg.last < _U63 and 0 <= msg.ts_exchange_ns < _U63):  # what the record fields can hold
        return BAD_BOOK_MSG
    if type(msg.bids) is not list or type(msg.asks) is not list:
        return BAD_BOOK_MSG
    if len(msg.bids) > max_levels or len(msg.asks) > max_levels:
        return LEVELS
    return None


def shape(msg: BookMsg) -> str:
    """A bad book message in a few words, for the log."""
    sides = "/".join(str(len(side)) if type(side) is list else type(side).__name__ for side in (msg.bids, msg.asks))
    return f"ids {msg.first!r:.40}..{msg.last!r:.40}, {sides} levels"
