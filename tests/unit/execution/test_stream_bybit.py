"""Bybit private stream: the auth frame, the parser on hand-written frames (tests/fixtures/bybit/private_*),
and the ``order`` + ``execution`` topics through a real OrderTracker: every fill once, whichever topic comes
first, with its own price and the venue's fees."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from kairos import config
from kairos.config import Secret
from kairos.execution.base import ExecReport, OrderRequest
from kairos.execution.signing_bybit import bybit_ws_check, bybit_ws_signature
from kairos.execution.state import OrderTracker, TradeFill
from kairos.execution.stream import Parsed, StreamDown
from kairos.execution.stream_bybit import TOPICS, BybitStream
from kairos.records import ExecKind, OrderState, OrderType, Side, Tif
from tests.fixtures import fixture, fixture_bytes
from tests.unit.execution.test_stream_parsers import NOW_MS, Sink, Socket

# computed independently: printf %s "GET/realtime1764851400000" | openssl dgst -sha256 -hmac secret
AUTH_VECTOR = ("1764851400000", "f5c2225fa4405f380e053a21c5bd4d95a1fd26cc38211c6048ff567c78ea8645")


def _stream(sink: Sink | None = None) -> BybitStream:
    base = config.load(env={})
    venue = dataclasses.replace(base.venues["bybit"], api_key=Secret("key"), api_secret=Secret("secret"),
                                recv_window_ms=5000)
    return BybitStream(venue, base.execution, sink or Sink(), lambda: NOW_MS)


def _parse(name: str) -> Parsed:
    return _stream().parse(fixture_bytes(f"bybit/{name}").decode())


def test_auth_signature_vector() -> None:
    expires, sign = AUTH_VECTOR
    assert bybit_ws_signature("secret", expires) == sign
    assert bybit_ws_check("secret", expires, sign) and not bybit_ws_check("secret", str(int(expires) + 1), sign)


def test_auth_frame_expires_one_recv_window_ahead_and_is_signed() -> None:
    msg = orjson.loads(_stream().open_frames()[0])
    key, expires, sign = msg["args"]
    assert (msg["op"], key, expires) == ("auth", "key", str(NOW_MS + 5000))
    assert bybit_ws_check("secret", expires, sign)


def test_handshake_auth_then_subscribe_then_ready() -> None:
    sink, socket = Sink(), Socket()
    stream = _stream(sink)
    stream._on_text(socket, fixture_bytes("bybit/private_auth.json").decode())
    assert [orjson.loads(f)["args"] for f in socket.sent] == [list(TOPICS)] and not stream.healthy
    stream._on_text(socket, fixture_bytes("bybit/private_subscribe.json").decode())
    stream._on_text(socket, fixture_bytes("bybit/private_pong.json").decode())
    assert stream.healthy and sink.up == 1 and stream.counts["bad_frames"] == 0


def test_a_refused_auth_ends_the_session() -> None:
    assert _parse("private_auth_refused.json").refused == "auth: Request not authorized"
    with pytest.raises(StreamDown, match="Request not authorized"):
        _stream()._on_text(Socket(), fixture_bytes("bybit/private_auth_refused.json").decode())
    refused = '{"success": false, "ret_msg": "error:handler not found,topic:orders", "op": "subscribe"}'
    assert _stream().parse(refused).refused == "subscribe: error:handler not found,topic:orders"


def test_order_push_is_a_cumulative_view_and_other_categories_are_skipped() -> None:
    [(view, fill)] = _parse("private_order.json").orders
    assert fill is None
    assert (view.client_order_id, view.state, view.cum_qty, view.cum_quote, view.fee_cum, view.fee_asset) == (
        "kq-7", OrderState.PARTIAL, 0.25, 776.375, 0.776375, "USDT")
    assert (view.venue_order_id, view.side, view.price, view.qty) == (2034857612398455296, Side.SELL, 3105.5, 0.4)


def test_execution_is_one_fill_with_how_much_of_the_order_is_done() -> None:
    [(view, fill)] = _parse("private_execution.json").orders
    assert (view.client_order_id, view.state, view.cum_qty, view.fee_cum, view.qty) == (
        "kq-7", OrderState.PARTIAL, pytest.approx(0.25), None, 0.4)
    assert view.ts_exchange_ns == 1764851303010 * 1_000_000
    assert fill == TradeFill("2100000000061234567", 0.15, 3105.5, 0.465825, "USDT")


def test_wallet_push_is_free_and_locked_per_coin_as_of_the_venue_clock() -> None:
    parsed = _parse("private_wallet.json")
    assert parsed.balances == {"ETH": (pytest.approx(1.2), 0.15), "USDT": (1776.375, 0.0)}
    assert parsed.balances_ms == 1764851303014  # creationTime: the clock of the fills' execTime, not receipt


@pytest.mark.parametrize("frame", ["{not json", "[]", '{"topic": "order", "data": [{"orderStatus": "New"}]}',
                                   '{"topic": "position", "data": []}', '{"op": "unsubscribe", "success": true}',
                                   '{"topic": "execution", "data": [{"execType": "Trade", "orderQty": "1"}]}'])
def test_a_bad_frame_is_counted_and_the_stream_goes_on(frame: str) -> None:
    sink = Sink()
    stream = _stream(sink)
    stream._on_text(Socket(), frame)
    assert stream.counts["bad_frames"] == 1 and sink.orders == []


# -- order + execution through the tracker ------------------------------------------------------------------

def _execution(exec_id: str, qty: str, price: str, fee: str, leaves: str) -> str:
    item = fixture("bybit/private_execution.json")["data"][0] | {
        "execId": exec_id, "execQty": qty, "execPrice": price, "execFee": fee, "leavesQty": leaves}
    return orjson.dumps({"topic": "execution", "creationTime": 1, "data": [item]}).decode()


def _order(status: str, cum: str, value: str, fee: str) -> str:
    item = fixture("bybit/private_order.json")["data"][0] | {
        "orderStatus": status, "cumExecQty": cum, "cumExecValue": value, "cumExecFee": fee}
    return orjson.dumps({"topic": "order", "creationTime": 1, "data": [item]}).decode()


# kq-7 sells 0.4 ETH in two fills: 0.1 at 3106 then 0.3 at 3105 (fees 0.1% of value, in USDT)
E1 = _execution("x1", "0.1", "3106", "0.3106", "0.3")
E2 = _execution("x2", "0.3", "3105", "0.9315", "0")
O1 = _order("PartiallyFilled", "0.1", "310.6", "0.3106")
O2 = _order("Filled", "0.4", "1242.1", "1.2421")


def _run(frames: list[str]) -> tuple[list[ExecReport], OrderTracker]:
    out: list[ExecReport] = []
    tracker = OrderTracker(out.append, lambda order, qty, notional: pytest.fail("the venue told every fee"))
    tracker.open(OrderRequest("kq-7", 2, "ETHUSDT", Side.SELL, OrderType.LIMIT, Tif.GTC, 3100.0, 0.4, 0))
    stream = _stream()
    for frame in frames:
        for view, fill in stream.parse(frame).orders:
            tracker.apply(view) if fill is None else tracker.apply_fill(view, fill)
    return out, tracker


def _fills(out: list[ExecReport]) -> list[tuple[Any, ...]]:
    return [(round(r.last_qty, 12), r.last_px, round(r.fee, 12), r.fee_asset) for r in out if r.kind is ExecKind.FILL]


@pytest.mark.parametrize("frames", [
    [E1, O1, E2, O2],            # each fill's execution first
    [O1, E1, O2, E2],            # each order push first
    [E1, E1, O1, O1, E2, O2, E2, O2],  # everything twice
    [E2, E1, O2, O1],            # executions reordered: the second is held until the first arrives
    [O2, E1, E2, O1],            # the final push first: one report for both fills, executions only record ids
    [E2, O1, O2, E1],            # held second fill released by the first order push
], ids=["execution-first", "order-first", "duplicated", "reordered", "final-push-first", "held-then-pushed"])
def test_every_fill_once_whichever_topic_comes_first(frames: list[str]) -> None:
    out, tracker = _run(frames)
    fills = _fills(out)
    assert sum(f[0] for f in fills) == pytest.approx(0.4) and sum(f[2] for f in fills) == pytest.approx(1.2421)
    assert sum(f[0] * f[1] for f in fills) == pytest.approx(1242.1)
    assert out[-1].state is OrderState.FILLED and tracker.live() == []
    assert [r.kind for r in out].count(ExecKind.ACK) == 1


def test_executions_first_report_each_fill_at_its_own_price_and_fee() -> None:
    out, tracker = _run([E1, E2, O1, O2])
    assert _fills(out) == [(0.1, 3106.0, 0.3106, "USDT"), (0.3, 3105.0, 0.9315, "USDT")]
    assert tracker.duplicates == 0
