"""The simulator's OKX WebSocket orders (kairos/sim/private_okx.py) driven by the executor's own frames, in
process: login first, instrument by the instIdCode the public instruments endpoint publishes, the REST trading
dialect's checks and ledger, the REST rate meter's per-endpoint limit (50011)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from kairos.execution import OrderRequest
from kairos.execution.venue import Outcome
from kairos.records import OrderType, RejectReason, Side, Tif, Venue
from kairos.sim.exchange import Status
from kairos.sim.okx import OkxDialect
from kairos.sim.router import Request
from tests.unit.execution.sim_venue import SimVenue

SYMBOL = "BTC-USDT"


@pytest.fixture
def okx() -> Iterator[SimVenue]:
    """OKX with the place limit at 3 per 2 s; the executor knows the instIdCodes the public endpoint publishes."""
    venue = SimVenue("okx", SYMBOL, meter_scale=0.05)
    public = OkxDialect(venue.market, venue.settings.sim)._instruments(
        Request("GET", "/api/v5/public/instruments", "instType=SPOT", {"instType": "SPOT"}, {}, b"", Venue.OKX))
    venue.client.parse_filters(orjson.loads(public.body))
    yield venue
    venue.close()


def test_orders_need_login_first(okx: SimVenue) -> None:
    reply, msg = okx.place("a1", okx.resting_price())
    assert (msg["id"], msg["op"], reply.code) == ("oa1", "order", "60011")
    assert okx.send(okx.client.ws_login()[0]) == {"event": "login", "code": "0", "msg": "", "connId": "1"}
    assert okx.place("a1", okx.resting_price())[0].outcome is Outcome.OK


def test_place_and_cancel_move_the_same_ledger_as_rest(okx: SimVenue) -> None:
    okx.send(okx.client.ws_login()[0])
    reply, msg = okx.place("b1", okx.resting_price())
    assert reply.outcome is Outcome.OK and okx.session.ordered and "inTime" in msg and "outTime" in msg
    order = okx.exchange.get(SYMBOL, "b1")
    assert order is not None and order.status is Status.NEW
    assert str(order.order_id) == msg["data"][0]["ordId"]
    cancel = okx.send(okx.client.ws_cancel("oc", "b1", SYMBOL))
    assert (cancel["op"], okx.client.ws_reply(cancel)[0].outcome) == ("cancel-order", Outcome.OK)
    assert okx.exchange.get(SYMBOL, "b1").status is Status.CANCELED
    reply, _ = okx.place("b2", okx.resting_price(), qty=500.0)                 # beyond the balance
    assert (reply.outcome, reply.code, reply.reason) == (Outcome.REJECTED, "51008",
                                                        RejectReason.VENUE_INSUFFICIENT_BALANCE)


@pytest.mark.parametrize(("args", "code"), [
    ([{"tdMode": "cash", "side": "buy", "ordType": "limit", "sz": "0.01", "px": "1", "instId": SYMBOL}], "50014"),
    ([{"instIdCode": 999, "tdMode": "cash", "side": "buy", "ordType": "limit", "sz": "0.01", "px": "1"}], "51001"),
    ([{"instIdCode": "2000001", "tdMode": "cash", "side": "buy", "ordType": "limit", "sz": "1", "px": "1"}], "51001"),
    ([{}, {}], "60013"),
    (["order"], "60013"),
])
def test_requests_the_venue_refuses(okx: SimVenue, args: list[Any], code: str) -> None:
    okx.send(okx.client.ws_login()[0])
    msg = okx.send({"id": "x1", "op": "order", "args": args})
    assert okx.client.ws_reply(msg)[0].code == code and not okx.session.ordered
    assert okx.exchange.open_orders(None) == []


def test_an_expired_request_is_refused(okx: SimVenue) -> None:
    okx.send(okx.client.ws_login()[0])
    frame = orjson.loads(okx.client.ws_place("e1", OrderRequest("e1", 1, SYMBOL, Side.BUY, OrderType.LIMIT, Tif.GTC,
                                                                okx.resting_price(), 0.01, 0), "1", "0.01"))
    frame["expTime"] = "1000"
    assert okx.client.ws_reply(okx.send(frame))[0].code == "50102"
    assert okx.exchange.get(SYMBOL, "e1") is None


def test_over_the_place_limit_is_50011_for_that_endpoint_only(okx: SimVenue) -> None:
    okx.send(okx.client.ws_login()[0])                                 # place: 3 per 2 s at this scale
    outcomes = [okx.place(f"r{n}", okx.resting_price())[0] for n in range(4)]
    assert [r.outcome for r in outcomes] == [Outcome.OK] * 3 + [Outcome.RATE_LIMITED]
    assert (outcomes[-1].code, outcomes[-1].reason) == ("50011", RejectReason.VENUE_RATE_LIMIT)
    assert okx.exchange.get(SYMBOL, "r3") is None and okx.meter.counts["50011"] == 1
    cancel = okx.send(okx.client.ws_cancel("oc", "r0", SYMBOL))       # cancel-order counts on its own
    assert okx.client.ws_reply(cancel)[0].outcome is Outcome.OK
