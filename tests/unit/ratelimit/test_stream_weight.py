"""Binance WS API replies carry the IP's request-weight count (``rateLimits``): the private stream hands it to
its sink, and the executor's sink raises the shared REST budget's count to it."""

from __future__ import annotations

import dataclasses

import orjson

from kairos import config
from kairos.config import Secret
from kairos.execution.state import OrderTracker
from kairos.execution.stream import TrackerSink
from kairos.execution.stream_binance import BinanceStream
from kairos.ratelimit import LIMITS, Budget

LIMITS_1M = [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000, "count": 4321},
             {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 50, "count": 7}]


class Socket:
    def send(self, frame: str) -> None:
        raise AssertionError(f"nothing to send: {frame}")


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
        budget.close()
