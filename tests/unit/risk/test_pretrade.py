"""Every pre-trade rule, one at a time, against a state that passes all the others."""

from __future__ import annotations

import pytest

from kairos.config import RiskConfig
from kairos.records import OrderType, RejectReason, Side, TradingState, Venue
from kairos.risk import Grid, PreTrade, RiskState, reduces

from .conftest import FEES, LIMITS, NOW

BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET = OrderType.LIMIT, OrderType.MARKET
R = RejectReason


def check(pre: PreTrade, s: RiskState, side: Side = BUY, price: float = 100.0, qty: float = 0.5,
          order_type: OrderType = LIMIT, reduce_only: bool = False, venue: Venue = Venue.BINANCE,
          instrument: int = 1) -> RejectReason:
    k = s.grid.key(venue, instrument)
    return RejectReason(pre.check(s, venue, k, side, order_type, price, qty, reduce_only, NOW))


def test_a_plain_order_passes(pre: PreTrade, state: RiskState) -> None:
    assert check(pre, state) == RejectReason.NONE
    assert check(pre, state, side=SELL, order_type=MARKET, price=0.0) == RejectReason.NONE


@pytest.mark.parametrize(("side", "order_type", "price", "qty"), [
    (Side.NONE, LIMIT, 100.0, 0.5), (BUY, 9, 100.0, 0.5), (BUY, LIMIT, 100.0, 0.0), (BUY, LIMIT, 100.0, -1.0),
])
def test_invalid_orders(pre: PreTrade, state: RiskState, side: Side, order_type: int, price: float,
                        qty: float) -> None:
    assert check(pre, state, side=side, order_type=order_type, price=price, qty=qty) == RejectReason.INVALID_ORDER


@pytest.mark.parametrize(("order_type", "price", "qty", "reason"), [
    (LIMIT, float("nan"), 0.5, R.NON_NORMAL_NUMBER), (LIMIT, float("inf"), 0.5, R.NON_NORMAL_NUMBER),
    (LIMIT, 5e-324, 0.5, R.NON_NORMAL_NUMBER), (LIMIT, 100.0, float("nan"), R.NON_NORMAL_NUMBER),
    (LIMIT, 100.0, float("inf"), R.NON_NORMAL_NUMBER), (MARKET, 0.0, 5e-324, R.NON_NORMAL_NUMBER),
    (LIMIT, 0.0, 0.5, R.TICK_SIZE), (LIMIT, -100.0, 0.5, R.TICK_SIZE), (LIMIT, 0.004, 0.5, R.TICK_SIZE),
    (LIMIT, 2e6, 0.5, R.TICK_SIZE),                         # above the venue's maxPrice
    (LIMIT, 100.0, 1e-7, R.LOT_SIZE), (LIMIT, 100.0, 0.00009, R.LOT_SIZE), (MARKET, 0.0, 0.000099, R.LOT_SIZE),
    (LIMIT, 100.0, 9000.1, R.LOT_SIZE),                     # above maxQty
    (LIMIT, 100.0, 0.049, R.MIN_NOTIONAL), (MARKET, 0.0, 0.0499, R.MIN_NOTIONAL),   # 4.9 and 4.99 < 5
])
def test_numbers_and_venue_rules_each_have_their_reason(state: RiskState, order_type: OrderType, price: float,
                                                          qty: float, reason: RejectReason) -> None:
    pre = PreTrade(RiskConfig(max_order_qty=0, max_order_notional=0, max_gross_exposure=0, price_band_bps=0,
                              max_position=0), FEES)
    state.balance[state.grid.quote_slot[state.grid.key(Venue.BINANCE, 1)]] = 1e12
    assert check(pre, state, order_type=order_type, price=price, qty=qty) == reason


def test_orders_are_rounded_to_the_venue_grid_never_more_aggressive(pre: PreTrade, state: RiskState) -> None:
    assert check(pre, state, price=100.019, qty=0.123456) == RejectReason.NONE
    assert (state.rules.price, state.rules.qty) == (100.01, 0.12345)              # buy: price down, qty down
    assert check(pre, state, side=SELL, price=100.011, qty=0.3) == RejectReason.NONE
    assert (state.rules.price, state.rules.qty) == (100.02, 0.3)                   # sell: price up
    assert check(pre, state, price=100.0 + 1e-11, qty=0.1 * 3) == RejectReason.NONE
    assert (state.rules.price, state.rules.qty) == (100.0 + 1e-11, 0.1 * 3)       # float noise is on the grid: kept
    assert check(pre, state, price=0.011, qty=1.0) == RejectReason.MIN_NOTIONAL    # 0.01 x 1 after rounding


