"""A Bybit ``wallet`` push that reaches the gate late changes nothing: it carries the time of its change
(``creationTime``), so the book keeps the newer pushes it arrived after.

The arrival order is the one that failed the live gate test (tests/process/test_gate_streams.py, bybit): the
wallet of a fill held back by the simulator's reorder fault reached the gate after the deposit's wallet and
the cancel's; stamped with the gate's clock on arrival, it replaced the deposit in the book for good.
Simulator (render, wrap), client parser, `TrackerSink` and `Book` are the real ones; only the exchange's clock
is a counter, so every change has its own millisecond.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import orjson
import pytest

from kairos import config
from kairos.execution.state import OrderTracker
from kairos.execution.stream import TrackerSink
from kairos.execution.stream_bybit import BybitStream
from kairos.gate.book import Book
from kairos.gate.orders import Order
from kairos.instruments import InstrumentTable
from kairos.records import OrderType, Side, Tif, Venue
from kairos.risk import Grid, RiskState
from kairos.sim import exchange as sim_exchange
from kairos.sim.exchange import OrderUpdate
from kairos.sim.market import SimMarket, build_specs
from kairos.sim.private import PrivateSession
from kairos.sim.private_bybit import BybitPrivate
from kairos.sim.rest_trading import register_trading_routes
from kairos.sim.router import Router, now_ms

KEYS = {"KAIROS__VENUES__BYBIT__API_KEY": "k", "KAIROS__VENUES__BYBIT__API_SECRET": "s"}
BYBIT = int(Venue.BYBIT)


@pytest.fixture
def venue(monkeypatch: pytest.MonkeyPatch) -> tuple[BybitPrivate, Any, list[Any]]:
    """The simulator's Bybit account and private dialect; the changes it makes, in order."""
    clock = itertools.count(now_ms(), 5)
    monkeypatch.setattr(sim_exchange, "now_ms", lambda: next(clock))
    settings = config.load(env=KEYS)
    market = SimMarket(build_specs(settings.instruments, settings.sim), settings.sim, lambda event: None)
    trading = next(d for d in register_trading_routes(Router(), market, settings) if d.venue is Venue.BYBIT)
    private = BybitPrivate(settings.venues["bybit"], settings.sim)
    private.trading = trading
    changes: list[Any] = []
    trading.exchange.add_listener(changes.append)
    return private, trading, changes


def _gate(settings: config.Settings, balances: dict[str, tuple[Decimal, Decimal]]) -> Book:
    """A gate's book as reconciliation leaves it: the venue's REST balances."""
    book = Book(RiskState.empty(Grid(InstrumentTable(settings.instruments)), 10))
    book.set_balances(BYBIT, {a: (float(free), float(locked)) for a, (free, locked) in balances.items()})
    return book


def _apply_fill(book: Book, fill: OrderUpdate) -> None:
    """The fill as REST reconciliation found it while the stream was down: at the venue's trade time."""
    px, qty, fee, _ = fill.last  # type: ignore[misc]  # a TRADE change
    k = book.grid.key(BYBIT, 1)
    order = Order(fill.order.client_order_id.encode(), BYBIT, 1, k, 0, Side.BUY, OrderType.LIMIT, Tif.IOC,
                  float(px), float(qty), float(px), 0, 0)
    book.open(order)
    book.fill(order, float(px), float(qty), float(fee), fill.order.fee_asset, now_ms() * 10**6,
              fill.ts_ms * 10**6)


def _totals(book: Book) -> dict[str, float]:
    k = book.grid.key(BYBIT, 1)
    return {"BTC": book.s.balance[book.grid.base_slot[k]], "USDT": book.s.balance[book.grid.quote_slot[k]]}


def test_a_fills_wallet_after_the_deposits_and_the_cancels_leaves_the_venues_totals(venue: tuple) -> None:
    private, trading, changes = venue
    settings, ex = config.load(env=KEYS), trading.exchange
    book = _gate(settings, ex.balances())
    bid, ask = trading.market.best(Venue.BYBIT, "BTCUSDT")
    ex.place("f1", "BTCUSDT", Side.BUY, "LIMIT", "IOC", ask.price, Decimal("0.01"))          # fills at once
    ex.place("r1", "BTCUSDT", Side.BUY, "LIMIT", "GTC", bid.price - 100, Decimal("0.01"))    # rests
    ex.transfer("USDT", Decimal("1234.5"))
    ex.cancel("BTCUSDT", "r1")
    fill = next(c for c in changes if isinstance(c, OrderUpdate) and c.last is not None)
    _apply_fill(book, fill)
    late = [c for c in changes if c is not fill] + [fill]       # the fill's frames held back past the rest
    session, client = PrivateSession(None, 1), BybitStream(settings.venues["bybit"], settings.execution,
                                                           None, now_ms)  # type: ignore[arg-type]  # parse only
    sink = TrackerSink(OrderTracker(lambda report: None, None), lambda: None, lambda used: None)  # type: ignore[arg-type]
    for change in late:
        render = private.render if isinstance(change, OrderUpdate) else private.render_balance
        for channel, event in render(change):
            frame = private.wrap(session, channel, event)
            assert orjson.loads(frame)["creationTime"] == change.ts_ms, "the change's time, not the sending's"
            parsed = client.parse(frame)
            if parsed.balances:
                sink.on_balances(parsed.balances, parsed.deltas, parsed.balances_ms)
        book.settle(BYBIT, sink.take_pushes())                  # a gate duty cycle per change
    venue_totals = {a: float(free + locked) for a, (free, locked) in ex.balances().items()}
    assert _totals(book) == pytest.approx({a: venue_totals[a] for a in ("BTC", "USDT")}, rel=1e-12)
    assert book.pushes.of(BYBIT)["stale"] == 2, "the late wallet's two coins, ignored"

