"""The simulator's market: one seeded random-walk book per (venue, symbol), shared by WS, REST and matching.

Thread-safe API for the simulator's own dialects and for the executors' matching engine
(kairos/sim/exchange.py)::

    market.symbols(venue) -> list[str]                 # venue symbols, e.g. ["BTCUSDT", "ETHUSDT"]
    market.spec(venue, symbol) -> VenueSpec            # tick, lot, min_qty, min_notional (Decimal)
    market.book(venue, symbol, depth=20) -> BookView   # consistent copy, best first, with update_id
    market.best(venue, symbol) -> tuple[Level, Level] | None    # (best bid, best ask)
    market.touch(venue, symbol, side) -> Decimal | None         # what an aggressor on `side` meets first
    market.take(venue, symbol, side, qty, limit) -> list[Level] # aggressor `side` consumes liquidity
    market.add_listener(fn)                             # fn(venue, symbol) after every change
    market.set_mid(venue, symbol, price | None)         # steer a book (tests, demos); None = follow the walk

Every change, from the walk or from `take`, is applied under one lock and handed, in order, to
the injected ``sink`` (the WebSocket hub), so what clients see and what REST returns always agree.
Symbols unknown to a venue raise KeyError.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable
from decimal import Decimal

from kairos.config import InstrumentConfig, SimConfig
from kairos.records import Side, Venue
from kairos.sim.book import ASK, BID, BookView, Event, Level, SimBook, TopEvent, TradeEvent, VenueSpec
from kairos.sim.router import now_ms
from kairos.venues import VENUES, resolve

Sink = Callable[[Event], None]
Listener = Callable[[Venue, str], None]


def build_specs(instruments: tuple[InstrumentConfig, ...], sim: SimConfig) -> list[tuple[VenueSpec, float]]:
    """Filters derived from the start price (tick ~ 1e-6 of price, times the venue's ``tick_scale``), for every
    venue of the table that lists the instrument, in the style of its public dialect."""
    styles = [(row.venue, row.name, resolve(row.sim_public).style) for row in VENUES]
    out = []
    for inst in instruments:
        price = sim.start_prices.get(inst.symbol, 100.0)
        magnitude = math.floor(math.log10(price))
        tick = Decimal(1).scaleb(magnitude - 6)
        lot = Decimal(1).scaleb(-(magnitude + 1))
        for venue, venue_name, style in styles:
            name = inst.symbols.get(venue_name)
            if name:
                spec = VenueSpec(venue, name, inst.symbol, inst.base, inst.quote, tick * style.tick_scale, lot,
                                 lot * 10, Decimal(5), style)
                out.append((spec, price))
    return out


class SimMarket:
    __slots__ = ("_books", "_cfg", "_dislocation", "_fair", "_listeners", "_lock", "_rng", "_sink", "_steer",
                 "_trade_id")

    def __init__(self, specs: list[tuple[VenueSpec, float]], cfg: SimConfig, sink: Sink) -> None:
        self._cfg = cfg
        self._sink = sink
        self._rng = random.Random(cfg.seed)
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self._books: dict[tuple[Venue, str], SimBook] = {}
        self._fair: dict[str, float] = {}
        self._dislocation: dict[tuple[Venue, str], float] = {}
        self._steer: dict[tuple[Venue, str], float] = {}
        self._trade_id = 100_000
        for spec, price in specs:
            self._fair.setdefault(spec.instrument, price)
            book = SimBook(spec, spec.style.first_id)
            self._books[(spec.venue, spec.symbol)] = book
            self._seed(book, price)

    # -- read side -------------------------------------------------------------------------------
    def symbols(self, venue: Venue) -> list[str]:
        return [symbol for (v, symbol) in self._books if v == venue]

    def spec(self, venue: Venue, symbol: str) -> VenueSpec:
        return self._books[(venue, symbol)].spec

    def book(self, venue: Venue, symbol: str, depth: int = 20) -> BookView:
        with self._lock:
            return self._books[(venue, symbol)].view(depth, now_ms())

    def best(self, venue: Venue, symbol: str) -> tuple[Level, Level] | None:
        """The touch (a linear scan per side: every open sim order asks on every step)."""
        with self._lock:
            book = self._books[(venue, symbol)]
            (bid, _), (ask, _) = book.best(BID), book.best(ASK)
            return (book.level(BID, bid), book.level(ASK, ask)) if bid and ask else None

    def touch(self, venue: Venue, symbol: str, side: Side) -> Decimal | None:
        """The price an aggressor on ``side`` meets first (best ask for a BUY), read from that side alone: every
        order asks this, on every step for a resting one. None if either side is empty, as `best`."""
        with self._lock:
            book = self._books[(venue, symbol)]
            if not book.sides[BID] or not book.sides[ASK]:
                return None
            return book.price(ASK if side is Side.BUY else BID)

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def set_mid(self, venue: Venue, symbol: str, price: float | None) -> None:
        with self._lock:
            self._books[(venue, symbol)]  # KeyError for unknown symbols, before any change
            if price is None:
                self._steer.pop((venue, symbol), None)
            else:
                self._steer[(venue, symbol)] = price

    # -- write side ------------------------------------------------------------------------------
    def step(self) -> None:
        """One random-walk move of every book (the WS hub calls this at ``sim.rate_hz``)."""
        with self._lock:
            for inst in self._fair:
                self._fair[inst] *= math.exp(self._rng.gauss(0.0, self._cfg.volatility_bps * 1e-4))
            for key, book in self._books.items():
                noise = self._rng.gauss(0.0, self._cfg.volatility_bps * 1e-4) + self._dislocate(key)
                self._walk(book, self._steer.get(key, self._fair[book.spec.instrument] * (1.0 + noise)))
        for venue, symbol in list(self._books):
            self._notify(venue, symbol)

    def _dislocate(self, key: tuple[Venue, str]) -> float:
        """A venue-local price shock that decays: what gives cross-venue arbitrage something to find."""
        cfg = self._cfg
        offset = self._dislocation.get(key, 0.0) * cfg.dislocation_decay
        if cfg.dislocation_probability and self._rng.random() < cfg.dislocation_probability:
            offset = self._rng.choice((-1.0, 1.0)) * cfg.dislocation_bps * 1e-4
        self._dislocation[key] = offset
        return offset

    def take(self, venue: Venue, symbol: str, side: Side, qty: Decimal, limit: Decimal | None) -> list[Level]:
        """Aggressor ``side`` consumes resting liquidity up to ``limit`` (None = market); returns fills."""
        with self._lock:
            book = self._books[(venue, symbol)]
            spec = book.spec
            opposite = ASK if side == Side.BUY else BID
            remaining, trades, changes = spec.lots(qty), [], ({}, {})
            for price in book.ranked(opposite):
                bound = None if limit is None else spec.ticks(limit)
                crosses = bound is None or (price <= bound if side == Side.BUY else price >= bound)
                if remaining <= 0 or not crosses:
                    break
                done = min(remaining, book.sides[opposite][price])
                remaining -= done
                changes[opposite][price] = book.sides[opposite][price] - done
                trades.append((price, done))
            self._commit(book, changes, trades, side)
        fills = [Level(Decimal(p) * spec.tick, Decimal(q) * spec.lot) for p, q in trades]
        self._notify(venue, symbol)
        return fills

    # -- internals -------------------------------------------------------------------------------
    def _seed(self, book: SimBook, price: float) -> None:
        grid = _grid(book.spec, price)
        mid = round(price / float(book.spec.tick) / grid)
        for i in range(1, self._cfg.levels + 1):
            book.sides[BID][(mid - i) * grid] = self._rng.randint(1, 200) * 10
            book.sides[ASK][(mid + i) * grid] = self._rng.randint(1, 200) * 10
        book.update_id += 1

    def _walk(self, book: SimBook, center: float) -> None:
        """Move the inside to ``center`` on a 0.1 bp grid, churn a few levels, maybe trade at the touch."""
        rng, spec, levels = self._rng, book.spec, self._cfg.levels
        grid = _grid(spec, center)
        mid = round(center / float(spec.tick) / grid)
        changes: tuple[dict[int, int], dict[int, int]] = ({}, {})
        for side, sign in ((BID, -1), (ASK, 1)):
            for price in book.sides[side]:
                distance = (price - mid * grid) * sign
                if distance <= 0 or distance > (levels + 1) * grid:
                    changes[side][price] = 0  # crossed the new mid, or fell off the far end
            for _ in range(rng.randint(2, 5)):
                price = (mid + sign * rng.randint(1, levels)) * grid
                present = book.sides[side].get(price, 0) and price not in changes[side]
                changes[side][price] = 0 if present and rng.random() < 0.3 else rng.randint(1, 400) * 10
        touch = (mid - 1) * grid, (mid + 1) * grid
        for side in (BID, ASK):
            changes[side][touch[side]] = changes[side].get(touch[side]) or book.sides[side].get(touch[side]) or 100
        trades: list[tuple[int, int]] = []
        aggressor = Side.NONE
        if rng.random() < self._cfg.trade_probability:
            side = rng.choice((BID, ASK))
            resting = changes[side][touch[side]]
            if resting > 1:
                done = rng.randint(1, resting - 1)
                changes[side][touch[side]] = resting - done
                trades.append((touch[side], done))
                aggressor = Side.SELL if side == BID else Side.BUY
        self._commit(book, changes, trades, aggressor)

    def _commit(self, book: SimBook, changes: tuple[dict[int, int], dict[int, int]],
                trades: list[tuple[int, int]], aggressor: Side) -> None:
        ts = now_ms()
        before = (book.best(BID), book.best(ASK))
        event = book.apply(changes, book.spec.style.stride, ts)
        for price, lots in trades:
            self._trade_id += 1
            self._sink(TradeEvent(book.spec, self._trade_id, ts, int(price), int(lots), aggressor))
        if event is None:
            return
        self._sink(event)
        after = (book.best(BID), book.best(ASK))
        if after != before:
            self._sink(TopEvent(book.spec, book.update_id, ts, after[0], after[1]))

    def _notify(self, venue: Venue, symbol: str) -> None:
        for listener in self._listeners:
            listener(venue, symbol)


def _grid(spec: VenueSpec, price: float) -> int:
    """Level spacing in ticks (~0.1 bp of price), so a walk step moves the inside a level or two."""
    return max(1, round(price * 1e-5 / float(spec.tick)))
