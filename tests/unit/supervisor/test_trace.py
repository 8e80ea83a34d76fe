"""Stage latencies from the gate's trace ring: exact percentiles over a sliding window."""

from __future__ import annotations

import numpy as np
import pytest

from kairos.records import ORDER_TRACE
from kairos.ring import Overflow, Ring
from kairos.supervisor.trace import OrderLatencies


def _rows(n: int, origin: int, step_us: tuple[int, int, int]) -> np.ndarray:
    rows = np.zeros(n, ORDER_TRACE)
    rows["ts_origin_ns"] = origin + np.arange(n) * 1_000_000
    rows["ts_created_ns"] = rows["ts_origin_ns"] + step_us[0] * 1000
    rows["ts_read_ns"] = rows["ts_created_ns"] + step_us[1] * 1000
    rows["ts_sent_ns"] = rows["ts_read_ns"] + step_us[2] * 1000
    return rows


@pytest.fixture
def trace_ring(shm_prefix: str):
    ring = Ring.create("trace", ORDER_TRACE, 1024, Overflow.OVERWRITE, ("supervisor",), prefix=shm_prefix)
    try:
        yield ring
    finally:
        ring.close()
        Ring.unlink("trace", prefix=shm_prefix)


def test_no_orders_no_stats(trace_ring: Ring) -> None:
    latencies = OrderLatencies(trace_ring.consumer("supervisor"))
    latencies.sample()
    assert latencies.stats() == []


def test_stages_are_exact(trace_ring: Ring) -> None:
    latencies = OrderLatencies(trace_ring.consumer("supervisor"))
    trace_ring.producer().publish(_rows(100, 10**18, (30, 20, 10)))
    latencies.sample()
    stats = {name: (p50, p99, p999, n) for name, p50, p99, p999, n in latencies.stats()}
    assert stats["to_intent"] == (30.0, 30.0, 30.0, 100)
    assert stats["to_gate"][0] == 20.0
    assert stats["gate"][0] == 10.0
    assert stats["tick_to_order"] == (60.0, 60.0, 60.0, 100)


def test_window_keeps_only_the_latest_orders(trace_ring: Ring) -> None:
    latencies = OrderLatencies(trace_ring.consumer("supervisor"), window=50)
    producer = trace_ring.producer()
    producer.publish(_rows(40, 10**18, (500, 500, 500)))
    latencies.sample()
    producer.publish(_rows(60, 2 * 10**18, (1, 2, 3)))
    latencies.sample()
    stats = {name: (p50, p99, n) for name, p50, p99, _, n in latencies.stats()}
    assert stats["tick_to_order"] == (6.0, 6.0, 50)
