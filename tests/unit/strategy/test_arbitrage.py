"""Cross-exchange arbitrage on crafted books: trigger, sizing, cooldown, book health and leg risk."""

from __future__ import annotations

import numpy as np
import pytest

from kairos.config import ArbitrageConfig
from kairos.records import Action, BookStatus, OrderType, RejectReason, Side, Tif, Venue
from kairos.strategy.api import NO_LIMITS, IntentSink, ManualClock, MarketView, OrderIds, OrderLimits, new_run_id
from kairos.strategy.arbitrage import ARBITRAGE_ID, BOARD, HEDGE_WAIT_NS, CrossArbitrage
from kairos.strategy.venues import N_VENUES
from tests.unit.strategy.helpers import T0, batch, bbo, expired, fill, reject, status

B, X = Venue.BINANCE, Venue.OKX  # X: OKX
MS = 1_000_000
THRESHOLD_BPS = 10.0 + 10.0 + 5.0  # both taker fees + min_edge_bps


class Rig:
    """One arbitrage strategy on a manual clock; each step returns the intents it wrote."""

    def __init__(self, limits: OrderLimits = NO_LIMITS, **overrides: object) -> None:
        params = dict(enabled=True, instruments=("BTC-USDT",), min_edge_bps=5.0, max_qty=0.01, cooldown_ms=500,
                      leg_timeout_ms=2000, max_book_age_ms=2000, min_qty=0.0001, hedge_slippage_bps=20.0,
                      max_hedge_attempts=3)
        cfg = ArbitrageConfig(**{**params, **overrides})
        self.clock, self.view = ManualClock(T0), MarketView(2)
        self.sink = IntentSink(self.clock)
        self.open = [True] * N_VENUES
        """The host's per-venue flags: False while the gate has the venue closed."""
        self.arb = CrossArbitrage(cfg, {B: 10.0, X: 10.0}, {1: (B, X)}, self.view,
                                  OrderIds(ARBITRAGE_ID, new_run_id(T0)), self.clock, limits, self.open)

    def market(self, *records: np.ndarray) -> np.ndarray:
        md = batch(*records)
        self.view.update(md)
        self.arb.on_market(md, self.sink)
        self.view.clear_touched()
        return self.sink.take().copy()

    def events(self, *events: np.ndarray) -> np.ndarray:
        self.arb.on_event(batch(*events), self.sink)
        return self.sink.take().copy()

    def timer(self, advance_ms: float) -> np.ndarray:
        self.clock.advance(int(advance_ms * MS))
        self.arb.on_timer(self.clock.now_ns(), self.sink)
        return self.sink.take().copy()

    def cross(self, edge_bps: float, cheap: int = B, rich: int = X, ask_qty: float = 1.0,
              bid_qty: float = 1.0) -> np.ndarray:
        """Cheap venue asks 100, rich venue bids ``edge_bps`` above it."""
        ts, rich_bid = self.clock.now_ns(), 100.0 * (1 + edge_bps / 1e4)
        return self.market(bbo(cheap, 1, 99.9, 100.0, 1, ask_qty, ts=ts),
                           bbo(rich, 1, rich_bid, rich_bid + 0.1, bid_qty, 1, ts=ts))

    def fire(self) -> tuple[np.void, np.void]:
        out = self.cross(THRESHOLD_BPS + 5)
        assert len(out) == 2
        return out[0], out[1]


def test_fires_two_ioc_legs_when_edge_beats_fees_plus_min_edge() -> None:
    rig = Rig()
    buy, sell = rig.cross(THRESHOLD_BPS + 0.01)
    assert (buy["venue"], buy["side"], buy["price"]) == (B, Side.BUY, 100.0)
    assert (sell["venue"], sell["side"]) == (X, Side.SELL) and sell["price"] == pytest.approx(100.2501)
    for leg in (buy, sell):
        assert (leg["action"], leg["order_type"], leg["tif"]) == (Action.NEW, OrderType.LIMIT, Tif.IOC)
        assert leg["strategy"] == ARBITRAGE_ID and leg["instrument"] == 1 and leg["qty"] == 0.01
        assert leg["ts_origin_ns"] == T0 and leg["client_order_id"].startswith(b"K01")
    assert buy["client_order_id"] != sell["client_order_id"]
    assert rig.arb.stats["fired"] == 1


