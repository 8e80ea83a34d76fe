"""The venue's clock offset, measured NTP-style against its time endpoint.

Rate limits live in the budget every process shares (kairos/ratelimit/budget.py). Policy
(docs/EXECUTION.md § Rate limits): after a 429/418/-1003 no request at all is sent to the venue
until its retry time has passed (50011: to that endpoint). Meanwhile new orders are rejected at
once with VENUE_RATE_LIMIT (a stale order is worse than none), cancels wait up to
``execution.max_cancel_delay_s`` (they reduce risk), and polling is skipped.
"""

from __future__ import annotations

import time


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
