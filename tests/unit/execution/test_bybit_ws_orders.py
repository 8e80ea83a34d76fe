"""Bybit orders over ``/v5/trade``: the client's frames and reply classification on hand-written fixtures, and
driven against the simulator's order socket in process (auth first, timestamp window, one spot order, the REST
trading dialect's checks and ledger, the REST rate meter's per-endpoint limit 10006)."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from kairos.execution import OrderRequest
from kairos.execution.signing_bybit import bybit_ws_check
from kairos.execution.venue import Outcome
from kairos.records import OrderState, OrderType, RejectReason, Side, Tif
from kairos.sim.private_bybit import ORDER_PATH
from tests.fixtures import fixture
from tests.unit.execution.sim_venue import SimVenue

SYMBOL = "BTCUSDT"


@pytest.fixture
def bybit() -> Iterator[SimVenue]:
    venue = SimVenue("bybit", SYMBOL, meter_scale=0.5, path=ORDER_PATH)
    yield venue
    venue.close()


def test_the_order_socket_is_the_private_urls_trade_path(bybit: SimVenue) -> None:
    assert bybit.client.ws_orders_url() == "ws://127.0.0.1:18103/v5/trade"


def test_auth_frame_and_reply(bybit: SimVenue) -> None:
    [frame] = bybit.client.ws_login()
    msg = orjson.loads(frame)
    assert (msg["reqId"], msg["op"], msg["args"][0]) == ("auth", "auth", "k")
    assert bybit_ws_check("s", msg["args"][1], msg["args"][2])
    assert bybit.client.ws_logged_in(fixture("bybit/ws_auth.json"))
    assert not bybit.client.ws_logged_in(fixture("bybit/private_auth.json"))      # the stream's reply shape
    assert not bybit.client.ws_logged_in(fixture("bybit/ws_auth.json") | {"retCode": 10004})


def test_place_and_cancel_frames_carry_the_rest_bodies_and_a_stamped_header(bybit: SimVenue) -> None:
    req = OrderRequest("kq-9", 1, SYMBOL, Side.BUY, OrderType.MARKET, Tif.IOC, 0.0, 0.002, 0)
    place = orjson.loads(bybit.client.ws_place("o1", req, None, "0.002"))
    assert (place["reqId"], place["op"]) == ("o1", "order.create")
    assert place["args"] == [orjson.loads(bybit.client.place_call(req, None, "0.002").body)]
    assert place["args"][0]["marketUnit"] == "baseCoin"
    assert place["header"]["X-BAPI-RECV-WINDOW"] == str(bybit.client.recv_window_ms)
    assert place["header"]["X-BAPI-TIMESTAMP"].isdigit()
    cancel = orjson.loads(bybit.client.ws_cancel("o2", "kq-9", SYMBOL))
    assert (cancel["op"], cancel["args"]) == ("order.cancel", [{"category": "spot", "symbol": SYMBOL,
                                                                "orderLinkId": "kq-9"}])


def test_replies_are_classified_like_rest(bybit: SimVenue) -> None:
    reply, used = bybit.client.ws_reply(fixture("bybit/ws_order_create.json"))
    assert (reply.outcome, used) == (Outcome.OK, -1)
    req = OrderRequest("kq-9", 1, SYMBOL, Side.BUY, OrderType.LIMIT, Tif.GTC, 60000.0, 0.01, 0)
    view = bybit.client.parse_placed(reply.data, req)
    assert (view.client_order_id, view.state, view.venue_order_id) == ("kq-9", OrderState.ACK, 2034857612398455301)
    assert view.ts_exchange_ns == 1764851400322 * 1_000_000
    refused, _ = bybit.client.ws_reply(fixture("bybit/ws_order_refused_170131.json"))
    assert (refused.outcome, refused.code, refused.reason) == (Outcome.REJECTED, "170131",
                                                               RejectReason.VENUE_INSUFFICIENT_BALANCE)
    for unreadable in ({"reqId": "o1", "op": "order.create"}, fixture("bybit/ws_order_create.json") | {"data": {}}):
        with pytest.raises(ValueError):
            bybit.client.ws_reply(unreadable)


def test_orders_need_auth_first_then_reach_the_ledger(bybit: SimVenue) -> None:
    reply, msg = bybit.place("a1", bybit.resting_price())
    assert (msg["reqId"], msg["op"], reply.code) == ("oa1", "order.create", "10003")
    assert bybit.send(bybit.client.ws_login()[0])["retCode"] == 0
    reply, msg = bybit.place("a1", bybit.resting_price())
    assert reply.outcome is Outcome.OK and msg["data"]["orderLinkId"] == "a1"
    assert bybit.exchange.get(SYMBOL, "a1") is not None
    cancelled = bybit.client.ws_reply(bybit.send(bybit.client.ws_cancel("c1", "a1", SYMBOL)))[0]
    assert cancelled.outcome is Outcome.OK and bybit.exchange.open_orders(SYMBOL) == []
    again = bybit.client.ws_reply(bybit.send(bybit.client.ws_cancel("c2", "a1", SYMBOL)))[0]
    assert (again.outcome, again.code) == (Outcome.NOT_FOUND, "170213")


def test_a_stale_timestamp_a_bad_order_and_the_rate_limit_are_refused(bybit: SimVenue) -> None:
    bybit.send(bybit.client.ws_login()[0])
    frame = orjson.loads(bybit.client.ws_cancel("c1", "none", SYMBOL))
    stale = frame | {"header": {"X-BAPI-TIMESTAMP": "1000", "X-BAPI-RECV-WINDOW": "5000"}}
    assert bybit.send(stale)["retCode"] == 10002
    for args in ([], [frame["args"][0]] * 2, [frame["args"][0] | {"category": "linear"}]):
        assert bybit.send(frame | {"args": args})["retCode"] == 10001
    assert bybit.place("b1", bybit.resting_price(), qty=50.0)[0].code == "170131"        # beyond the balance
    codes = [bybit.place(f"r{i}", bybit.resting_price())[0].code for i in range(40)]
    assert "10006" in codes                                  # the REST meter's create limit (5 a second here)
    assert bybit.send('{"op": "ping", "reqId": "h1"}')["op"] == "pong"