@pytest.mark.parametrize("edge", [THRESHOLD_BPS - 0.01, 10.0, 0.0, -30.0])
def test_does_not_fire_at_or_below_fees_plus_min_edge(edge: float) -> None:
    rig = Rig()
    assert len(rig.cross(edge)) == 0 and len(rig.cross(edge, cheap=X, rich=B)) == 0
    assert rig.arb.stats["fired"] == 0


def test_buys_where_cheap_and_sells_where_rich_in_either_direction() -> None:
    buy, sell = Rig().cross(THRESHOLD_BPS + 1, cheap=X, rich=B)
    assert (buy["venue"], buy["side"], sell["venue"], sell["side"]) == (X, Side.BUY, B, Side.SELL)


def test_fee_and_min_edge_params_move_the_threshold() -> None:
    assert len(Rig(min_edge_bps=20.0).cross(THRESHOLD_BPS + 5)) == 0
    assert len(Rig(min_edge_bps=20.0).cross(THRESHOLD_BPS + 15.01)) == 2


def test_size_is_min_of_top_sizes_max_qty_and_limits() -> None:
    assert Rig().cross(30, ask_qty=0.004, bid_qty=0.5)[0]["qty"] == 0.004
    assert Rig().cross(30, ask_qty=0.5, bid_qty=0.003)[1]["qty"] == 0.003
    assert Rig(max_qty=0.2).cross(30)[0]["qty"] == 0.2
    assert Rig(limits=OrderLimits(max_notional=5.0), max_qty=1.0).cross(30)[0]["qty"] == pytest.approx(0.05)


def test_too_small_is_counted_not_sent() -> None:
    rig = Rig()
    assert len(rig.cross(30, ask_qty=0.00005)) == 0 and rig.arb.stats["too_small"] == 1


def _complete(rig: Rig, buy: np.void, sell: np.void) -> None:
    assert len(rig.events(fill(buy, buy["qty"]), fill(sell, sell["qty"]))) == 0


def test_cooldown_per_instrument() -> None:
    rig = Rig()
    buy, sell = rig.fire()
    _complete(rig, buy, sell)
    assert rig.arb.stats["completed"] == 1
    rig.clock.advance(499 * MS)
    assert len(rig.cross(40)) == 0
    rig.clock.advance(1 * MS)
    assert len(rig.cross(40)) == 2


def test_no_new_trade_while_legs_are_outstanding() -> None:
    rig = Rig(cooldown_ms=0)
    buy, sell = rig.fire()
    assert len(rig.cross(40)) == 0
    _complete(rig, buy, sell)
    assert len(rig.cross(40)) == 2


def test_stale_book_is_not_traded() -> None:
    rig = Rig()
    ts = T0 - 2001 * MS
    assert len(rig.market(bbo(B, 1, 99.9, 100.0, ts=ts), bbo(X, 1, 100.5, 100.6))) == 0


def test_resyncing_or_disconnected_book_is_not_traded_until_rebuilt() -> None:
    rig = Rig()
    assert len(rig.market(bbo(B, 1, 99.9, 100.0), status(B, 1, BookStatus.SYNCED), bbo(X, 1, 99.95, 100.05))) == 0
    assert len(rig.market(status(X, 1, BookStatus.RESYNCING))) == 0
    assert len(rig.market(bbo(X, 1, 100.5, 100.6), status(X, 1, BookStatus.RESYNCING))) == 0
    assert len(rig.market(status(B, 1, BookStatus.DISCONNECTED), bbo(X, 1, 100.5, 100.6))) == 0
    assert len(rig.market(bbo(B, 1, 99.9, 100.0))) == 2


