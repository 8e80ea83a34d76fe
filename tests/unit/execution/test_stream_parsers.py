"""Private stream parsers on hand-written frames in the documented shapes (EXCHANGE-PROTOCOLS.md D1, D2)."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from kairos import config
from kairos.config import Secret
from kairos.execution.signing import percent_encode
from kairos.execution.signing_binance import binance_check
from kairos.execution.signing_okx import okx_check
from kairos.execution.state import OrderView, TradeFill
from kairos.execution.stream import PrivateStream, StreamDown
from kairos.execution.stream_binance import BinanceStream
from kairos.execution.stream_okx import OkxStream
from kairos.records import OrderState, Side

NOW_MS = 1_767_225_600_000


class Sink:
    def __init__(self) -> None:
        self.up = 0
        self.orders: list[tuple[OrderView, TradeFill | None]] = []
        self.balances: list[dict[str, tuple[float, float]]] = []

    def on_stream_up(self) -> None:
        self.up += 1

    def on_order(self, view: OrderView, fill: TradeFill | None) -> None:
        self.orders.append((view, fill))

    def on_balances(self, balances: dict[str, tuple[float, float]], deltas: dict[str, float], ts_ms: int) -> None:
        self.balances.append(balances)


class Socket:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, frame: str) -> None:
        self.sent.append(frame)


def _stream(cls: type[PrivateStream], sink: Sink | None = None) -> PrivateStream:
    base = config.load(env={})
    venue = dataclasses.replace(base.venues[cls.name], api_key=Secret("key"), api_secret=Secret("secret"),
                                passphrase=Secret("pass"))
    return cls(venue, base.execution, sink or Sink(), lambda: NOW_MS)


def _report(**changes: object) -> str:
    event = {"e": "executionReport", "E": NOW_MS, "s": "BTCUSDT", "c": "c1", "S": "BUY", "o": "LIMIT", "f": "GTC",
             "q": "0.30", "p": "60000.00", "C": "", "x": "TRADE", "X": "PARTIALLY_FILLED", "r": "NONE", "i": 1001,
             "l": "0.10", "z": "0.10", "L": "60000.00", "n": "0.0001", "N": "BTC", "T": NOW_MS + 1, "t": 77,
             "w": False, "m": True, "O": NOW_MS, "Z": "6000.00", "Y": "6000.00"} | changes
    return orjson.dumps({"subscriptionId": 0, "event": event}).decode()


def test_binance_subscribe_frame_is_signed_like_rest() -> None:
    msg = orjson.loads(_stream(BinanceStream).open_frames()[0])
    params = msg["params"]
    assert msg["method"] == "userDataStream.subscribe.signature" and params["timestamp"] == str(NOW_MS)
    payload = percent_encode(sorted((k, v) for k, v in params.items() if k != "signature"))
    assert params["apiKey"] == "key" and binance_check("secret", payload, params["signature"])


def test_binance_execution_report_trade() -> None:
    [(view, fill)] = _stream(BinanceStream).parse(_report()).orders
    assert (view.client_order_id, view.state, view.cum_qty, view.cum_quote, view.fee_cum) == (
        "c1", OrderState.PARTIAL, 0.1, 6000.0, None)
    assert (view.venue_order_id, view.side, view.price, view.qty, view.ts_exchange_ns) == (
        1001, Side.BUY, 60000.0, 0.3, (NOW_MS + 1) * 1_000_000)
    assert fill == TradeFill("77", 0.1, 60000.0, 0.0001, "BTC")


def test_binance_new_and_cancel_carry_no_fill_and_cancel_names_the_original_id() -> None:
    stream = _stream(BinanceStream)
    [(new, fill)] = stream.parse(_report(x="NEW", X="NEW", l="0", z="0", Z="0", t=-1, N=None)).orders
    assert (new.state, fill) == (OrderState.ACK, None)
    [(cancel, fill)] = stream.parse(_report(x="CANCELED", X="CANCELED", c="cxl9", C="c1")).orders
    assert (cancel.client_order_id, cancel.state, fill) == ("c1", OrderState.CANCELED, None)


def test_binance_account_events_and_replies() -> None:
    stream = _stream(BinanceStream)
    position = {"e": "outboundAccountPosition", "E": NOW_MS, "u": NOW_MS,
                "B": [{"a": "BTC", "f": "1.5", "l": "0.25"}, {"a": "USDT", "f": "100", "l": "0"}]}
    wrap = lambda event: orjson.dumps({"subscriptionId": 0, "event": event}).decode()  # noqa: E731
    assert stream.parse(wrap(position)).balances == {"BTC": (1.5, 0.25), "USDT": (100.0, 0.0)}
    update = {"e": "balanceUpdate", "E": NOW_MS, "a": "USDT", "d": "-12.5", "T": NOW_MS}
    assert stream.parse(wrap(update)).deltas == {"USDT": -12.5}
    assert stream.parse(wrap({"e": "eventStreamTerminated", "E": NOW_MS})).ended
    assert stream.parse('{"id": "s1", "status": 200, "result": {"subscriptionId": 3}}').ready
    assert not stream.parse('{"id": "heartbeat", "status": 200, "result": {}}').ready
    refused = stream.parse('{"id": "s1", "status": 400, "error": {"code": -1022, "msg": "Signature bad"}}')
    assert refused.refused == "-1022 Signature bad"
    with pytest.raises(ValueError, match="unknown event"):
        stream.parse(wrap({"e": "listStatus"}))


def _okx_order(**changes: object) -> str:
    item = {"instType": "SPOT", "instId": "BTC-USDT", "ordId": "600000000000000001", "clOrdId": "c1", "px": "60000",
            "sz": "0.3", "ordType": "limit", "side": "buy", "state": "partially_filled", "accFillSz": "0.2",
            "avgPx": "60000", "fillSz": "0.1", "fillPx": "60000", "tradeId": "501", "fillFee": "-0.00008",
            "fillFeeCcy": "BTC", "fee": "-0.00016", "feeCcy": "BTC", "uTime": str(NOW_MS), "cTime": str(NOW_MS)}
    return orjson.dumps({"arg": {"channel": "orders", "instType": "SPOT", "uid": "1"},
                         "data": [item | changes]}).decode()


def test_okx_login_frame_and_handshake() -> None:
    stream = _stream(OkxStream)
    login = orjson.loads(stream.open_frames()[0])["args"][0]
    assert login["timestamp"] == str(NOW_MS // 1000) and login["passphrase"] == "pass"
    assert okx_check("secret", login["timestamp"], "GET", "/users/self/verify", "", login["sign"])
    subscribe = orjson.loads(stream.parse('{"event": "login", "code": "0", "msg": ""}').send[0])
    assert subscribe["args"] == [{"channel": "orders", "instType": "SPOT"}, {"channel": "account"}]
    assert stream.parse('{"event": "subscribe", "arg": {"channel": "orders", "instType": "SPOT"}}').ready
    assert not stream.parse('{"event": "subscribe", "arg": {"channel": "account"}}').ready
    assert stream.parse('{"event": "error", "code": "60009", "msg": "Login failed."}').refused == "60009 Login failed."
    assert stream.parse("pong") == type(stream.parse("pong"))()


def test_okx_orders_and_account() -> None:
    stream = _stream(OkxStream)
    [(view, fill)] = stream.parse(_okx_order()).orders
    assert (view.state, view.cum_qty, view.cum_quote, view.fee_cum, view.fee_asset) == (
        OrderState.PARTIAL, 0.2, 12000.0, 0.00016, "BTC")
    assert fill == TradeFill("501", 0.1, 60000.0, 0.00008, "BTC")
    [(ioc, fill)] = stream.parse(_okx_order(ordType="ioc", state="canceled", tradeId="", fillSz="0")).orders
    assert (ioc.state, fill) == (OrderState.EXPIRED, None)
    account = {"arg": {"channel": "account", "uid": "1"},
               "data": [{"uTime": "1", "details": [{"ccy": "USDT", "availBal": "90", "frozenBal": "10"}]}]}
    assert stream.parse(orjson.dumps(account).decode()).balances == {"USDT": (90.0, 10.0)}


@pytest.mark.parametrize("cls", [BinanceStream, OkxStream])
@pytest.mark.parametrize("frame", ["{not json", "[]", '{"event": {"e": "executionReport"}}', '{"arg": {}}',
                                   '{"subscriptionId": 0, "event": {"e": "executionReport", "X": "WEIRD"}}'])
def test_a_bad_frame_is_counted_and_the_stream_goes_on(cls: type[PrivateStream], frame: str) -> None:
    sink = Sink()
    stream = _stream(cls, sink)
    stream._on_text(Socket(), frame)
    assert stream.counts["bad_frames"] == 1 and sink.orders == []


def test_subscription_confirmed_tells_the_sink_once_and_a_refusal_ends_the_session() -> None:
    sink, socket = Sink(), Socket()
    stream = _stream(BinanceStream, sink)
    stream._on_text(socket, '{"id": "s1", "status": 200, "result": {"subscriptionId": 0}}')
    stream._on_text(socket, _report())
    assert stream.healthy and sink.up == 1 and len(sink.orders) == 1
    with pytest.raises(StreamDown, match="-2015"):
        stream._on_text(socket, '{"id": "s2", "status": 401, "error": {"code": -2015, "msg": "Invalid API-key"}}')
