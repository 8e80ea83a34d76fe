"""OrderTracker fed by private streams: forward-only, idempotent by trade id, reordered fills keep their own fee."""

from __future__ import annotations

from kairos import config
from kairos.execution.base import ExecReport, OrderRequest
from kairos.execution.binance import BinanceExecution
from kairos.execution.state import OrderTracker, OrderView, TradeFill
from kairos.instruments import InstrumentTable
from kairos.records import ExecKind as K
from kairos.records import OrderState as S
from kairos.records import OrderType, Side, Tif


def _tracker() -> tuple[OrderTracker, list[ExecReport]]:
    out: list[ExecReport] = []
    tracker = OrderTracker(out.append, lambda order, qty, notional: (qty * 0.001, "BTC"))
    tracker.open(OrderRequest("c1", 1, "BTCUSDT", Side.BUY, OrderType.LIMIT, Tif.GTC, 100.0, 3.0, 0))
    return tracker, out


def _binance(cum: float, state: S = S.PARTIAL) -> OrderView:
    """An executionReport's view: cumulative qty/quote, no cumulative fee."""
    return OrderView("c1", state, cum_qty=cum, cum_quote=cum * 100.0, fee_cum=None)


def _fill(trade_id: str, qty: float, fee: float) -> TradeFill:
    return TradeFill(trade_id, qty, 100.0, fee, "BTC")


def _fills(out: list[ExecReport]) -> list[tuple[float, float, S]]:
    return [(r.last_qty, r.fee, r.state) for r in out if r.kind is K.FILL]


def test_each_stream_fill_is_reported_once_with_its_own_fee() -> None:
    tracker, out = _tracker()
    tracker.apply(_binance(0.0, S.ACK))
    tracker.apply_fill(_binance(1.0), _fill("t1", 1.0, 0.0007))
    tracker.apply_fill(_binance(1.0), _fill("t1", 1.0, 0.0007))          # duplicated event
    tracker.apply_fill(_binance(3.0, S.FILLED), _fill("t2", 2.0, 0.0011))
    assert [(r.kind, r.state) for r in out] == [(K.ACK, S.ACK), (K.FILL, S.PARTIAL), (K.FILL, S.FILLED)]
    assert _fills(out) == [(1.0, 0.0007, S.PARTIAL), (2.0, 0.0011, S.FILLED)]
    assert tracker.duplicates == 1


def test_a_reordered_fill_waits_for_its_predecessor() -> None:
    tracker, out = _tracker()
    assert tracker.apply_fill(_binance(3.0, S.FILLED), _fill("t2", 2.0, 0.0011)) == 0   # t1 not seen yet: held
    assert out == [] and tracker.held == 1
    assert tracker.apply_fill(_binance(1.0), _fill("t1", 1.0, 0.0007)) == 3           # ACK, t1, then t2
    assert _fills(out) == [(1.0, 0.0007, S.PARTIAL), (2.0, 0.0011, S.FILLED)]
    assert tracker.live() == []


def test_late_events_never_move_an_order_back() -> None:
    tracker, out = _tracker()
    tracker.apply_fill(_binance(1.0), _fill("t1", 1.0, 0.0007))
    assert tracker.apply(_binance(0.0, S.ACK)) == 0                       # the NEW event, late
    tracker.apply(OrderView("c1", S.CANCELED, cum_qty=1.0, cum_quote=100.0, fee_cum=None))
    assert tracker.apply(_binance(1.0)) == 0                              # after the end: ignored
    assert [(r.kind, r.state) for r in out][-1] == (K.CANCELED, S.CANCELED)
    assert tracker.stale == 2 and tracker.illegal == 0


def test_a_fill_rest_already_reported_only_records_its_trade_id() -> None:
    tracker, out = _tracker()
    tracker.apply(OrderView("c1", S.PARTIAL, cum_qty=1.0, cum_quote=100.0, fee_cum=None))  # poll saw it first
    assert tracker.apply_fill(_binance(1.0), _fill("t1", 1.0, 0.0007)) == 0
    tracker.apply_fill(_binance(2.0), _fill("t2", 1.0, 0.0007))
    assert _fills(out) == [(1.0, 0.001, S.PARTIAL), (1.0, 0.0007, S.PARTIAL)]


