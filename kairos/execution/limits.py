"""Venue rate-limit state: usage headers, Retry-After bans, and a server-clock offset.

Policy (docs/EXECUTION.md § Rate limits): after a 429/418/-1003/50011 no request at all is sent
until the venue's retry time has passed. While blocked, new orders are rejected at once with
VENUE_RATE_LIMIT (a stale order is worse than none), cancels wait up to
``execution.max_cancel_delay_s`` (they reduce risk), and polling is skipped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Final

USAGE_PREFIXES: Final = ("x-mbx-used-weight-", "x-mbx-order-count-")


class RateLimiter:
    """Thread-safe "no requests before" clock, plus the latest usage the venue reported."""

    __slots__ = ("_clock", "_lock", "_until_ns", "bans", "usage", "weight_limit")

    def __init__(self, clock: Callable[[], int] = time.monotonic_ns) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._until_ns = 0
        self.usage: dict[str, int] = {}
        self.weight_limit = 0
        self.bans = 0

    def remaining_s(self) -> float:
        """Seconds until requests may be sent again (0 when not blocked)."""
        return max(0, self._until_ns - self._clock()) / 1e9

    def block(self, seconds: float) -> None:
        """The venue said "retry after": extend (never shorten) the quiet period."""
        with self._lock:
            self.bans += 1
            self._until_ns = max(self._until_ns, self._clock() + int(seconds * 1e9))

    def note(self, headers: Mapping[str, str]) -> None:
        """Record X-MBX-USED-WEIGHT-*/X-MBX-ORDER-COUNT-*; pause proactively at the weight limit."""
        for name, value in headers.items():
            lower = name.lower()
            if lower.startswith(USAGE_PREFIXES) and value.isdigit():
                self.usage[lower] = int(value)
        used = self.usage.get("x-mbx-used-weight-1m", 0)
        if self.weight_limit and used >= self.weight_limit:
            self.block(60.0 - time.time() % 60.0)


def retry_after_s(headers: Mapping[str, str], default_s: float) -> float:
    """The Retry-After header in seconds (delta form), or ``default_s`` if absent or unreadable."""
    raw = headers.get("Retry-After", "")
    try:
        return max(float(raw), 0.0) if raw else default_s
    except ValueError:
        return default_s


class ServerClock:
    """Local wall clock corrected by the offset measured against the venue's time endpoint."""

    __slots__ = ("offset_ms", "rtt_ms", "synced_ns")

    def __init__(self) -> None:
        self.offset_ms = 0
        self.rtt_ms = 0
        self.synced_ns = 0

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms

    def update(self, server_ms: int, sent_ms: int, recv_ms: int) -> None:
        """Assume the server stamped its time half-way through the round trip (NTP-style)."""
        self.rtt_ms = recv_ms - sent_ms
        self.offset_ms = server_ms - (sent_ms + recv_ms) // 2
        self.synced_ns = time.monotonic_ns()