def test_a_venue_without_rules_is_refused(pre: PreTrade, state: RiskState, grid: Grid) -> None:
    k = grid.key(Venue.BINANCE, 2)                                   # ETH: marked, but no rules loaded
    state.bid[k], state.ask[k], state.mark_ns[k] = 99.0, 101.0, NOW
    assert check(pre, state, instrument=2) == RejectReason.VENUE_UNAVAILABLE


def test_max_order_qty(pre: PreTrade, state: RiskState) -> None:
    assert check(pre, state, qty=1.0) == RejectReason.NONE
    assert check(pre, state, qty=1.01) == RejectReason.MAX_ORDER_QTY


def test_max_order_notional_uses_mark_for_market_orders(state: RiskState) -> None:
    pre = PreTrade(RiskConfig(max_order_notional=60.0, max_gross_exposure=0.0), FEES)
    assert check(pre, state, price=100.0, qty=0.6) == RejectReason.NONE
    assert check(pre, state, price=100.5, qty=0.6) == RejectReason.MAX_ORDER_NOTIONAL
    assert check(pre, state, order_type=MARKET, price=0.0, qty=0.61) == RejectReason.MAX_ORDER_NOTIONAL


def test_no_mark(pre: PreTrade, state: RiskState, grid: Grid) -> None:
    state.bid[grid.key(Venue.BINANCE, 1)] = 0.0
    assert check(pre, state) == RejectReason.NO_MARK
    assert check(pre, state, venue=Venue.OKX) == RejectReason.NONE


def test_a_mark_older_than_the_limit_is_unavailable_on_its_venue_only(state: RiskState, grid: Grid) -> None:
    pre = PreTrade(RiskConfig(mark_max_age_ms=5000), FEES)
    k = grid.key(Venue.BINANCE, 1)
    state.mark_ns[k] = NOW - 5_000_000_000
    assert check(pre, state) == RejectReason.NONE                                  # exactly 5 s: still good
    state.mark_ns[k] -= 1
    assert check(pre, state) == RejectReason.MARK_UNAVAILABLE
    assert check(pre, state, order_type=MARKET, price=0.0) == RejectReason.MARK_UNAVAILABLE
    assert check(pre, state, venue=Venue.OKX) == RejectReason.NONE
    assert check(PreTrade(RiskConfig(mark_max_age_ms=0), FEES), state) == RejectReason.NONE   # 0: no age limit


def test_price_band_in_bps_of_mark(pre: PreTrade, state: RiskState) -> None:
    assert check(pre, state, price=101.0) == RejectReason.NONE           # +100 bps: on the edge
    assert check(pre, state, price=101.01) == RejectReason.PRICE_BAND
    assert check(pre, state, side=SELL, price=98.9) == RejectReason.PRICE_BAND
    assert check(pre, state, order_type=MARKET, price=0.0) == RejectReason.NONE


def test_max_position_counts_open_orders_on_the_same_side(pre: PreTrade, state: RiskState, grid: Grid) -> None:
    k = grid.key(Venue.BINANCE, 1)
    state.position[k] = 1.2
    assert check(pre, state, qty=0.8) == RejectReason.NONE
    state.open_buy[k] = 0.5
    assert check(pre, state, qty=0.8) == RejectReason.MAX_POSITION
    assert check(pre, state, side=SELL, qty=1.0) == RejectReason.NONE   # shrinks the worst case


def test_position_over_limit_still_accepts_reducing_orders(pre: PreTrade, state: RiskState, grid: Grid) -> None:
    k = grid.key(Venue.BINANCE, 1)
    state.position[k] = 3.0                                            # limit 2 was lowered under it
    assert check(pre, state, qty=0.1) == RejectReason.MAX_POSITION
    assert check(pre, state, side=SELL, qty=0.5) == RejectReason.NONE


def test_max_gross_exposure(pre: PreTrade, state: RiskState, grid: Grid) -> None:
    state.gross = 180.0                                                # limit 250, mark 100
    assert check(pre, state, qty=0.7) == RejectReason.NONE
    assert check(pre, state, qty=0.71) == RejectReason.MAX_GROSS_EXPOSURE
    state.position[grid.key(Venue.BINANCE, 1)] = -0.5                 # a buy first shrinks a short
    assert check(pre, state, qty=1.0) == RejectReason.NONE


@pytest.mark.parametrize("via_state", [True, False])
def test_reduce_only(pre: PreTrade, state: RiskState, grid: Grid, via_state: bool) -> None:
    if via_state:
        state.trading = TradingState.REDUCE_ONLY
    k = grid.key(Venue.BINANCE, 1)
    flag = not via_state
    assert check(pre, state, qty=0.1, reduce_only=flag) == RejectReason.REDUCE_ONLY    # flat
    state.position[k] = 0.8
    assert check(pre, state, qty=0.1, reduce_only=flag) == RejectReason.REDUCE_ONLY    # buy grows a long
    assert check(pre, state, side=SELL, qty=0.8, reduce_only=flag) == RejectReason.NONE
    assert check(pre, state, side=SELL, qty=0.81, reduce_only=flag) == RejectReason.REDUCE_ONLY
    state.open_sell[k] = 0.5                                              # already closing 0.5
    assert check(pre, state, side=SELL, qty=0.4, reduce_only=flag) == RejectReason.REDUCE_ONLY
    assert reduces(state, k, SELL, 0.3)