def test_a_cumulative_fee_from_the_venue_is_kept_as_is() -> None:
    tracker, out = _tracker()
    okx = OrderView("c1", S.PARTIAL, cum_qty=2.0, cum_quote=200.0, fee_cum=0.0016, fee_asset="BTC")
    tracker.apply_fill(okx, _fill("t2", 1.0, 0.0008))                    # t1's event lost: the sum is still right
    assert _fills(out) == [(2.0, 0.0016, S.PARTIAL)]


def test_binance_my_trades_become_views_up_to_the_reconciled_one() -> None:
    settings = config.load(env={})
    ex = BinanceExecution(settings.venues["binance"], settings.execution, InstrumentTable(settings.instruments))
    try:
        trade = lambda i, qty: {"id": i, "price": "100", "qty": qty, "quoteQty": str(float(qty) * 100),  # noqa: E731
                                "commission": str(float(qty) / 1000), "commissionAsset": "BTC"}
        data = [trade(12, "2.0"), trade(11, "1.0"), trade(13, "0.5")]   # 13 came after the view below
        view = OrderView("c1", S.FILLED, cum_qty=3.0, cum_quote=300.0, fee_cum=None, qty=3.0)
        views = ex.parse_trades(data, view)
        assert [(v.cum_qty, v.state, f.trade_id, f.fee) for v, f in views] == [
            (1.0, S.PARTIAL, "11", 0.001), (3.0, S.FILLED, "12", 0.002)]
        tracker, out = _tracker()
        for trade_view, fill in views:
            tracker.apply_fill(trade_view, fill)
        assert _fills(out) == [(1.0, 0.001, S.PARTIAL), (2.0, 0.002, S.FILLED)]
    finally:
        ex.close()


def test_filled_short_of_the_quantity_stays_live_until_the_missing_fill_is_reported() -> None:
    shorts: list[int] = []
    out: list[ExecReport] = []
    tracker = OrderTracker(out.append, lambda order, qty, notional: (qty * 0.001, "BTC"), lambda: shorts.append(1))
    tracker.open(OrderRequest("c1", 1, "BTCUSDT", Side.BUY, OrderType.LIMIT, Tif.GTC, 100.0, 3.0, 0))
    tracker.apply_fill(_binance(1.0), _fill("t1", 1.0, 0.0007))
    assert tracker.apply_fill(_binance(3.0, S.FILLED), _fill("t3", 1.0, 0.0005)) == 0   # t2 not seen yet: held
    capped = OrderView("c1", S.FILLED, cum_qty=1.0, cum_quote=100.0, fee_cum=None, qty=3.0)
    assert tracker.apply(capped) == 0                       # says FILLED, brings no quantity: not the end
    assert [o.client_order_id for o in tracker.live()] == ["c1"]
    assert tracker.short_filled == 1 and shorts == [1]
    tracker.apply_fill(_binance(2.0), _fill("t2", 1.0, 0.0006))
    assert _fills(out) == [(1.0, 0.0007, S.PARTIAL), (1.0, 0.0006, S.PARTIAL), (1.0, 0.0005, S.FILLED)]
    assert tracker.live() == []


def test_filled_with_new_quantity_short_of_the_order_reports_it_as_partial() -> None:
    tracker, out = _tracker()
    tracker.apply(OrderView("c1", S.FILLED, cum_qty=2.0, cum_quote=200.0, fee_cum=None, qty=3.0))
    assert _fills(out) == [(2.0, 0.002, S.PARTIAL)] and tracker.short_filled == 1
    tracker.apply(OrderView("c1", S.FILLED, cum_qty=3.0, cum_quote=300.0, fee_cum=None, qty=3.0))
    assert _fills(out)[-1] == (1.0, 0.001, S.FILLED) and tracker.live() == []


def test_the_venues_rounded_quantity_is_what_filled_must_total() -> None:
    tracker, out = _tracker()                               # asked 3.0; the venue rounded it to 2.99
    tracker.apply(OrderView("c1", S.FILLED, cum_qty=2.99, cum_quote=299.0, fee_cum=None, qty=2.99))
    assert [(r.kind, r.state) for r in out][-1] == (K.FILL, S.FILLED)
    assert tracker.live() == [] and tracker.short_filled == 0
