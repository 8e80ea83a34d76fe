"""Market making on crafted books: quote prices, skew, max inventory, requote threshold, cancel/replace."""

from __future__ import annotations

import numpy as np
import pytest

from kairos.config import MarketMakingConfig
from kairos.records import Action, BookStatus, ExecKind, OrderState, OrderType, RejectReason, Side, Tif, Venue
from kairos.strategy.api import NO_LIMITS, IntentSink, ManualClock, MarketView, OrderIds, OrderLimits, new_run_id
from kairos.strategy.market_making import MARKET_MAKING_ID, MarketMaker, QuoteState
from kairos.strategy.venues import N_VENUES
from tests.unit.strategy.helpers import T0, batch, bbo, event, fill, reject, status

B = Venue.BINANCE
MS = 1_000_000
MID = 100.1


class Rig:
    def __init__(self, limits: OrderLimits = NO_LIMITS, **overrides: object) -> None:
        params = dict(enabled=True, venue="binance", instruments=("ETH-USDT",), spread_bps=10.0, size=0.01,
                      skew_bps_per_unit=50.0, max_inventory=0.02, requote_bps=2.0, use_microprice=False,
                      max_book_age_ms=5000, reject_backoff_ms=1000)
        self.clock, self.view = ManualClock(T0), MarketView(1)
        self.sink = IntentSink(self.clock)
        self.open = [True] * N_VENUES
        """The host's per-venue flags: False while the gate has the venue closed."""
        self.mm = MarketMaker(MarketMakingConfig(**{**params, **overrides}), B, (1,), self.view,
                              OrderIds(MARKET_MAKING_ID, new_run_id(T0)), self.clock, limits, self.open)

    def book(self, bid: float = 100.0, ask: float = 100.2, bid_qty: float = 1.0, ask_qty: float = 1.0) -> np.ndarray:
        return self.market(bbo(B, 1, bid, ask, bid_qty, ask_qty, ts=self.clock.now_ns()))

    def market(self, *records: np.ndarray) -> np.ndarray:
        md = batch(*records)
        self.view.update(md)
        self.mm.on_market(md, self.sink)
        self.view.clear_touched()
        return self.sink.take().copy()

    def events(self, *events: np.ndarray) -> np.ndarray:
        self.mm.on_event(batch(*events), self.sink)
        return self.sink.take().copy()

    def timer(self, advance_ms: float) -> np.ndarray:
        self.clock.advance(int(advance_ms * MS))
        self.mm.on_timer(self.clock.now_ns(), self.sink)
        return self.sink.take().copy()

    def live(self) -> tuple[np.void, np.void]:
        """Quote both sides around the default book and ack them."""
        bid, ask = self.book()
        assert len(self.events(ack(bid), ack(ask))) == 0
        return bid, ask


def ack(intent: np.void) -> np.ndarray:
    return event(intent, ExecKind.ACK, OrderState.ACK)


def canceled(intent: np.void) -> np.ndarray:
    return event(intent, ExecKind.CANCELED, OrderState.CANCELED)


def test_quotes_both_sides_post_only_around_mid() -> None:
    bid, ask = Rig().book()
    assert (bid["side"], ask["side"]) == (Side.BUY, Side.SELL)
    assert bid["price"] == pytest.approx(MID * (1 - 5e-4)) and ask["price"] == pytest.approx(MID * (1 + 5e-4))
    for q in (bid, ask):
        assert (q["order_type"], q["tif"], q["action"], q["qty"]) == (OrderType.LIMIT_MAKER, Tif.GTC, Action.NEW, 0.01)
        assert q["strategy"] == MARKET_MAKING_ID and q["venue"] == B and q["ts_origin_ns"] == T0


def test_microprice_leans_towards_the_thin_side() -> None:
    rig = Rig(use_microprice=True)
    bid, _ = rig.book(bid_qty=3.0, ask_qty=1.0)
    micro = (100.0 * 1.0 + 100.2 * 3.0) / 4.0
    assert bid["price"] == pytest.approx(micro * (1 - 5e-4)) and micro > MID


