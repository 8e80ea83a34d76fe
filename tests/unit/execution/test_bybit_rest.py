"""Bybit v5 spot REST: the documented signature, requests signed exactly as the venue checks them, parsers,
filters and error classification against our hand-written venue fixtures (tests/fixtures/bybit)."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import parse_qsl

import orjson
import pytest

from kairos import config
from kairos.config import EndpointConfig, Secret, VenueConfig
from kairos.execution import OrderRequest
from kairos.execution.bybit import BybitExecution, bybit_filters
from kairos.execution.signing_bybit import bybit_check, bybit_in_window, bybit_signature
from kairos.execution.venue import Outcome
from kairos.instruments import InstrumentTable
from kairos.ratelimit import Budget
from kairos.ratelimit.bybit import LIMITS
from kairos.records import OrderState, OrderType, RejectReason, Side, Tif
from tests.fixtures import fixture, fixture_bytes

# Bybit v5 docs § Integration guidance / Authentication: the example request (timestamp 1658384314791,
# recv_window 5000, GET /v5/order/realtime?category=option&symbol=BTC-29JUL22-25000-C) with our own key and
# secret "XXXXXXXXXX"; the docs publish no output, so the expected values were computed independently with
# `printf %s "$timestamp$key$recv_window$payload" | openssl dgst -sha256 -hmac "$secret"`.
KEY = SECRET = "XXXXXXXXXX"
TS, WINDOW = "1658384314791", "5000"
GET_PAYLOAD = "category=option&symbol=BTC-29JUL22-25000-C"
POST_BODY = ('{"category":"spot","symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"0.001","price":"60000",'
             '"timeInForce":"GTC","orderLinkId":"kq-1"}')


def test_bybit_get_vector_signs_the_query_string() -> None:
    sign = bybit_signature(SECRET, TS, KEY, WINDOW, GET_PAYLOAD)
    assert sign == "c00720f96c5934ca7057ac28ae65b823f83b8b67a8fe784e7795ca0fa3c148ec"
    assert bybit_check(SECRET, TS, KEY, WINDOW, GET_PAYLOAD, sign)
    assert not bybit_check(SECRET, TS, KEY, "10000", GET_PAYLOAD, sign)   # the window is signed too
    assert not bybit_check(SECRET, TS, KEY, WINDOW, GET_PAYLOAD, sign.upper())  # lowercase hex only


def test_bybit_post_vector_signs_the_exact_body() -> None:
    sign = bybit_signature(SECRET, TS, KEY, WINDOW, POST_BODY)
    assert sign == "6dae353a28d72ede8abe0d3f6ee534d63e1564a96360fdbea027a3b3de359cef"
    assert not bybit_check(SECRET, TS, KEY, WINDOW, POST_BODY.replace(":", ": "), sign)


def test_bybit_timestamp_window_is_recv_window_behind_and_one_second_ahead() -> None:
    server = 1_700_000_000_000
    assert bybit_in_window(server - 5000, server, 5000) and bybit_in_window(server + 999, server, 5000)
    assert not bybit_in_window(server - 5001, server, 5000) and not bybit_in_window(server + 1000, server, 5000)


@pytest.fixture
def bybit():
    settings = config.load(env={})
    cfg = VenueConfig(endpoints={"sim": EndpointConfig("http://127.0.0.1:1", "ws://127.0.0.1:1")},
                      api_key=Secret("key"), api_secret=Secret("secret"))
    ex = BybitExecution(cfg, settings.execution, InstrumentTable(settings.instruments),
                        budget=Budget.local(LIMITS, 20.0, 0.0))
    yield ex
    ex.close()


def _req(order_type: OrderType = OrderType.LIMIT, tif: Tif = Tif.GTC, side: Side = Side.BUY) -> OrderRequest:
    return OrderRequest("kq-7", 1, "BTCUSDT", side, order_type, tif, 60000.0, 0.01, 0)


def _checks(call, signed_payload: str) -> bool:
    h = call.headers
    return bybit_check("secret", h["X-BAPI-TIMESTAMP"], "key", h["X-BAPI-RECV-WINDOW"], signed_payload,
                       h["X-BAPI-SIGN"])


def test_place_limit_signs_the_json_body(bybit) -> None:
    call = bybit.place_call(_req(), "60000", "0.01")
    body = orjson.loads(call.body)
    assert (call.method, call.path) == ("POST", "/v5/order/create")
    assert body == {"category": "spot", "symbol": "BTCUSDT", "side": "Buy", "qty": "0.01", "orderLinkId": "kq-7",
                    "orderType": "Limit", "price": "60000", "timeInForce": "GTC"}
    assert call.headers["X-BAPI-RECV-WINDOW"] == "5000" and _checks(call, call.body)
    assert bybit.session_headers() == {"X-BAPI-API-KEY": "key", "Content-Type": "application/json"}


@pytest.mark.parametrize(("order_type", "tif", "expected"), [
    (OrderType.MARKET, Tif.GTC, {"orderType": "Market", "marketUnit": "baseCoin"}),  # base qty, not quote
    (OrderType.LIMIT, Tif.IOC, {"orderType": "Limit", "price": "60000", "timeInForce": "IOC"}),
    (OrderType.LIMIT, Tif.FOK, {"orderType": "Limit", "price": "60000", "timeInForce": "FOK"}),
    (OrderType.LIMIT_MAKER, Tif.GTC, {"orderType": "Limit", "price": "60000", "timeInForce": "PostOnly"}),
])
def test_order_types(bybit, order_type: OrderType, tif: Tif, expected: dict) -> None:
    body = orjson.loads(bybit.place_call(_req(order_type, tif, Side.SELL), "60000", "0.01").body)
    assert body["side"] == "Sell" and {k: body[k] for k in expected} == expected
    assert ("price" in body) is (order_type is not OrderType.MARKET)


def test_get_signs_the_query_string_as_sent(bybit) -> None:
    call = bybit.query_call("kq-7", "BTCUSDT")
    path, _, query = call.path.partition("?")
    assert (call.method, path, call.body) == ("GET", "/v5/order/realtime", "")
    assert parse_qsl(query) == [("category", "spot"), ("symbol", "BTCUSDT"), ("orderLinkId", "kq-7")]
    assert _checks(call, query)
    cancel = bybit.cancel_call("kq-7", "BTCUSDT")
    assert orjson.loads(cancel.body) == {"category": "spot", "symbol": "BTCUSDT", "orderLinkId": "kq-7"}
    assert _checks(cancel, cancel.body)
    assert bybit.balances_call().path == "/v5/account/wallet-balance?accountType=UNIFIED"
    assert bybit.open_orders_call(None).path == "/v5/order/realtime?category=spot&openOnly=0"


def test_parsers_on_venue_responses(bybit) -> None:
    placed = bybit.parse_placed(fixture("bybit/order_create.json"), _req())
    assert (placed.client_order_id, placed.venue_order_id, placed.state) == ("kq-7", 2034857612398455296,
                                                                             OrderState.ACK)
    view = bybit.parse_queried(fixture("bybit/order_realtime.json"))
    assert (view.state, view.side, view.cum_qty, view.cum_quote, view.fee_cum, view.fee_asset) == \
        (OrderState.PARTIAL, Side.SELL, 0.25, 776.375, 0.776375, "USDT")
    assert view.ts_exchange_ns == 1764851303012 * 1_000_000
    assert bybit.parse_queried(fixture("bybit/order_realtime_empty.json")) is None  # unknown order: not an error
    assert bybit.parse_open_orders(fixture("bybit/order_realtime_empty.json")) == []
    assert bybit.parse_balances(fixture("bybit/wallet_balance.json")) == {"USDT": (8500.25, 1500.25),
                                                                          "ETH": (1.3 - 0.15, 0.15)}
    assert bybit.parse_time(fixture("bybit/server_time.json")) == 1764851299990


@pytest.mark.parametrize(("status", "tif", "order_type", "expected"), [
    ("New", "GTC", "Limit", OrderState.ACK), ("Filled", "IOC", "Limit", OrderState.FILLED),
    ("Cancelled", "GTC", "Limit", OrderState.CANCELED), ("Cancelled", "IOC", "Limit", OrderState.EXPIRED),
    ("PartiallyFilledCanceled", "GTC", "Market", OrderState.EXPIRED), ("Rejected", "GTC", "Limit", OrderState.REJECTED),
])
def test_order_states(bybit, status: str, tif: str, order_type: str, expected: OrderState) -> None:
    item = dict(fixture("bybit/order_realtime.json")["result"]["list"][0], orderStatus=status, timeInForce=tif,
                orderType=order_type)
    assert bybit.parse_order({"retCode": 0, "result": {"list": [item]}}).state is expected


def test_filters_from_instruments_info() -> None:
    btc, eth = (bybit_filters(i) for i in fixture("bybit/instruments_info.json")["result"]["list"])
    assert (btc.tick, btc.step, btc.max_qty_d, btc.min_notional_d, btc.max_notional_d) == \
        (Decimal("0.01"), Decimal("0.000001"), Decimal("71.73956243"), Decimal("1"), Decimal("2000000"))
    assert btc.min_qty_d == 0  # minOrderQty is deprecated: the minimum is the order value (minOrderAmt)
    assert eth.violation(Decimal("3000"), Decimal("0.0001")) == "NOTIONAL"   # 0.3 USDT < 1
    assert eth.violation(Decimal("3000"), Decimal("0.000011")) == "LOT_SIZE"
    assert eth.violation(Decimal("3000.005"), Decimal("0.001")) == "PRICE_FILTER"
    assert eth.violation(Decimal("3000"), Decimal("0.001")) == ""


RL, UNK, NF, REJ = Outcome.RATE_LIMITED, Outcome.UNKNOWN, Outcome.NOT_FOUND, Outcome.REJECTED


BYBIT_ERRORS = [
    ("bybit/error_10004_sign.json", 200, REJ, "10004", RejectReason.VENUE_AUTH, False),
    ("bybit/error_10002_clock.json", 200, REJ, "10002", RejectReason.VENUE_REJECTED, True),
    ("bybit/error_10006_rate.json", 200, RL, "10006", RejectReason.VENUE_RATE_LIMIT, False),
    ("bybit/error_170131_balance.json", 200, REJ, "170131", RejectReason.VENUE_INSUFFICIENT_BALANCE, False),
    ("bybit/error_170136_qty.json", 200, REJ, "170136", RejectReason.VENUE_FILTER, False),
    ("bybit/error_170213_cancel.json", 200, NF, "170213", RejectReason.UNKNOWN_ORDER, False),
]


@pytest.mark.parametrize(("name", "status", "outcome", "code", "reason", "skew"), BYBIT_ERRORS)
def test_error_classification(bybit, name: str, status: int, outcome: Outcome, code: str, reason: RejectReason,
                              skew: bool) -> None:
    reply = bybit.classify(status, {}, fixture_bytes(name))
    assert (reply.outcome, reply.code, reply.reason, reply.clock_skew) == (outcome, code, reason, skew)
    assert reply.message == fixture(name)["retMsg"]


@pytest.mark.parametrize(("status", "body", "outcome", "code"), [
    (403, b"<html>403 Forbidden</html>", RL, "HTTP403"),   # the per-IP cap: a refusal, nothing more is sent
    (200, b'{"retCode":10016,"retMsg":"Internal server error.","result":{}}', UNK, "10016"),
    (502, b"<html>Bad Gateway</html>", UNK, "HTTP502"),
])
def test_status_driven_outcomes(bybit, status: int, body: bytes, outcome: Outcome, code: str) -> None:
    assert (bybit.classify(status, {}, body).outcome, bybit.classify(status, {}, body).code) == (outcome, code)


@pytest.mark.parametrize("name", ["bybit/order_create.json", "bybit/order_cancel.json", "bybit/order_realtime.json",
                                  "bybit/wallet_balance.json", "bybit/server_time.json", "bybit/instruments_info.json"])
def test_success_bodies_are_ok(bybit, name: str) -> None:
    assert bybit.classify(200, {}, fixture_bytes(name)).outcome is Outcome.OK
