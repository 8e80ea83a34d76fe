"""Order state machine: cumulative views in, ordered reports out, illegal moves counted and ignored."""

from __future__ import annotations

from kairos.execution.base import ExecReport, OrderRequest
from kairos.execution.state import Order, OrderTracker, OrderView
from kairos.records import ExecKind as K
from kairos.records import OrderState as S
from kairos.records import OrderType, RejectReason, Side, Tif


def _tracker() -> tuple[OrderTracker, list[ExecReport]]:
    out: list[ExecReport] = []
    tracker = OrderTracker(out.append, lambda order, qty, notional: (qty * 0.001, "BTC"))
    tracker.open(OrderRequest("c1", 1, "BTCUSDT", Side.BUY, OrderType.LIMIT, Tif.GTC, 100.0, 2.0, 0))
    tracker.sent("c1", 42)
    return tracker, out


def _kinds(out: list[ExecReport]) -> list[tuple[K, S]]:
    return [(r.kind, r.state) for r in out]


def test_new_ack_partial_filled_with_fill_deltas() -> None:
    tracker, out = _tracker()
    tracker.apply(OrderView("c1", S.ACK, venue_order_id=7))
    tracker.apply(OrderView("c1", S.PARTIAL, cum_qty=0.5, cum_quote=50.0, fee_cum=0.1, fee_asset="BTC"))
    tracker.apply(OrderView("c1", S.FILLED, cum_qty=2.0, cum_quote=197.0, fee_cum=0.4, fee_asset="BTC"))
    assert _kinds(out) == [(K.ACK, S.ACK), (K.FILL, S.PARTIAL), (K.FILL, S.FILLED)]
    last = out[-1]
    assert (last.last_qty, last.last_px, last.cum_qty, last.venue_order_id) == (1.5, 98.0, 2.0, 7)
    assert abs(last.fee - 0.3) < 1e-12 and last.fee_asset == "BTC"
    assert all(r.ts_sent_ns == 42 and r.instrument == 1 and r.side is Side.BUY for r in out)
    assert tracker.live() == []


def test_ack_is_reported_before_the_first_fill_and_repeats_are_silent() -> None:
    tracker, out = _tracker()
    view = OrderView("c1", S.FILLED, cum_qty=2.0, cum_quote=200.0, fee_cum=None)
    assert tracker.apply(view) == 2
    assert tracker.apply(view) == 0                                # same terminal view again: nothing
    assert _kinds(out) == [(K.ACK, S.ACK), (K.FILL, S.FILLED)]
    assert out[1].fee == 0.002 and out[1].fee_asset == "BTC"       # venue gave no fee: fee model used
    assert tracker.illegal == 0


def test_partially_filled_then_canceled_reports_fill_then_cancel() -> None:
    tracker, out = _tracker()
    tracker.apply(OrderView("c1", S.ACK))
    tracker.apply(OrderView("c1", S.CANCELED, cum_qty=0.5, cum_quote=50.0, fee_cum=0.0))
    assert _kinds(out) == [(K.ACK, S.ACK), (K.FILL, S.PARTIAL), (K.CANCELED, S.CANCELED)]


def test_illegal_and_stale_views_are_counted_and_ignored() -> None:
    tracker, out = _tracker()
    tracker.apply(OrderView("c1", S.PARTIAL, cum_qty=1.0, cum_quote=100.0))
    tracker.apply(OrderView("c1", S.ACK, cum_qty=0.5))              # filled qty went backwards: stale
    tracker.apply(OrderView("c1", S.REJECTED, cum_qty=1.0))         # PARTIAL -> REJECTED: illegal
    tracker.reject("c1", RejectReason.VENUE_REJECTED, "-1", "late")  # reject only from NEW
    assert (tracker.stale, tracker.illegal) == (1, 2)
    tracker.apply(OrderView("c1", S.EXPIRED, cum_qty=1.0))
    tracker.apply(OrderView("c1", S.ACK, cum_qty=1.0))              # after terminal: stale
    assert _kinds(out) == [(K.ACK, S.ACK), (K.FILL, S.PARTIAL), (K.EXPIRED, S.EXPIRED)]
    assert tracker.stale == 2


def test_reject_from_new_and_duplicate_open() -> None:
    tracker, out = _tracker()
    tracker.reject("c1", RejectReason.VENUE_INSUFFICIENT_BALANCE, "-2010", "insufficient")
    assert _kinds(out) == [(K.REJECT, S.REJECTED)]
    assert (out[0].reason, out[0].venue_code, out[0].message) == (RejectReason.VENUE_INSUFFICIENT_BALANCE, "-2010",
                                                                 "insufficient")
    assert not tracker.open(OrderRequest("c1", 1, "BTCUSDT", Side.BUY, OrderType.LIMIT, Tif.GTC, 1.0, 1.0, 0))


def test_cancel_reject_keeps_state_and_foreign_views_are_counted() -> None:
    tracker, out = _tracker()
    tracker.apply(OrderView("c1", S.ACK))
    tracker.cancel_reject("c1", RejectReason.UNKNOWN_ORDER, "-2011", "Unknown order sent.")
    assert out[-1].kind is K.CANCEL_REJECT and out[-1].state is S.ACK
    assert tracker.get("c1").state is S.ACK
    tracker.apply(OrderView("someone-else", S.ACK))
    assert tracker.foreign == 1
    tracker.cancel_reject("never-seen", RejectReason.UNKNOWN_ORDER, "51603", "Order does not exist")
    assert (out[-1].client_order_id, out[-1].kind, out[-1].state) == ("never-seen", K.CANCEL_REJECT, S.UNKNOWN)


def test_unknown_outcome_orders_stay_live_until_a_view_resolves_them() -> None:
    tracker, _ = _tracker()
    tracker.mark_unknown("c1", 123, "-1007", "send status unknown")
    assert [o.client_order_id for o in tracker.live()] == ["c1"]
    assert (tracker.get("c1").expires_ns, tracker.get("c1").cause) == (123, ("-1007", "send status unknown"))
    tracker.apply(OrderView("c1", S.ACK))
    assert tracker.get("c1").unknown is False


def test_adopted_orders_report_later_fills() -> None:
    out: list[ExecReport] = []
    tracker = OrderTracker(out.append, lambda o, q, n: (0.0, ""))
    tracker.adopt(Order("old", 2, "ETHUSDT", Side.SELL, OrderType.LIMIT, 3000.0, 1.0, S.PARTIAL, 0.25, 750.0))
    tracker.apply(OrderView("old", S.FILLED, cum_qty=1.0, cum_quote=3000.0, fee_cum=1.5, fee_asset="USDT"))
    assert _kinds(out) == [(K.FILL, S.FILLED)] and out[0].last_qty == 0.75 and out[0].instrument == 2
