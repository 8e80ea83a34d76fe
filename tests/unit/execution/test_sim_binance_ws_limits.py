"""The simulator's Binance WS API under its REST rate meter, in process (kairos/sim/private_binance.py): one
REQUEST_WEIGHT count for REST and WS, told in every reply's ``rateLimits``; over it 429 -1003 with
``error.data.retryAfter``, repeated 418, read by the executor's own reply parser. Deposits push like Binance."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from kairos.execution.stream_binance import BinanceStream
from kairos.execution.venue import Outcome
from kairos.records import Venue
from kairos.sim.exchange import BalanceChange, SimRefused
from kairos.sim.router import Request
from tests.unit.execution.sim_venue import NOW, SimVenue

SYMBOL = "BTCUSDT"


@pytest.fixture
def binance() -> Iterator[SimVenue]:
    """Binance with 6 weight a minute and 2 strikes to a ban, its meter's clock 10 s into a minute window."""
    venue = SimVenue("binance", SYMBOL, meter_scale=0.001, now=NOW + 10)
    yield venue
    venue.close()


def cancel(binance: SimVenue, n: int) -> dict[str, Any]:
    """An order.cancel of an unknown order (costs what DELETE /api/v3/order does)."""
    return binance.send(binance.client.ws_cancel(f"c{n}", f"x{n}", SYMBOL))


def test_ws_replies_count_in_the_rest_window_and_go_429_then_418(binance: SimVenue) -> None:
    binance.meter.charge(Request("GET", "/api/v3/time", "", {}, {}, b"", Venue.BINANCE))  # REST: weight 1
    ping = binance.send({"id": "p", "method": "ping"})
    assert ping["status"] == 200 and ping["rateLimits"][0]["count"] == 2 and ping["rateLimits"][0]["limit"] == 6
    for n in range(4):                                       # order.cancel costs what DELETE /api/v3/order does
        assert cancel(binance, n)["status"] == 400             # unknown order: counted all the same
    over = cancel(binance, 4)
    assert over["status"] == 429 and over["error"]["code"] == -1003 and over["rateLimits"][0]["count"] == 7
    data = over["error"]["data"]
    assert data["retryAfter"] - data["serverTime"] >= 1000
    reply, used = binance.client.ws_reply(over)
    assert reply.outcome is Outcome.RATE_LIMITED and reply.retry_after_s >= 1.0 and used == 7
    assert cancel(binance, 5)["status"] == 429                 # a strike
    banned = cancel(binance, 6)
    assert banned["status"] == 418 and "banned" in banned["error"]["msg"]
    assert binance.client.ws_reply(banned)[0].retry_after_s == pytest.approx(30.0, abs=1.0)
    assert binance.meter.counts == {"429": 2, "418": 1}


def test_order_place_is_charged_at_the_rest_weight_and_its_reply_reports_the_count(binance: SimVenue) -> None:
    reply, msg = binance.place("w1", binance.resting_price(), qty=0.001)
    assert reply.outcome is Outcome.OK and msg["status"] == 200 and msg["rateLimits"][0]["count"] == 1


def test_a_deposit_pushes_balance_update_then_the_account_position(binance: SimVenue) -> None:
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
