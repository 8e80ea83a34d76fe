"""Simulated venue books in exact integers (price in ticks, size in lots) and the events they emit.

A `SimBook` changes only through `apply`, which also advances its update id; every `DepthEvent`
carries the id range it covers, so the depth stream and a REST snapshot taken between two events
are always coherent (Binance ``U``/``u``/``lastUpdateId``, OKX ``prevSeqId``/``seqId``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from kairos.records import Side, Venue

BID: Final = 0
ASK: Final = 1


@dataclass(frozen=True, slots=True)
class BookStyle:
    """How one venue's books look: a public dialect's data (``style``), read by kairos/sim/market.py."""

    tick_scale: int  # tick = tick_scale x 1e-6 of the start price
    fixed_decimals: int  # Binance writes "0.35210000" (8); 0 = minimal form like OKX "30243.5"
    first_id: int  # the update id a new book starts from
    stride: int  # update ids advance this much per change (1 = consecutive; 0 = one per message, Bybit's u)


@dataclass(frozen=True, slots=True)
class VenueSpec:
    """Exchange filters of one symbol on one venue, and how that venue writes numbers."""

    venue: Venue
    symbol: str  # venue symbol: BTCUSDT / BTC-USDT
    instrument: str  # canonical symbol: BTC-USDT
    base: str
    quote: str
    tick: Decimal
    lot: Decimal
    min_qty: Decimal
    min_notional: Decimal
    style: BookStyle

    def px(self, ticks: int) -> str:
        return _fmt(Decimal(ticks) * self.tick, self.style.fixed_decimals)

    def sz(self, lots: int) -> str:
        return _fmt(Decimal(lots) * self.lot, self.style.fixed_decimals)

    def ticks(self, price: Decimal) -> int:
        return int(price / self.tick)

    def lots(self, qty: Decimal) -> int:
        return int(qty / self.lot)

    def dec(self, value: Decimal | str) -> str:
        return _fmt(Decimal(value), self.style.fixed_decimals)


def _fmt(value: Decimal, fixed: int) -> str:
    return f"{value:.{fixed}f}" if fixed else f"{value.normalize():f}"


@dataclass(frozen=True, slots=True)
class Level:
    price: Decimal
    qty: Decimal


@dataclass(frozen=True, slots=True)
class BookView:
    """A consistent copy of one book: best first on both sides, with the id it is valid at."""

    venue: Venue
    symbol: str
    update_id: int
    ts_ms: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


@dataclass(frozen=True, slots=True)
class DepthEvent:
    """Level changes (absolute lots, 0 = delete) covering update ids ``prev_id+1 .. last_id``."""

    spec: VenueSpec
    prev_id: int
    last_id: int
    ts_ms: int
    bids: tuple[tuple[int, int], ...]
    asks: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class TopEvent:
    spec: VenueSpec
    update_id: int
    ts_ms: int
    bid: tuple[int, int]
    ask: tuple[int, int]


@dataclass(frozen=True, slots=True)
class TradeEvent:
    spec: VenueSpec
    trade_id: int
    ts_ms: int
    ticks: int
    lots: int
    aggressor: Side


Event = DepthEvent | TopEvent | TradeEvent


class SimBook:
    """Two sides of {ticks: lots}; not thread-safe (SimMarket holds the lock)."""

    __slots__ = ("sides", "spec", "update_id")

    def __init__(self, spec: VenueSpec, first_id: int) -> None:
        self.spec = spec
        self.sides: tuple[dict[int, int], dict[int, int]] = ({}, {})
        self.update_id = first_id

    def best(self, side: int) -> tuple[int, int]:
        levels = self.sides[side]
        if not levels:
            return (0, 0)
        price = max(levels) if side == BID else min(levels)
        return (price, levels[price])

    def price(self, side: int) -> Decimal:
        """The best price of a side that has levels, as a Decimal (no Level built)."""
        levels = self.sides[side]
        return Decimal(max(levels) if side == BID else min(levels)) * self.spec.tick

    def ranked(self, side: int) -> list[int]:
        """Prices best first."""
        return sorted(self.sides[side], reverse=side == BID)

    def apply(self, changes: tuple[dict[int, int], dict[int, int]], stride: int, ts_ms: int) -> DepthEvent | None:
        """Apply only real changes; returns the event covering them (None if nothing changed)."""
        real: list[tuple[tuple[int, int], ...]] = []
        for side, wanted in enumerate(changes):
            levels = self.sides[side]
            done = tuple((p, q) for p, q in sorted(wanted.items()) if levels.get(p, 0) != q)
            for price, lots in done:
                if lots:
                    levels[price] = lots
                else:
                    del levels[price]
            real.append(done)
        count = len(real[BID]) + len(real[ASK])
        if not count:
            return None
        prev = self.update_id
        self.update_id = prev + max(1, count * stride)
        return DepthEvent(self.spec, prev, self.update_id, ts_ms, real[BID], real[ASK])

    def level(self, side: int, price: int) -> Level:
        return Level(Decimal(price) * self.spec.tick, Decimal(self.sides[side][price]) * self.spec.lot)

    def view(self, depth: int, ts_ms: int) -> BookView:
        sides = [tuple(self.level(s, p) for p in self.ranked(s)[:depth]) for s in (BID, ASK)]
        return BookView(self.spec.venue, self.spec.symbol, self.update_id, ts_ms, sides[BID], sides[ASK])
