"""Venue balance pushes against the book's own fill accounting: every arrival order converges, no double count."""

from __future__ import annotations

import itertools

import pytest

from kairos.gate.book import Book
from kairos.gate.orders import Order
from kairos.instruments import InstrumentTable
from kairos.records import OrderType, Side, Tif, Venue
from kairos.risk import Grid, RiskState

from ..risk.conftest import INSTRUMENTS

MS = 1_000_000
START = {"USDT": (1000.0, 0.0), "BTC": (1.0, 0.0)}


@pytest.fixture
def book() -> Book:
    b = Book(RiskState.empty(Grid(InstrumentTable(INSTRUMENTS)), 10))
    b.set_balances(Venue.BINANCE, START)
    return b


def buy(book: Book, qty: float = 2.0, price: float = 100.0) -> Order:
    k = book.grid.key(Venue.BINANCE, 1)
    o = Order(b"b1", Venue.BINANCE, 1, k, 0, Side.BUY, OrderType.LIMIT, Tif.GTC, price, qty, price, 0, 0)
    book.open(o)
    return o


def totals(book: Book) -> tuple[float, float]:
    k = book.grid.key(Venue.BINANCE, 1)
    return book.s.balance[book.grid.base_slot[k]], book.s.balance[book.grid.quote_slot[k]]


def test_a_push_after_its_fill_sets_the_venue_numbers_and_keeps_reservations(book: Book) -> None:
    order = buy(book)
    reserved = list(book.s.reserved)
    book.fill(order, 100.0, 1.0, 0.001, "BTC", 0, 1000 * MS)     # fee 0.001 BTC
    book.settle(Venue.BINANCE, {})
    assert totals(book) == pytest.approx((1.999, 900.0))
    # the venue also knows 100 USDT locked for the rest of the order, and rounds the fee its own way
    applied = book.settle(Venue.BINANCE, {"BTC": (1.9989, 0.0, 1000), "USDT": (800.0, 100.0, 1000)})
    assert applied == 2 and totals(book) == pytest.approx((1.9989, 900.0))
    k = book.grid.key(Venue.BINANCE, 1)
    assert book.s.reserved[book.grid.quote_slot[k]] == pytest.approx(reserved[book.grid.quote_slot[k]] - 100.0)


@pytest.mark.parametrize("push_first", [True, False])
def test_fill_and_push_in_either_order_end_at_the_venue_numbers(book: Book, push_first: bool) -> None:
    order = buy(book)
    push = {"BTC": (2.0, 0.0, 1000), "USDT": (900.0, 0.0, 1000)}
    if push_first:                                   # OKX: account before orders; applied at once
        book.settle(Venue.BINANCE, push)
        assert totals(book) == pytest.approx((2.0, 900.0))
    book.fill(order, 100.0, 1.0, 0.0, "BTC", 0, 1000 * MS)
    book.settle(Venue.BINANCE, {} if push_first else push)
    assert totals(book) == pytest.approx((2.0, 900.0)), "the fill is counted once"


def test_a_push_older_than_an_applied_fill_waits_for_the_next(book: Book) -> None:
    order = buy(book)
    book.fill(order, 100.0, 1.0, 0.0, "BTC", 0, 2000 * MS)
    assert book.settle(Venue.BINANCE, {"BTC": (1.0, 0.0, 1500), "USDT": (1000.0, 0.0, 1500)}) == 0
    assert totals(book) == pytest.approx((2.0, 900.0)), "last known + the fill, not the stale push"
    assert book.pushes.of(Venue.BINANCE)["held"] == 2
    assert book.settle(Venue.BINANCE, {"BTC": (2.0, 0.0, 2000), "USDT": (900.0, 0.0, 2000)}) == 2
    assert book.settle(Venue.BINANCE, {"BTC": (1.5, 0.0, 1900)}) == 0 and book.pushes.of(Venue.BINANCE)["stale"] == 1


def test_a_deposit_shows_with_no_fill_and_a_fill_without_venue_time_holds_older_pushes(book: Book) -> None:
    assert book.settle(Venue.BINANCE, {"USDT": (1500.0, 0.0, 10)}) == 1
    assert totals(book) == pytest.approx((1.0, 1500.0))
    assert book.settle(Venue.BINANCE, {"DOGE": (5.0, 0.0, 11)}) == 0 and book.pushes.of(Venue.BINANCE)["foreign"] == 1
    order = buy(book)
    book.fill(order, 100.0, 1.0, 0.0, "BTC", 3000 * MS, 0)       # no venue time: the gate's wall clock stands in
    assert book.settle(Venue.BINANCE, {"USDT": (1500.0, 0.0, 2999)}) == 0
    assert totals(book) == pytest.approx((2.0, 1400.0))


def test_a_rest_snapshot_supersedes_pushes_kept_before_it(book: Book) -> None:
    book.pushes.pushed(Venue.BINANCE, {"USDT": (5.0, 0.0, 10)})
    book.set_balances(Venue.BINANCE, {"USDT": (700.0, 0.0), "BTC": (1.0, 0.0)})
    assert book.settle(Venue.BINANCE, {}) == 0 and totals(book) == pytest.approx((1.0, 700.0))


@pytest.mark.parametrize("order_of_events", list(itertools.permutations(["f1", "p1", "f2", "p2"])))
def test_every_arrival_order_of_two_fills_and_their_pushes_converges(book: Book, order_of_events: tuple) -> None:
    """Venue: fill 1 at t=1000, push 1 (after it), fill 2 at t=2000, push 2. The gate may see them in any order,
    a settle after each event (one report batch each): the end state is the venue's, fills counted once."""
    order = buy(book)
    events = {"f1": lambda: book.fill(order, 100.0, 0.5, 0.0, "BTC", 0, 1000 * MS),
              "f2": lambda: book.fill(order, 100.0, 0.5, 0.0, "BTC", 0, 2000 * MS),
              "p1": lambda: {"BTC": (1.5, 0.0, 1000), "USDT": (950.0, 0.0, 1000)},
              "p2": lambda: {"BTC": (2.0, 0.0, 2000), "USDT": (900.0, 0.0, 2000)}}
    for name in order_of_events:
        pushed = events[name]()
        book.settle(Venue.BINANCE, pushed or {})
    assert totals(book) == pytest.approx((2.0, 900.0))


@pytest.mark.parametrize("free, locked", [(float("nan"), 0.0), (float("inf"), 0.0), (-1.0, 0.0), (1.0, -0.5)])
def test_a_hostile_amount_is_ignored_and_counted(book: Book, free: float, locked: float) -> None:
    assert book.settle(Venue.BINANCE, {"USDT": (free, locked, 10)}) == 0
    assert totals(book) == pytest.approx((1.0, 1000.0)) and book.pushes.of(Venue.BINANCE)["bad"] == 1