def test_sell_leg_rejected_after_buy_filled_is_hedged_on_best_bid() -> None:
    rig = Rig()
    buy, sell = rig.fire()
    assert len(rig.events(fill(buy, 0.01))) == 0
    rig.market(bbo(B, 1, 100.05, 100.1, ts=rig.clock.now_ns()))
    (hedge,) = rig.events(reject(sell))
    assert (hedge["venue"], hedge["side"], hedge["tif"], hedge["qty"]) == (X, Side.SELL, Tif.IOC, 0.01)
    assert hedge["price"] == pytest.approx(100.3 * (1 - 20 / 1e4))  # OKX bid 100.3 beats Binance 100.05
    assert rig.arb.stats["leg_failures"] == 1 and rig.arb.stats["hedges_sent"] == 1
    assert len(rig.cross(40)) == 0, "no arbitrage while a hedge is outstanding"
    assert len(rig.events(fill(hedge, 0.01))) == 0
    assert rig.arb.stats["hedges_filled"] == 1
    rig.clock.advance(500 * MS)
    assert len(rig.cross(40)) == 2


def test_partial_fill_hedges_the_residual() -> None:
    rig = Rig()
    buy, sell = rig.fire()
    rig.events(fill(buy, 0.01))
    (hedge,) = rig.events(fill(sell, 0.004, final=False), expired(sell, cum=0.004))
    assert hedge["side"] == Side.SELL and hedge["qty"] == pytest.approx(0.006)


def test_buy_leg_failure_is_hedged_by_buying_on_lowest_ask() -> None:
    rig = Rig()
    buy, sell = rig.fire()
    (hedge,) = rig.events(expired(buy), fill(sell, 0.01))
    assert (hedge["venue"], hedge["side"], hedge["qty"]) == (B, Side.BUY, 0.01)
    assert hedge["price"] == pytest.approx(100.0 * (1 + 20 / 1e4))


def test_both_legs_unfilled_is_a_miss_without_hedge() -> None:
    rig = Rig()
    buy, sell = rig.fire()
    assert len(rig.events(expired(buy), expired(sell))) == 0
    assert rig.arb.stats["missed"] == 1 and rig.arb.stats["leg_failures"] == 0


def test_leg_timeout_cancels_the_silent_leg_and_hedges() -> None:
    rig = Rig()
    buy, sell = rig.fire()
    rig.events(fill(buy, 0.01))
    assert len(rig.timer(1999)) == 0
    rig.market(bbo(B, 1, 99.9, 100.0, ts=rig.clock.now_ns()), bbo(X, 1, 100.1, 100.3, ts=rig.clock.now_ns()))
    cancel, hedge = rig.timer(1)
    assert cancel["action"] == Action.CANCEL and cancel["client_order_id"] == sell["client_order_id"]
    assert hedge["side"] == Side.SELL and hedge["venue"] == X and hedge["qty"] == 0.01
    assert rig.arb.stats["leg_timeouts"] == 1
    (rehedge,) = rig.events(fill(hedge, 0.01), fill(sell, 0.01))
    assert rehedge["side"] == Side.BUY and rehedge["qty"] == pytest.approx(0.01), "late fill is hedged too"


def test_hedge_waits_for_a_tradeable_book() -> None:
    rig = Rig()
    buy, sell = rig.fire()
    rig.market(status(B, 1, BookStatus.DISCONNECTED), status(X, 1, BookStatus.RESYNCING))
    assert len(rig.events(fill(buy, 0.01), reject(sell))) == 0
    assert rig.arb.stats["hedges_deferred"] == 1 and len(rig.timer(50)) == 0
    rig.market(bbo(X, 1, 100.1, 100.3, ts=rig.clock.now_ns()))
    assert len(rig.timer(50)) == 1


def test_hedge_waits_while_the_books_are_further_apart_than_max_edge_bps() -> None:
    rig = Rig(max_edge_bps=300.0)
    buy, sell = rig.fire()
    ts = rig.clock.now_ns()
    rig.market(bbo(B, 1, 99.9, 100.0, ts=ts), bbo(X, 1, 1e15, 1.0000001e15, ts=ts))   # okx: bad data
    assert len(rig.events(fill(buy, 0.01), reject(sell))) == 0      # never a SELL hedge at 1e15
    assert rig.arb.stats["hedges_deferred"] == 1 and len(rig.timer(50)) == 0
    rig.market(bbo(X, 1, 100.1, 100.3, ts=rig.clock.now_ns()))
    (hedge,) = rig.timer(50)
    assert (hedge["side"], hedge["venue"]) == (Side.SELL, X) and hedge["price"] < 101


