"""Retry-After parsing and the server clock offset (the rate budget: tests/unit/ratelimit)."""

from __future__ import annotations

from kairos.execution.limits import ServerClock
from kairos.ratelimit.budget import retry_after_s


def test_retry_after_header() -> None:
    assert retry_after_s({"Retry-After": "3"}, 1.0) == 3.0
    assert retry_after_s({}, 1.5) == 1.5
    assert retry_after_s({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 2.0) == 2.0


def test_server_clock_offset_uses_the_round_trip_midpoint() -> None:
    clock = ServerClock()
    clock.update(server_ms=10_500, sent_ms=9_000, recv_ms=9_200)
    assert (clock.offset_ms, clock.rtt_ms) == (1_400, 200)
    assert clock.synced_ns > 0