def test_inventory_skews_both_quotes_down_when_long() -> None:
    rig = Rig(skew_bps_per_unit=500.0)
    bid, _ = rig.live()
    rig.events(fill(bid, 0.01))
    assert rig.mm.inventory[1] == pytest.approx(0.01)
    t_bid, t_ask, _ = rig.mm.targets(1, rig.clock.now_ns())
    assert t_bid == pytest.approx(MID * (1 - 10e-4)) and t_ask == pytest.approx(MID * (1 + 0e-4))


def test_fill_replaces_the_filled_side_and_requotes_the_moved_one() -> None:
    rig = Rig(skew_bps_per_unit=500.0)
    bid, ask = rig.live()
    out = rig.events(fill(bid, 0.01))
    (cancel,), (new_bid,) = out[out["action"] == Action.CANCEL], out[out["action"] == Action.NEW]
    assert cancel["client_order_id"] == ask["client_order_id"]
    assert new_bid["side"] == Side.BUY and new_bid["price"] == pytest.approx(MID * (1 - 10e-4))


def test_max_inventory_stops_the_side_that_would_grow_it() -> None:
    rig = Rig()
    bid, _ = rig.live()
    (new_bid,) = rig.events(fill(bid, 0.01))
    assert new_bid["side"] == Side.BUY
    rig.events(ack(new_bid), fill(new_bid, 0.01))
    assert rig.mm.inventory[1] == pytest.approx(0.02)
    t_bid, t_ask, _ = rig.mm.targets(1, rig.clock.now_ns())
    assert t_bid is None and t_ask is not None
    assert not any(q["side"] == Side.BUY for q in rig.book(99.0, 99.2))


def test_live_quote_is_pulled_when_its_side_would_exceed_max_inventory() -> None:
    rig = Rig(max_inventory=0.015)
    _, ask = rig.live()
    (pull,) = rig.events(fill(ask, 0.006, final=False))
    assert rig.mm.inventory[1] == pytest.approx(-0.006)
    assert pull["action"] == Action.CANCEL and pull["client_order_id"] == ask["client_order_id"]
    assert rig.mm.stats["pulls"] == 1 and rig.mm.quotes[1][0].state == QuoteState.LIVE


def test_requote_only_beyond_threshold_then_cancel_before_replace() -> None:
    rig = Rig()
    bid, ask = rig.live()
    assert len(rig.book(100.015, 100.215)) == 0, "1.5 bps move is inside requote_bps"
    c1, c2 = rig.book(100.05, 100.25)
    assert {c1["client_order_id"], c2["client_order_id"]} == {bid["client_order_id"], ask["client_order_id"]}
    assert c1["action"] == c2["action"] == Action.CANCEL
    assert len(rig.book(100.5, 100.7)) == 0, "no second order while the cancel is pending"
    (new_bid,) = rig.events(canceled(bid))
    assert new_bid["side"] == Side.BUY and new_bid["price"] == pytest.approx(100.6 * (1 - 5e-4))
    assert new_bid["client_order_id"] not in (bid["client_order_id"], ask["client_order_id"])
    assert rig.mm.stats["requotes"] == 2


def test_no_double_quote_while_new_order_is_pending() -> None:
    rig = Rig()
    assert len(rig.book()) == 2
    assert len(rig.book(101.0, 101.2)) == 0
    assert rig.mm.stats["quotes"] == 2


def test_reject_backs_off_before_quoting_that_side_again() -> None:
    rig = Rig()
    bid, ask = rig.book()
    assert len(rig.events(reject(bid, RejectReason.PRICE_BAND), ack(ask))) == 0
    rig.clock.advance(999 * MS)
    assert len(rig.book()) == 0
    rig.clock.advance(1 * MS)
    (again,) = rig.book()
    assert again["side"] == Side.BUY and rig.mm.stats["rejects"] == 1


