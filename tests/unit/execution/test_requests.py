"""Request builders (signed exactly as the venues check) and response parsers against our venue fixtures."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from urllib.parse import parse_qsl

import orjson
import pytest

from kairos import config
from kairos.config import Secret
from kairos.execution import EXECUTORS, OrderRequest
from kairos.execution.signing_binance import binance_check
from kairos.execution.signing_okx import okx_check
from kairos.instruments import InstrumentTable
from kairos.records import OrderState, OrderType, Side, Tif
from tests.fixtures import fixture


def _req(order_type: OrderType = OrderType.LIMIT, tif: Tif = Tif.GTC, side: Side = Side.BUY) -> OrderRequest:
    return OrderRequest("abc123", 1, "BTCUSDT", side, order_type, tif, 60000.0, 0.01, 0)


@pytest.fixture
def signed():
    settings = config.load(env={})
    table = InstrumentTable(settings.instruments)
    keys = {"api_key": Secret("key"), "api_secret": Secret("secret"), "passphrase": Secret("pass")}
    built = {name: cls(dataclasses.replace(settings.venues[name], **keys), settings.execution, table)
             for name, cls in EXECUTORS.items()}
    yield built
    for executor in built.values():
        executor.close()


def test_binance_post_signs_the_form_body(signed) -> None:
    ex = signed["binance"]
    call = ex.place_call(_req(), "60000", "0.01")
    assert (call.method, call.path, call.headers["Content-Type"]) == ("POST", "/api/v3/order",
                                                                       "application/x-www-form-urlencoded")
    payload, signature = call.body.rsplit("&signature=", 1)
    assert binance_check("secret", payload, signature)
    params = dict(parse_qsl(payload))
    assert params | {"timestamp": "T"} == {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                                           "quantity": "0.01", "price": "60000", "newClientOrderId": "abc123",
                                           "newOrderRespType": "FULL", "recvWindow": "5000", "timestamp": "T"}
    assert ex.session_headers() == {"X-MBX-APIKEY": "key"}


def test_binance_market_and_maker_params(signed) -> None:
    market = dict(parse_qsl(signed["binance"].place_call(_req(OrderType.MARKET), None, "0.01").body))
    assert market["type"] == "MARKET" and "price" not in market and "timeInForce" not in market
    maker = dict(parse_qsl(signed["binance"].place_call(_req(OrderType.LIMIT_MAKER), "1", "1").body))
    assert maker["type"] == "LIMIT_MAKER" and "timeInForce" not in maker


def test_binance_get_and_delete_sign_the_query_string(signed) -> None:
    for call in (signed["binance"].query_call("abc123", "BTCUSDT"), signed["binance"].cancel_call("abc123", "BTCUSDT")):
        path, query = call.path.split("?", 1)
        payload, signature = query.rsplit("&signature=", 1)
        assert path == "/api/v3/order" and call.body == "" and binance_check("secret", payload, signature)
        assert dict(parse_qsl(payload))["origClientOrderId"] == "abc123"


def test_binance_parsers_on_venue_responses(signed) -> None:
    ex = signed["binance"]
    full = ex.parse_placed(fixture("binance/order_full.json"), _req())
    assert (full.client_order_id, full.state, full.venue_order_id, full.side) == ("kx7Ab2ETH0002", OrderState.FILLED,
                                                                                 31000219, Side.BUY)
    assert (full.cum_qty, full.cum_quote, full.fee_asset, full.ts_exchange_ns) == (1.5, 3626.082, "ETH",
                                                                                   1764851300164 * 1_000_000)
    assert full.fee_cum == pytest.approx(0.0006 + 0.0009)
    ack = ex.parse_placed(fixture("binance/order_ack.json"), _req())
    assert (ack.state, ack.client_order_id, ack.venue_order_id, ack.fee_cum) == (OrderState.ACK, "kx7Ab2ETH0001",
                                                                                 31000218, None)
    cancel = ex.parse_order(fixture("binance/cancel_response.json"))  # the cancelled order is origClientOrderId
    assert (cancel.client_order_id, cancel.state, cancel.price, cancel.qty, cancel.cum_qty, cancel.side) == (
        "kx7Ab2SOL0042", OrderState.CANCELED, 0.0015, 10.0, 2.0, Side.SELL)
    assert ex.parse_balances(fixture("binance/account.json")) == {"ETH": (3.25, 0.5), "USDT": (10250.75, 0.0)}
    assert ex.parse_time(fixture("binance/server_time.json")) == 1764851299987
    filters = ex.parse_filters(fixture("binance/exchange_info.json"))
    assert set(filters) == {"ETHUSDT", "DOGEUSDT"} and filters["ETHUSDT"].tick == Decimal("0.01")
    assert ex.budget.limit(0) == 6000  # exchangeInfo's REQUEST_WEIGHT: never above the table's


def test_okx_place_body_headers_and_signature(signed) -> None:
    ex = signed["okx"]
    req = dataclasses.replace(_req(tif=Tif.IOC), symbol="BTC-USDT")
    call = ex.place_call(req, "60000.1", "0.01")
    body = orjson.loads(call.body)
    assert body == {"instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "clOrdId": "abc123", "sz": "0.01",
                    "ordType": "ioc", "px": "60000.1"}
    stamp = call.headers["OK-ACCESS-TIMESTAMP"]
    assert okx_check("secret", stamp, "POST", "/api/v5/trade/order", call.body, call.headers["OK-ACCESS-SIGN"])
    assert int(call.headers["expTime"]) > 0
    market = orjson.loads(ex.place_call(dataclasses.replace(req, order_type=OrderType.MARKET), None, "0.01").body)
    assert market["ordType"] == "market" and market["tgtCcy"] == "base_ccy" and "px" not in market
    maker = orjson.loads(ex.place_call(dataclasses.replace(req, order_type=OrderType.LIMIT_MAKER), "1", "1").body)
    assert maker["ordType"] == "post_only"


def test_okx_get_puts_the_query_in_the_signed_path(signed) -> None:
    call = signed["okx"].query_call("abc123", "BTC-USDT")
    assert call.path == "/api/v5/trade/order?instId=BTC-USDT&clOrdId=abc123" and call.body == ""
    stamp, sign = call.headers["OK-ACCESS-TIMESTAMP"], call.headers["OK-ACCESS-SIGN"]
    assert okx_check("secret", stamp, "GET", call.path, "", sign)


def test_okx_session_headers_and_demo_flag(signed) -> None:
    assert signed["okx"].session_headers() == {"OK-ACCESS-KEY": "key", "OK-ACCESS-PASSPHRASE": "pass",
                                               "Content-Type": "application/json"}
    settings = config.load(env={})
    demo = EXECUTORS["okx"](dataclasses.replace(settings.venues["okx"], endpoint="demo"), settings.execution,
                            InstrumentTable(settings.instruments))
    try:
        assert demo.session_headers()["x-simulated-trading"] == "1"
    finally:
        demo.close()


def test_okx_parsers_on_venue_responses(signed) -> None:
    ex = signed["okx"]
    placed = ex.parse_placed(fixture("okx/order_response.json"), dataclasses.replace(_req(), symbol="ETH-USDT"))
    assert (placed.client_order_id, placed.state, placed.venue_order_id, placed.symbol) == (
        "kx7Ab2ETH0007", OrderState.ACK, 2210459183775297536, "ETH-USDT")
    assert placed.ts_exchange_ns == 1764851300217 * 1_000_000
    assert ex.parse_balances(fixture("okx/balance_response.json")) == {"USDT": (8250.5, 1749.5), "ETH": (1.25, 0.05),
                                                                       "SOL": (0.0, 0.0)}  # "" is 0
    assert ex.parse_time(fixture("okx/system_time.json")) == 1764851299990
    filters = ex.parse_filters(fixture("okx/instruments.json"))
    assert set(filters) == {"ETH-USDT", "SOL-USDT"} and filters["SOL-USDT"].tick == Decimal("0.001")


@pytest.mark.parametrize(("state", "ord_type", "expected"), [
    ("live", "limit", OrderState.ACK), ("partially_filled", "limit", OrderState.PARTIAL),
    ("filled", "ioc", OrderState.FILLED), ("canceled", "limit", OrderState.CANCELED),
    ("canceled", "ioc", OrderState.EXPIRED), ("canceled", "market", OrderState.EXPIRED),
])
def test_okx_order_states(signed, state: str, ord_type: str, expected: OrderState) -> None:
    item = {"clOrdId": "c", "ordId": "1", "instId": "BTC-USDT", "state": state, "ordType": ord_type, "side": "buy",
            "accFillSz": "0.5", "avgPx": "100", "fee": "-0.0005", "feeCcy": "BTC", "px": "100", "sz": "1",
            "uTime": "1597026383085"}
    view = signed["okx"].parse_order({"code": "0", "data": [item]})
    assert (view.state, view.cum_qty, view.cum_quote, view.fee_cum) == (expected, 0.5, 50.0, 0.0005)
