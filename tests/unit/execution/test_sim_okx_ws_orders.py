"""The simulator's OKX WebSocket orders (kairos/sim/private_okx.py) driven by the executor's own frames, in
process: login first, instrument by the instIdCode the public instruments endpoint publishes, the REST trading
dialect's checks and ledger, the REST rate meter's per-endpoint limit (50011)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from kairos import config
from kairos.execution import OrderRequest
from kairos.execution.okx import OkxExecution
from kairos.execution.venue import Outcome, Reply
from kairos.instruments import InstrumentTable
from kairos.ratelimit import LIMITS
from kairos.records import OrderType, RejectReason, Side, Tif, Venue
from kairos.sim.exchange import Status
from kairos.sim.market import SimMarket, build_specs
from kairos.sim.okx import OkxDialect
from kairos.sim.private import PrivateSession
from kairos.sim.private_okx import OkxPrivate
from kairos.sim.ratelimit import VenueMeter
from kairos.sim.rest_trading import register_trading_routes
from kairos.sim.router import Request, Router

SYMBOL = "BTC-USDT"
KEYS = {"KAIROS__VENUES__OKX__API_KEY": "k", "KAIROS__VENUES__OKX__API_SECRET": "s",
        "KAIROS__VENUES__OKX__PASSPHRASE": "p"}


class SimOkx:
    """The simulator's OKX private dialect with its trading account and a meter whose clock stands still."""

    def __init__(self) -> None:
        settings = config.load(env=KEYS)
        self.market = SimMarket(build_specs(settings.instruments, settings.sim), settings.sim, lambda event: None)
        trading = next(d for d in register_trading_routes(Router(), self.market, settings) if d.venue is Venue.OKX)
        self.exchange = trading.exchange
        self.private = OkxPrivate(settings.venues["okx"], settings.sim)
        self.private.trading = trading
        self.private.meter = VenueMeter(Venue.OKX, LIMITS["okx"].scaled(0.05), 2, 30.0, lambda: 1_800_000_000.0)
        self.session = PrivateSession(None, 1)  # type: ignore[arg-type]  # on_text never touches the connection
        self.client = OkxExecution(settings.venues["okx"], settings.execution, InstrumentTable(settings.instruments))
        public = OkxDialect(self.market, settings.sim)._instruments(
            Request("GET", "/api/v5/public/instruments", "instType=SPOT", {"instType": "SPOT"}, {}, b"", Venue.OKX))
        self.client.parse_filters(orjson.loads(public.body))

    def send(self, frame: str) -> dict[str, Any]:
        [reply] = self.private.on_text(self.session, frame)
        return orjson.loads(reply)

    def place(self, coid: str, price: float, qty: float = 0.01) -> tuple[Reply, dict[str, Any]]:
        req = OrderRequest(coid, 1, SYMBOL, Side.BUY, OrderType.LIMIT, Tif.GTC, price, qty, 0)
        msg = self.send(self.client.ws_place(f"o{coid}", req, str(price), str(qty)))
        return self.client.ws_reply(msg)[0], msg

    def resting_price(self) -> float:
        bid, _ = self.market.best(Venue.OKX, SYMBOL)
        return float(int(bid.price) - 100)


@pytest.fixture
def okx():
    venue = SimOkx()
    yield venue
    venue.client.close()


def test_orders_need_login_first(okx: SimOkx) -> None:
    reply, msg = okx.place("a1", okx.resting_price())
    assert (msg["id"], msg["op"], reply.code) == ("oa1", "order", "60011")
    assert okx.send(okx.client.ws_login()[0]) == {"event": "login", "code": "0", "msg": "", "connId": "1"}
    assert okx.place("a1", okx.resting_price())[0].outcome is Outcome.OK


def test_place_and_cancel_move_the_same_ledger_as_rest(okx: SimOkx) -> None:
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
def test_requests_the_venue_refuses(okx: SimOkx, args: list[Any], code: str) -> None:
    okx.send(okx.client.ws_login()[0])
    msg = okx.send(orjson.dumps({"id": "x1", "op": "order", "args": args}).decode())
    assert okx.client.ws_reply(msg)[0].code == code and not okx.session.ordered
    assert okx.exchange.open_orders(None) == []


def test_an_expired_request_is_refused(okx: SimOkx) -> None:
    okx.send(okx.client.ws_login()[0])
    frame = orjson.loads(okx.client.ws_place("e1", OrderRequest("e1", 1, SYMBOL, Side.BUY, OrderType.LIMIT, Tif.GTC,
                                                                okx.resting_price(), 0.01, 0), "1", "0.01"))
    frame["expTime"] = "1000"
    assert okx.client.ws_reply(okx.send(orjson.dumps(frame).decode()))[0].code == "50102"
    assert okx.exchange.get(SYMBOL, "e1") is None


def test_over_the_place_limit_is_50011_for_that_endpoint_only(okx: SimOkx) -> None:
    okx.send(okx.client.ws_login()[0])                                 # place: 3 per 2 s at this scale
    outcomes = [okx.place(f"r{n}", okx.resting_price())[0] for n in range(4)]
    assert [r.outcome for r in outcomes] == [Outcome.OK] * 3 + [Outcome.RATE_LIMITED]
    assert (outcomes[-1].code, outcomes[-1].reason) == ("50011", RejectReason.VENUE_RATE_LIMIT)
    assert okx.exchange.get(SYMBOL, "r3") is None and okx.private.meter.counts["50011"] == 1
    cancel = okx.send(okx.client.ws_cancel("oc", "r0", SYMBOL))       # cancel-order counts on its own
    assert okx.client.ws_reply(cancel)[0].outcome is Outcome.OK
