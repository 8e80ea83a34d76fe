"""Rate-limit bookkeeping and the server clock offset."""

from __future__ import annotations

from kairos.execution.limits import RateLimiter, ServerClock, retry_after_s


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1_000_000_000

    def __call__(self) -> int:
        return self.now


def test_block_extends_never_shortens_and_expires() -> None:
    clock = FakeMonotonic()
    limiter = RateLimiter(clock)
    assert limiter.remaining_s() == 0
    limiter.block(10)
    limiter.block(2)
    assert limiter.remaining_s() == 10.0 and limiter.bans == 2
    clock.now += 9_000_000_000
    assert limiter.remaining_s() == 1.0
    clock.now += 1_000_000_000
    assert limiter.remaining_s() == 0


def test_usage_headers_are_recorded_and_the_weight_limit_pauses() -> None:
    limiter = RateLimiter()
    limiter.note({"X-MBX-USED-WEIGHT-1M": "42", "X-MBX-ORDER-COUNT-10S": "3", "Content-Type": "application/json"})
    assert limiter.usage == {"x-mbx-used-weight-1m": 42, "x-mbx-order-count-10s": 3}
    limiter.weight_limit = 50
    limiter.note({"x-mbx-used-weight-1m": "50"})
    assert 0 < limiter.remaining_s() <= 60


def test_retry_after_header() -> None:
    assert retry_after_s({"Retry-After": "3"}, 1.0) == 3.0
    assert retry_after_s({}, 1.5) == 1.5
    assert retry_after_s({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 2.0) == 2.0


def test_server_clock_offset_uses_the_round_trip_midpoint() -> None:
    clock = ServerClock()
    clock.update(server_ms=10_500, sent_ms=9_000, recv_ms=9_200)
    assert (clock.offset_ms, clock.rtt_ms) == (1_400, 200)
    assert clock.synced_ns > 0