def test_failed_hedges_are_retried_then_instrument_halts() -> None:
    rig = Rig(max_hedge_attempts=2, cooldown_ms=0)
    buy, sell = rig.fire()
    (h1,) = rig.events(fill(buy, 0.01), reject(sell, RejectReason.INTENT_DROPPED))
    (h2,) = rig.events(fill(h1, 0.004, final=False), expired(h1, cum=0.004))
    assert h2["qty"] == pytest.approx(0.006) and rig.arb.stats["hedges_failed"] == 1
    assert len(rig.events(reject(h2))) == 0
    assert rig.arb.stats["hedges_abandoned"] == 1 and rig.arb.halted == {1}
    rig.view.update(bbo(B, 1, 1, 2))
    assert len(rig.cross(40)) == 0


def test_events_for_other_orders_are_counted() -> None:
    rig = Rig()
    buy, _ = Rig().fire()
    rig.events(fill(buy, 0.01))
    assert rig.arb.stats["unknown_events"] == 1
    assert set(rig.arb.counters()) == {f"arb_{k}" for k in BOARD}


def test_an_edge_above_max_edge_bps_is_bad_data_counted_not_traded(caplog: pytest.LogCaptureFixture) -> None:
    assert len(Rig(max_edge_bps=300.0).cross(299.0)) == 2         # a large but believable edge still trades
    rig = Rig(max_edge_bps=300.0)
    assert len(rig.cross(301.0)) == 0 and len(rig.cross(1e6)) == 0   # e.g. one venue bidding 1e15 for BTC
    ts = rig.clock.now_ns()
    bargain = rig.market(bbo(B, 1, 1e-8 * 0.5, 1e-8, ts=ts), bbo(X, 1, 100.0, 100.1, ts=ts))
    assert len(bargain) == 0
    assert rig.arb.stats["bad_edge"] >= 2 and rig.arb.counters()["arb_bad_edge"] == rig.arb.stats["bad_edge"]
    assert "edge above max_edge_bps 300 is bad data" in caplog.text     # logged (rate-limited: the first one)


@pytest.mark.parametrize(("ask", "age_ms"), [(100.0, 2001), (0.0, 0), (-1.0, 0), (float("nan"), 0)],
                         ids=["stale", "zero ask", "negative ask", "NaN ask"])
def test_an_edge_on_a_book_that_is_not_tradeable_is_neither_traded_nor_bad_data(ask: float, age_ms: int) -> None:
    """The edge is computed before the books are checked: an untradeable one still counts for nothing."""
    rig = Rig(max_edge_bps=300.0)
    ts = rig.clock.now_ns()
    for rich_bid in (100.5, 1e6):   # a tradeable edge and an absurd one against the cheap, untradeable book
        assert len(rig.market(bbo(B, 1, ask - 0.1, ask, ts=ts - age_ms * MS), bbo(X, 1, rich_bid, rich_bid + 1,
                                                                                   ts=ts))) == 0
    assert rig.arb.stats["bad_edge"] == rig.arb.stats["fired"] == 0


BAD_BOOKS = {"NaN bid": (float("nan"), 100.0, 1.0, 1.0), "inf ask": (99.9, float("inf"), 1.0, 1.0),
             "1e-8 bid": (1e-8, 100.0, 1.0, 1.0), "1e15 ask": (99.9, 1e15, 1.0, 1.0),
             "NaN size": (99.9, 100.0, float("nan"), 1.0), "inf size": (99.9, 100.0, 1.0, float("inf")),
             "zero size": (99.9, 100.0, 0.0, 1.0)}


