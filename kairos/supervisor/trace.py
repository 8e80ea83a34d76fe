"""Tick-to-order stage latencies for GetSystemStatus, from the gate's ``trace`` ring.

Every ORDER_TRACE row carries four wall-clock stamps of one order: feed receipt of the tick that
caused it (origin), intent created, intent read by the gate, request handed to the executor. The
supervisor keeps the last ``window`` orders and reports exact percentiles per stage (the status
board's log2 histograms are too coarse to compare stages). Manual (gRPC) orders have no tick:
their origin is their creation, so their ``to_intent`` stage is 0.
"""

from __future__ import annotations

import numpy as np

from kairos.records import ORDER_TRACE
from kairos.ring.poller import Poller
from kairos.supervisor.tally import TraceTotals

STAGES = (
    ("to_intent", "ts_created_ns", "ts_origin_ns"),  # feed receipt -> strategy intent (feed, md ring, strategy)
    ("to_gate", "ts_read_ns", "ts_created_ns"),  # intent created -> read by the gate (intents ring)
    ("gate", "ts_sent_ns", "ts_read_ns"),  # gate read -> handed to the executor (risk, journal, submit)
    ("tick_to_order", "ts_sent_ns", "ts_origin_ns"),  # the whole path
)
QUANTILES = (50.0, 99.0, 99.9)
MAX_POLLS = 8  # per sample: a gate tracing faster than this is read in the next sample


class OrderLatencies:
    """Drained by the arbiter loop (`sample`), read by gRPC threads (`stats`, a copy)."""

    __slots__ = ("_consumer", "_count", "_stats", "_window", "totals")

    def __init__(self, consumer: Poller, window: int = 4096) -> None:
        self._consumer = consumer
        self._window = np.zeros(window, ORDER_TRACE)
        self._count = 0
        self._stats: list[tuple[str, float, float, float, int]] = []
        self.totals = TraceTotals(STAGES)  # every order since start, for /metrics

    def sample(self) -> None:
        """Take what the gate traced since the last call; recompute the percentiles if anything came."""
        took = 0
        for _ in range(MAX_POLLS):
            n = self._consumer.poll(self._append, len(self._window))
            if not n:
                break
            took += n
        if took:
            self._stats = self._compute()

    def stats(self) -> list[tuple[str, float, float, float, int]]:
        """(stage, p50 µs, p99 µs, p99.9 µs, orders in the window) per stage."""
        return list(self._stats)

    def _append(self, rows: np.ndarray) -> None:
        self.totals.add(rows)
        window, n = self._window, len(rows)
        if n >= len(window):
            window[:] = rows[-len(window):]
        else:
            window[:-n] = window[n:]
            window[-n:] = rows
        self._count = min(self._count + n, len(window))

    def _compute(self) -> list[tuple[str, float, float, float, int]]:
        rows = self._window[len(self._window) - self._count:]
        out = []
        for name, end, start in STAGES:
            us = (rows[end] - rows[start]) / 1e3
            p50, p99, p999 = np.percentile(us, QUANTILES)
            out.append((name, float(p50), float(p99), float(p999), len(us)))
        return out
