"""The simulator's Binance WS API under its REST rate meter, in process (kairos/sim/private_binance.py): one
REQUEST_WEIGHT count for REST and WS, told in every reply's ``rateLimits``; over it 429 -1003 with
``error.data.retryAfter``, repeated 418, read by the executor's own reply parser. Deposits push like Binance."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from kairos import config
from kairos.execution import OrderRequest
from kairos.execution.binance import BinanceExecution
from kairos.execution.stream_binance import BinanceStream
from kairos.execution.venue import Outcome
from kairos.instruments import InstrumentTable
from kairos.ratelimit import LIMITS
from kairos.records import OrderType, Side, Tif, Venue
from kairos.sim.exchange import BalanceChange, SimRefused
from kairos.sim.market import SimMarket, build_specs
from kairos.sim.private import PrivateSession
from kairos.sim.private_binance import BinancePrivate
from kairos.sim.ratelimit import VenueMeter
from kairos.sim.rest_trading import register_trading_routes
from kairos.sim.router import Request, Router

KEYS = {"KAIROS__VENUES__BINANCE__API_KEY": "k", "KAIROS__VENUES__BINANCE__API_SECRET": "s"}
NOW = 1_800_000_010.0  # the meter's clock stands still, 10 s into a minute window


class SimBinance:
    def __init__(self) -> None:
        settings = config.load(env=KEYS)
        self.market = SimMarket(build_specs(settings.instruments, settings.sim), settings.sim, lambda event: None)
        trading = next(d for d in register_trading_routes(Router(), self.market, settings) if d.venue is Venue.BINANCE)
        self.exchange = trading.exchange
        self.private = BinancePrivate(settings.venues["binance"], settings.sim)
        self.private.trading = trading
        self.meter = self.private.meter = VenueMeter(Venue.BINANCE, LIMITS["binance"].scaled(0.001), 2, 30.0,
                                                     lambda: NOW)   # 6 weight a minute, 2 strikes to a ban
        self.session = PrivateSession(None, 1)  # type: ignore[arg-type]  # on_text never touches the connection
        self.client = BinanceExecution(settings.venues["binance"], settings.execution,
                                       InstrumentTable(settings.instruments))

    def send(self, frame: dict[str, Any] | str) -> dict[str, Any]:
        [reply] = self.private.on_text(self.session, frame if isinstance(frame, str) else orjson.dumps(frame).decode())
        return orjson.loads(reply)

    def cancel(self, n: int) -> dict[str, Any]:
        return self.send(self.client.ws_cancel(f"c{n}", f"x{n}", "BTCUSDT"))


@pytest.fixture
def binance():
    venue = SimBinance()
    yield venue
    venue.client.close()


def test_ws_replies_count_in_the_rest_window_and_go_429_then_418(binance: SimBinance) -> None:
    binance.meter.charge(Request("GET", "/api/v3/time", "", {}, {}, b"", Venue.BINANCE))  # REST: weight 1
    ping = binance.send({"id": "p", "method": "ping"})
    assert ping["status"] == 200 and ping["rateLimits"][0]["count"] == 2 and ping["rateLimits"][0]["limit"] == 6
    for n in range(4):                                       # order.cancel costs what DELETE /api/v3/order does
        assert binance.cancel(n)["status"] == 400             # unknown order: counted all the same
    over = binance.cancel(4)
    assert over["status"] == 429 and over["error"]["code"] == -1003 and over["rateLimits"][0]["count"] == 7
    data = over["error"]["data"]
    assert data["retryAfter"] - data["serverTime"] >= 1000
    reply, used = binance.client.ws_reply(over)
    assert reply.outcome is Outcome.RATE_LIMITED and reply.retry_after_s >= 1.0 and used == 7
    assert binance.cancel(5)["status"] == 429                 # a strike
    banned = binance.cancel(6)
    assert banned["status"] == 418 and "banned" in banned["error"]["msg"]
    assert binance.client.ws_reply(banned)[0].retry_after_s == pytest.approx(30.0, abs=1.0)
    assert binance.meter.counts == {"429": 2, "418": 1}


def test_order_place_is_charged_at_the_rest_weight_and_its_reply_reports_the_count(binance: SimBinance) -> None:
    bid = float(binance.market.best(Venue.BINANCE, "BTCUSDT")[0].price)
    req = OrderRequest("w1", 1, "BTCUSDT", Side.BUY, OrderType.LIMIT, Tif.GTC, round(bid - 100), 0.001, 0)
    msg = binance.send(binance.client.ws_place("w1", req, str(round(bid - 100)), "0.001"))
    assert msg["status"] == 200 and msg["rateLimits"][0]["count"] == 1


def test_a_deposit_pushes_balance_update_then_the_account_position(binance: SimBinance) -> None:
    heard: list[Any] = []
    binance.exchange.add_listener(heard.append)
    before = binance.exchange.balances()["USDT"]
    assert binance.exchange.transfer("USDT", Decimal("250.5")) == (before[0] + Decimal("250.5"), before[1])
    [change] = heard
    assert isinstance(change, BalanceChange)
    frames = [binance.private.wrap(binance.session, ch, ev) for ch, ev in binance.private.render_balance(change)]
    parsed = [BinanceStream.parse(None, f) for f in frames]  # type: ignore[arg-type]
    assert parsed[0].deltas == {"USDT": 250.5}
    assert parsed[1].balances == {"USDT": (float(before[0]) + 250.5, float(before[1]))}
    assert parsed[1].balances_ms == change.ts_ms
    with pytest.raises(SimRefused):
        binance.exchange.transfer("USDT", Decimal("-1e12"))