def test_resyncing_book_pulls_live_quotes() -> None:
    rig = Rig()
    bid, ask = rig.live()
    pulled = rig.market(status(B, 1, BookStatus.RESYNCING))
    assert sorted(pulled["action"].tolist()) == [Action.CANCEL, Action.CANCEL]
    assert rig.mm.stats["pulls"] == 2
    assert len(rig.events(canceled(bid), canceled(ask))) == 0, "no quotes on a resyncing book"


def test_stale_book_pulls_quotes_on_timer() -> None:
    rig = Rig()
    rig.live()
    rig.clock.advance(5001 * MS)
    rig.mm.on_timer(rig.clock.now_ns(), rig.sink)
    assert len(rig.sink.take()) == 2


def test_cancel_reject_returns_quote_to_live_unless_order_unknown() -> None:
    rig = Rig()
    bid, ask = rig.live()
    rig.book(100.05, 100.25)
    out = rig.events(event(bid, ExecKind.CANCEL_REJECT, OrderState.ACK, reason=RejectReason.VENUE_REJECTED),
                     event(ask, ExecKind.CANCEL_REJECT, OrderState.UNKNOWN, reason=RejectReason.UNKNOWN_ORDER))
    recancel, new_ask = sorted(out, key=lambda q: q["action"], reverse=True)
    assert recancel["action"] == Action.CANCEL and recancel["client_order_id"] == bid["client_order_id"]
    assert new_ask["action"] == Action.NEW and new_ask["side"] == Side.SELL
    bid_q, ask_q = rig.mm.quotes[1]
    assert bid_q.state == QuoteState.PENDING_CANCEL and bid_q.cid == bid["client_order_id"]
    assert ask_q.state == QuoteState.PENDING_NEW and rig.mm.stats["cancel_rejects"] == 1


def test_inventory_uses_cumulative_quantity() -> None:
    rig = Rig()
    bid, _ = rig.live()
    rig.events(fill(bid, 0.004, final=False), fill(bid, 0.004, final=False), fill(bid, 0.006, cum=0.01))
    assert rig.mm.inventory[1] == pytest.approx(0.01) and rig.mm.stats["fills"] == 2


def test_size_respects_order_limits() -> None:
    bid, _ = Rig(limits=OrderLimits(max_notional=0.5)).book()
    assert bid["qty"] == pytest.approx(0.5 / MID)


def test_no_quote_on_a_venue_the_gate_has_closed_until_it_reopens(caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig()
    rig.open[B] = False
    assert len(rig.book()) == 0
    for _ in range(5):
        assert len(rig.timer(20)) == 0
    assert rig.mm.stats["venue_closed"] == 12 and rig.mm.stats["quotes"] == 0     # 2 sides x 6 decisions
    assert "venue 1 is closed by the gate" in caplog.text
    rig.open[B] = True
    bid, ask = rig.timer(20)
    assert (bid["side"], ask["side"], bid["order_type"]) == (Side.BUY, Side.SELL, OrderType.LIMIT_MAKER)


def test_live_quotes_are_pulled_when_the_venue_closes_and_a_refused_cancel_backs_off() -> None:
    rig = Rig()
    bid, ask = rig.live()
    rig.open[B] = False
    pulled = rig.timer(20)
    assert sorted(pulled["action"].tolist()) == [Action.CANCEL, Action.CANCEL] and rig.mm.stats["pulls"] == 2
    refused = [event(q, ExecKind.CANCEL_REJECT, OrderState.ACK, reason=RejectReason.NOT_RECONCILED) for q in (bid, ask)]
    assert len(rig.events(*refused)) == 0
    for _ in range(49):                         # reject_backoff_ms = 1000: no cancel on every 20 ms tick
        assert len(rig.timer(20)) == 0
    again = rig.timer(20)
    assert sorted(again["client_order_id"].tolist()) == sorted([bid["client_order_id"], ask["client_order_id"]])
    assert rig.mm.stats["quotes"] == 2, "nothing new placed while closed"
