"""TrackerSink's balance queue for the gate (newest push per asset, deltas kept out, a local clock when none);
the Binance stream under rate limits: a 429 heartbeat keeps the session, a refused subscribe waits retryAfter."""

from __future__ import annotations

import time

import orjson

from kairos.execution.state import OrderTracker
from kairos.execution.stream import TrackerSink
from kairos.execution.stream_binance import BinanceStream
from kairos.execution.stream_okx import OkxStream


def sink() -> TrackerSink:
    return TrackerSink(OrderTracker(lambda r: None, lambda o, q, n: (0.0, "")), lambda: None, lambda used: None)


def test_take_pushes_keeps_the_newest_per_asset_and_empties() -> None:
    s = sink()
    s.on_balances({"BTC": (1.0, 0.0), "USDT": (5.0, 1.0)}, {}, 2000)
    s.on_balances({"BTC": (0.5, 0.0)}, {}, 1000)                    # older, arrived late: not the newest
    s.on_balances({}, {"USDT": 10.0}, 0)                            # a delta: kept in balances() only
    assert s.take_pushes() == {"BTC": (1.0, 0.0, 2000), "USDT": (5.0, 1.0, 2000)}
    assert s.take_pushes() == {}
    assert s.balances()["USDT"] == (15.0, 1.0)
    before = time.time_ns() // 1_000_000
    s.on_balances({"ETH": (3.0, 0.0)}, {}, 0)
    assert s.take_pushes()["ETH"][2] >= before


def test_parsers_carry_the_venues_account_update_time() -> None:
    frame = ('{"subscriptionId": 0, "event": {"e": "outboundAccountPosition", "E": 1700000000123, '
             '"u": 1700000000120, "B": [{"a": "BTC", "f": "1.5", "l": "0.5"}]}}')
    binance = BinanceStream.parse(None, frame)  # type: ignore[arg-type]
    assert binance.balances == {"BTC": (1.5, 0.5)} and binance.balances_ms == 1700000000120
    okx = OkxStream.parse(None, '{"arg": {"channel": "account"}, "data": [{"uTime": "1700000000456", '  # type: ignore[arg-type]
                          '"details": [{"ccy": "USDT", "availBal": "10", "frozenBal": "2"}]}]}')
    assert okx.balances == {"USDT": (10.0, 2.0)} and okx.balances_ms == 1700000000456


def test_a_rate_limited_heartbeat_keeps_the_session_and_a_rate_limited_subscribe_waits_the_retry() -> None:
    limits = [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 60, "count": 61}]
    error = {"code": -1003, "msg": "Too much request weight used", "data": {"serverTime": 1000, "retryAfter": 43000}}
    beat = BinanceStream.parse(None, orjson.dumps({"id": "heartbeat", "status": 429, "error": error,  # type: ignore[arg-type]
                                                   "rateLimits": limits}).decode())
    assert not beat.refused and beat.weight_used == 61
    sub = BinanceStream.parse(None, orjson.dumps({"id": "subscribe-3", "status": 418, "error": error,  # type: ignore[arg-type]
                                                  "rateLimits": limits}).decode())
    assert sub.refused.startswith("-1003") and sub.retry_after_s == 42.0 and sub.weight_used == 61


def test_a_balance_push_rings_the_gate_and_a_delta_alone_does_not() -> None:
    rung: list[int] = []
    sink = TrackerSink(OrderTracker(lambda r: None, lambda o, q, n: (0.0, "")), lambda: None, lambda used: None,
                       lambda: rung.append(1))
    sink.on_balances({}, {"USDT": 5.0}, 1)                # a delta waits for its absolute push: nothing to take
    assert rung == [] and sink.take_pushes() == {}
    sink.on_balances({"USDT": (105.0, 0.0)}, {}, 2)
    assert rung == [1] and sink.take_pushes() == {"USDT": (105.0, 0.0, 2)}
