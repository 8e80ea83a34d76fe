"""The simulator's matching engine and account (kairos/sim/exchange.py), on a real SimMarket book."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from kairos import config
from kairos.records import Side, Venue
from kairos.sim.exchange import Refusal, SimExchange, SimRefused, Status
from kairos.sim.market import SimMarket, build_specs

D = Decimal
SYMBOL = "BTCUSDT"


@pytest.fixture
def market() -> SimMarket:
    settings = config.load(env={})
    return SimMarket(build_specs(settings.instruments, settings.sim), settings.sim, lambda event: None)


def _exchange(market: SimMarket, post_only_rejects: bool = True) -> SimExchange:
    return SimExchange(Venue.BINANCE, market, {"BTCUSDT": ("BTC", "USDT"), "ETHUSDT": ("ETH", "USDT")},
                       {"USDT": 100000.0, "BTC": 1.0}, (8.0, 10.0), post_only_rejects, 1000)


def _touch(market: SimMarket) -> tuple[D, D]:
    bid, ask = market.best(Venue.BINANCE, SYMBOL)
    return bid.price, ask.price


def test_ioc_buy_takes_book_liquidity_and_settles_exactly(market: SimMarket) -> None:
    ex = _exchange(market)
    _, ask = _touch(market)
    order = ex.place("a", SYMBOL, Side.BUY, "LIMIT", "IOC", ask + D("50"), D("0.005"))
    assert order.status in (Status.FILLED, Status.EXPIRED) and order.filled > 0
    assert all(price <= ask + 50 for price, *_ in order.fills)
    fee = order.filled * D("0.001")                                   # taker 10 bps, in the asset received
    assert order.fee == fee and order.fee_asset == "BTC"
    assert ex.balances()["USDT"] == (D("100000") - order.quote, 0)
    assert ex.balances()["BTC"] == (D("1") + order.filled - fee, 0)


def test_fok_that_cannot_fill_completely_expires_untouched(market: SimMarket) -> None:
    ex = _exchange(market)
    _, ask = _touch(market)
    before = market.book(Venue.BINANCE, SYMBOL, 5)
    order = ex.place("f", SYMBOL, Side.BUY, "LIMIT", "FOK", ask, D("1"))     # far more than the touch holds
    assert (order.status, order.filled, order.fills) == (Status.EXPIRED, 0, [])
    assert market.book(Venue.BINANCE, SYMBOL, 5).asks == before.asks
    assert ex.balances()["USDT"] == (D("100000"), 0)


def test_resting_order_locks_and_cancel_releases(market: SimMarket) -> None:
    ex = _exchange(market)
    bid, _ = _touch(market)
    price = bid - D("100")
    order = ex.place("g", SYMBOL, Side.BUY, "LIMIT", "GTC", price, D("0.01"))
    assert order.status is Status.NEW and ex.open_orders(SYMBOL) == [order]
    assert ex.balances()["USDT"] == (D("100000") - price * D("0.01"), price * D("0.01"))
    assert ex.cancel(SYMBOL, "g").status is Status.CANCELED
    assert ex.balances()["USDT"] == (D("100000"), 0)
    with pytest.raises(SimRefused) as closed:
        ex.cancel(SYMBOL, "g")
    assert closed.value.refusal is Refusal.ORDER_CLOSED


def test_crossed_resting_order_fills_at_its_own_price_as_maker(market: SimMarket) -> None:
    ex = _exchange(market)
    bid, _ = _touch(market)
    price = bid - D("30")
    ex.place("m", SYMBOL, Side.BUY, "LIMIT", "GTC", price, D("0.2"))
    market.set_mid(Venue.BINANCE, SYMBOL, float(price) - 6)
    for _ in range(200):
        market.step()
        if ex.get(SYMBOL, "m").status is Status.FILLED:
            break
    order = ex.get(SYMBOL, "m")
    assert order.status is Status.FILLED and len(order.fills) >= 2           # filled over several moves
    assert all(px == price for px, *_ in order.fills) and order.quote == price * D("0.2")
    assert order.fee == D("0.2") * D("0.0008")                               # maker 8 bps
    assert ex.balances()["USDT"] == (D("100000") - price * D("0.2"), 0)


@pytest.mark.parametrize(("rejects", "expected"), [(True, None), (False, Status.CANCELED)])
def test_post_only_that_would_take(market: SimMarket, rejects: bool, expected: Status | None) -> None:
    ex = _exchange(market, post_only_rejects=rejects)
    _, ask = _touch(market)
    if expected is None:
        with pytest.raises(SimRefused) as refused:
            ex.place("p", SYMBOL, Side.BUY, "LIMIT_MAKER", "GTC", ask, D("0.01"))
        assert refused.value.refusal is Refusal.WOULD_TAKE
    else:
        assert ex.place("p", SYMBOL, Side.BUY, "LIMIT_MAKER", "GTC", ask, D("0.01")).status is expected
    assert ex.balances()["USDT"] == (D("100000"), 0)


def test_market_sell_locks_base_and_pays_quote_minus_fee(market: SimMarket) -> None:
    ex = _exchange(market)
    order = ex.place("s", SYMBOL, Side.SELL, "MARKET", "GTC", None, D("0.01"))
    assert order.status is Status.FILLED and order.fee_asset == "USDT"
    assert ex.balances()["BTC"] == (D("0.99"), 0)
    assert ex.balances()["USDT"] == (D("100000") + order.quote - order.quote * D("0.001"), 0)


@pytest.mark.parametrize(("price", "qty", "refusal"), [
    (D("60000.001"), D("0.01"), Refusal.PRICE_FILTER), (D("60000"), D("0.000015"), Refusal.LOT_SIZE),
    (D("60000"), D("0.00001"), Refusal.LOT_SIZE), (D("1"), D("0.001"), Refusal.NOTIONAL),
    (D("50000"), D("5"), Refusal.INSUFFICIENT_BALANCE),
])
def test_refusals(market: SimMarket, price: D, qty: D, refusal: Refusal) -> None:
    with pytest.raises(SimRefused) as refused:
        _exchange(market).place("r", SYMBOL, Side.BUY, "LIMIT", "GTC", price, qty)
    assert refused.value.refusal is refusal


def test_duplicate_open_id_unknown_symbol_and_unknown_order(market: SimMarket) -> None:
    ex = _exchange(market)
    bid, _ = _touch(market)
    ex.place("d", SYMBOL, Side.BUY, "LIMIT", "GTC", bid - 100, D("0.01"))
    for call, refusal in ((lambda: ex.place("d", SYMBOL, Side.BUY, "LIMIT", "GTC", bid - 100, D("0.01")),
                           Refusal.DUPLICATE),
                          (lambda: ex.place("x", "DOGEUSDT", Side.BUY, "LIMIT", "GTC", D(1), D(1)),
                           Refusal.UNKNOWN_SYMBOL),
                          (lambda: ex.cancel(SYMBOL, "nope"), Refusal.UNKNOWN_ORDER)):
        with pytest.raises(SimRefused) as refused:
            call()
        assert refused.value.refusal is refusal


def test_snapshot_copies_every_field_but_the_fills(market: SimMarket) -> None:
    """The hot path's hand-written copy must stay equal to ``replace(order, fills=[])`` as SimOrder grows."""
    ex = _exchange(market)
    _, ask = _touch(market)
    order = ex.place("s", SYMBOL, Side.BUY, "LIMIT", "IOC", ask + D("50"), D("0.005"))
    assert order.fills and order.snapshot() == replace(order, fills=[])
    assert order.snapshot().fills is not order.fills


def test_touch_is_the_far_side_of_best_for_each_aggressor(market: SimMarket) -> None:
    bid, ask = _touch(market)
    assert market.touch(Venue.BINANCE, SYMBOL, Side.BUY) == ask
    assert market.touch(Venue.BINANCE, SYMBOL, Side.SELL) == bid