def test_halted_rejects_everything_first(pre: PreTrade, state: RiskState) -> None:
    state.trading = TradingState.HALTED
    assert check(pre, state) == RejectReason.TRADING_HALTED
    assert check(pre, state, qty=-5.0) == RejectReason.TRADING_HALTED


def test_max_open_orders(pre: PreTrade, state: RiskState) -> None:
    state.open_orders = 2
    assert check(pre, state) == RejectReason.NONE
    state.open_orders = 3
    assert check(pre, state) == RejectReason.MAX_OPEN_ORDERS


def test_buy_needs_free_quote_including_fee_and_reservations(pre: PreTrade, state: RiskState, grid: Grid) -> None:
    slot = grid.quote_slot[grid.key(Venue.BINANCE, 1)]
    state.balance[slot] = 50.05                                  # 0.5 x 100 x 1.001 = 50.05
    assert check(pre, state) == RejectReason.NONE
    state.reserved[slot] = 0.01
    assert check(pre, state) == RejectReason.INSUFFICIENT_BALANCE
    assert check(pre, state, venue=Venue.OKX) == RejectReason.NONE  # balances are per venue


def test_market_buy_reserves_at_mark_plus_band(pre: PreTrade, state: RiskState, grid: Grid) -> None:
    k = grid.key(Venue.BINANCE, 1)
    assert pre.reserve(Venue.BINANCE, BUY, MARKET, 0.0, 0.5, 100.0) == pytest.approx(0.5 * 101.0 * 1.001)
    state.balance[grid.quote_slot[k]] = 50.5
    assert check(pre, state, order_type=MARKET, price=0.0) == RejectReason.INSUFFICIENT_BALANCE


def test_sell_needs_free_base(pre: PreTrade, state: RiskState, grid: Grid) -> None:
    slot = grid.base_slot[grid.key(Venue.BINANCE, 1)]
    state.balance[slot] = 0.5
    assert check(pre, state, side=SELL) == RejectReason.NONE
    state.reserved[slot] = 0.2
    assert check(pre, state, side=SELL) == RejectReason.INSUFFICIENT_BALANCE


def test_order_rate_per_venue(pre: PreTrade, state: RiskState) -> None:
    bucket = state.buckets[Venue.BINANCE]
    for _ in range(LIMITS.max_orders_per_sec):
        assert check(pre, state) == RejectReason.NONE
        bucket.take(NOW)
    assert check(pre, state) == RejectReason.ORDER_RATE
    assert check(pre, state, venue=Venue.OKX) == RejectReason.NONE
    assert pre.check(state, Venue.BINANCE, state.grid.key(Venue.BINANCE, 1), BUY, LIMIT, 100.0, 0.5, False,
                     NOW + 200_000_000) == RejectReason.NONE   # one token back after 1/5 s


def test_zero_limits_disable_rules(state: RiskState) -> None:
    pre = PreTrade(RiskConfig(max_order_qty=0, max_order_notional=0, max_position=0, max_gross_exposure=0,
                              price_band_bps=0, max_orders_per_sec=0, max_open_orders=0), FEES)
    state.open_orders = 10**6
    assert check(pre, state, price=150.0, qty=40.0) == RejectReason.NONE


@pytest.mark.parametrize(("side", "order_type", "price", "venue"), [
    (BUY, LIMIT, 100.0, Venue.BINANCE), (BUY, MARKET, 0.0, Venue.BINANCE), (BUY, LIMIT, 100.5, Venue.OKX),
    (SELL, LIMIT, 100.0, Venue.BINANCE), (SELL, MARKET, 0.0, Venue.OKX),
])
def test_a_passed_order_leaves_its_reserve_per_unit(pre: PreTrade, state: RiskState, side: Side,
                                                    order_type: OrderType, price: float, venue: Venue) -> None:
    """`unit` is what `reserve` gives for one unit at the rounded price and the mark: what the gate books."""
    assert check(pre, state, side=side, order_type=order_type, price=price, venue=venue) == RejectReason.NONE
    assert pre.unit == pre.reserve(venue, side, order_type, state.rules.price, 1.0, 100.0)
    assert pre.unit == (1.0 if side == SELL else (101.0 if order_type == MARKET else price) * (1 + FEES[venue] / 1e4))
