"""The order trace: one ORDER_TRACE on the ``trace`` ring per order handed to an executor."""

from __future__ import annotations

import time
from collections.abc import Callable

from kairos.records import ORDER_TRACE, ExecKind, Side, Venue
from kairos.ring import Overflow, Ring

from .conftest import Harness, intent


def test_each_submitted_order_is_traced_with_its_stage_stamps(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(risk__max_order_qty="0.5")
    trace = Ring.create("trace", ORDER_TRACE, 64, Overflow.OVERWRITE, ("test",), h.prefix)
    try:
        reader = trace.consumer("test")
        gate = h.gate()
        h.mark(100.0, 101.0)
        before = time.time_ns()
        sent = [intent("t1", price=101.0, qty=0.1), intent("t2", side=Side.SELL, price=100.0, qty=0.1),
                intent("big", qty=0.6)]                                    # rejected: never reaches the venue
        for rec in sent:
            h.send(rec)
        h.run(gate, lambda seen: sum(e["kind"] == ExecKind.FILL for e in seen) >= 2)
        rows = reader.read(64)
        after = time.time_ns()
    finally:
        trace.close()
        Ring.unlink("trace", h.prefix)
    assert len(rows) == 2
    for row, rec in zip(rows, sent, strict=False):
        assert (row["ts_origin_ns"], row["ts_created_ns"]) == (rec["ts_origin_ns"][0], rec["ts_created_ns"][0])
        assert before <= row["ts_read_ns"] <= row["ts_sent_ns"] <= after
        assert (row["venue"], row["instrument"], row["strategy"]) == (Venue.BINANCE, 1, 7)
    assert list(rows["side"]) == [Side.BUY, Side.SELL]


def test_without_a_trace_ring_the_gate_trades_untraced(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    gate = h.gate()
    h.mark(100.0, 101.0)
    h.send(intent("u1", price=101.0, qty=0.1))
    events = h.run(gate, lambda seen: any(e["kind"] == ExecKind.FILL for e in seen))
    assert [ExecKind(e["kind"]) for e in events] == [ExecKind.ACK, ExecKind.FILL]
