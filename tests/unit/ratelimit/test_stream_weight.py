"""The private streams and the venue's rate budget: Binance WS API replies carry the IP's request-weight count
(``rateLimits``), which the stream hands to its sink and the executor's sink raises the shared budget's count to;
each (re)connect is paid before it is made (waiting while the budget is spent); a counted heartbeat is paid
when it can be and sent anyway when it cannot."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from kairos import config
from kairos.config import Secret
from kairos.execution.state import OrderTracker
from kairos.execution.stream import PrivateStream, TrackerSink
from kairos.execution.stream_binance import BinanceStream
from kairos.execution.stream_bybit import BybitStream
from kairos.execution.stream_okx import OkxStream
from kairos.ratelimit import LIMITS, Budget, Cost, Priority, VenueLimits
from tests.unit.execution.test_stream_parsers import Sink

LIMITS_1M = [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000, "count": 4321},
             {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 50, "count": 7}]


class Socket:
    def send(self, frame: str) -> None:
        raise AssertionError(f"nothing to send: {frame}")


class Sent:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, frame: str) -> None:
        self.sent.append(frame)


def test_ws_api_rate_limits_correct_the_rest_budget() -> None:
    budget = Budget.local(LIMITS["binance"], 20.0, 0.0)
    sink = TrackerSink(OrderTracker(lambda report: None, lambda order, qty, notional: (0.0, "")), lambda: None,
                       budget.report_venue_count)
    base = config.load(env={})
    venue = dataclasses.replace(base.venues["binance"], api_key=Secret("key"), api_secret=Secret("secret"))
    stream = BinanceStream(venue, base.execution, sink, lambda: 0)
    try:
        reply = {"id": "heartbeat", "status": 200, "result": {}, "rateLimits": LIMITS_1M}
        assert stream.parse(orjson.dumps(reply).decode()).weight_used == 4321
        assert stream.parse('{"id": "heartbeat", "status": 200, "result": {}}').weight_used == -1
        stream._on_text(Socket(), orjson.dumps(reply).decode())  # type: ignore[arg-type]
        assert budget.used(0) == 4321
        stream._on_text(Socket(), orjson.dumps(reply | {"rateLimits": [LIMITS_1M[0] | {"count": 5}]}).decode())
        assert budget.used(0) == 4321                            # never below what the venue said before
    finally:
        stream.close()
        budget.close()


def long_windows(venue: str) -> VenueLimits:
    """The venue's real table with windows too long to roll over during a test."""
    limits = LIMITS[venue]
    return dataclasses.replace(limits, windows=tuple(dataclasses.replace(w, window_ms=2**40) for w in limits.windows))


def stream_on(cls: type[PrivateStream], budget: Budget) -> PrivateStream:
    base = config.load(env={})
    venue = dataclasses.replace(base.venues[cls.name], api_key=Secret("key"), api_secret=Secret("secret"),
                                passphrase=Secret("pass"))
    return cls(venue, base.execution, Sink(), lambda: 0, budget)


@pytest.mark.parametrize(("cls", "window", "weight"), [
    (BinanceStream, "REQUEST_WEIGHT", 4), (OkxStream, "ws/connect", 1), (BybitStream, "ws/connect", 1)])
def test_each_reconnect_pays_what_the_venue_counts(cls: type[PrivateStream], window: str, weight: int) -> None:
    """Binance: connecting 2 + userDataStream.subscribe.signature 2 of REQUEST_WEIGHT; OKX and Bybit: one
    connect of their per-IP connection limits (login, subscribe and auth cost nothing shared)."""
    limits = long_windows(cls.name)
    budget = Budget.local(limits, 20.0, 0.0)
    stream = stream_on(cls, budget)
    try:
        assert stream._pay_open() == 0.0 and stream._pay_open() == 0.0
        assert budget.used(limits.window_of(window)) == 2 * weight and stream.counts["budget_deferred"] == 0
    finally:
        stream.close()
        budget.close()


def test_a_reconnect_waits_while_the_budget_is_spent() -> None:
    limits = long_windows("okx")
    connect = limits.window_of("ws/connect")
    budget = Budget.local(limits, 20.0, 0.0)                   # background calls do not wait: the answer is at once
    stream = stream_on(OkxStream, budget)
    try:
        assert budget.try_spend(Cost(connect, limits.windows[connect].limit, Priority.ESSENTIAL)) == 0.0
        assert stream._pay_open() > 0.0 and stream.counts["budget_deferred"] == 1
        assert budget.used(connect) == limits.windows[connect].limit  # nothing more spent
    finally:
        stream.close()
        budget.close()


def test_a_heartbeat_is_paid_when_it_can_be_and_sent_when_it_cannot() -> None:
    limits = long_windows("binance")
    budget, free = Budget.local(limits, 20.0, 0.0), Budget.local(long_windows("okx"), 20.0, 0.0)
    stream, okx, ws = stream_on(BinanceStream, budget), stream_on(OkxStream, free), Sent()
    try:
        stream._heartbeat(ws)  # type: ignore[arg-type]
        assert budget.used(0) == 1 and stream.counts["heartbeat_overdrawn"] == 0
        assert budget.try_spend(Cost(0, limits.windows[0].limit - 1, Priority.ESSENTIAL)) == 0.0  # all spent
        stream._heartbeat(ws)  # type: ignore[arg-type]
        assert ws.sent == [BinanceStream.heartbeat] * 2, "never held back: the connection would die"
        assert stream.counts["heartbeat_overdrawn"] == 1 and stream.counts["heartbeats"] == 2
        okx._heartbeat(ws)  # type: ignore[arg-type]  # OKX's text ping costs nothing shared
        assert ws.sent[-1] == "ping" and okx.counts["heartbeat_overdrawn"] == 0
    finally:
        stream.close()
        okx.close()
        budget.close()
        free.close()