@pytest.mark.parametrize("book", BAD_BOOKS.values(), ids=BAD_BOOKS.keys())
def test_books_with_non_finite_or_absurd_numbers_are_not_tradeable(book: tuple[float, float, float, float]) -> None:
    rig = Rig()
    bid, ask, bid_qty, ask_qty = book
    rig.market(bbo(B, 1, bid, ask, bid_qty, ask_qty, ts=T0))
    assert not rig.view.tradeable(B, 1, T0, 2000 * MS)
    rig.market(bbo(B, 1, 99.9, 100.0, ts=T0))
    assert rig.view.tradeable(B, 1, T0, 2000 * MS)


@pytest.mark.parametrize("closed", [B, X])
def test_no_pair_is_fired_while_the_gate_has_one_of_its_venues_closed(closed: Venue,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig(cooldown_ms=0)
    rig.open[closed] = False
    for _ in range(3):
        assert len(rig.cross(THRESHOLD_BPS + 5)) == 0
    assert rig.arb.stats["venue_closed"] == 3 and rig.arb.stats["fired"] == 0
    assert "venue is closed by the gate" in caplog.text
    rig.open[closed] = True
    buy, sell = rig.cross(THRESHOLD_BPS + 5)
    assert (buy["venue"], sell["venue"]) == (B, X) and rig.arb.stats["fired"] == 1


def test_with_three_venues_a_closed_one_leaves_the_open_pair_tradeable() -> None:
    rig = Rig()
    Y = Venue.BYBIT
    rig.arb = CrossArbitrage(rig.arb._cfg, {B: 10.0, X: 10.0, Y: 10.0}, {1: (B, X, Y)}, rig.view,
                             OrderIds(ARBITRAGE_ID, new_run_id(T0)), rig.clock, NO_LIMITS, rig.open)
    rig.open[X] = False
    ts = rig.clock.now_ns()
    buy, sell = rig.market(bbo(B, 1, 99.9, 100.0, ts=ts), bbo(X, 1, 100.6, 100.7, ts=ts),   # best edge: okx
                           bbo(Y, 1, 100.4, 100.5, ts=ts))
    assert (buy["venue"], sell["venue"]) == (B, Y) and rig.arb.stats["venue_closed"] == 0


def test_hedge_goes_to_an_open_venue_not_the_closed_one_with_the_better_price() -> None:
    rig = Rig()
    buy, sell = rig.fire()                      # buy on binance, sell on okx (the better bid)
    rig.open[X] = False                         # the gate closes okx: the sell leg is refused
    (hedge,) = rig.events(fill(buy, 0.01), reject(sell, RejectReason.NOT_RECONCILED))
    assert (hedge["side"], hedge["venue"]) == (Side.SELL, B)
    assert hedge["price"] == pytest.approx(99.9 * (1 - 20 / 1e4))


def test_hedge_waits_for_an_open_venue_without_spending_attempts_then_hedges_on_reopen() -> None:
    rig = Rig(max_hedge_attempts=1)
    buy, sell = rig.fire()
    rig.open[B] = rig.open[X] = False
    assert len(rig.events(fill(buy, 0.01), reject(sell, RejectReason.NOT_RECONCILED))) == 0
    for _ in range(20):
        assert len(rig.timer(100)) == 0
    assert rig.arb.stats["hedges_deferred"] == 1 and rig.arb.stats["hedges_sent"] == 0 and not rig.arb.halted
    rig.open[X] = True
    rig.market(bbo(X, 1, 100.1, 100.3, ts=rig.clock.now_ns()))
    (hedge,) = rig.timer(20)
    assert (hedge["side"], hedge["venue"]) == (Side.SELL, X) and rig.arb.stats["hedges_sent"] == 1


def test_hedge_wait_is_bounded_then_the_instrument_halts(caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig()
    buy, sell = rig.fire()
    rig.open[B] = rig.open[X] = False
    rig.events(fill(buy, 0.01), reject(sell, RejectReason.NOT_RECONCILED))
    assert len(rig.timer(HEDGE_WAIT_NS / MS - 1)) == 0 and not rig.arb.halted
    assert len(rig.timer(1)) == 0
    assert rig.arb.halted == {1} and rig.arb.stats["hedges_abandoned"] == 1 and rig.arb.stats["hedges_sent"] == 0
    assert "HALTED" in caplog.text and "+0.01" in caplog.text
