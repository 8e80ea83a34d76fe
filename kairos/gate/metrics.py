"""The gate's row on the status board: counters, the gate-latency histogram, rejects by reason;
and the order trace (exact per-order stage timestamps on the ``trace`` ring).

A row has 16 counter slots, so a reason gets its own ``rej.<REASON>`` counter on first use while
slots last (then ``rej.OTHER``); the full breakdown by reason is in the gate-state blob.
"""

from __future__ import annotations

import time
from typing import Protocol

import numpy as np

from kairos.errors import RingError
from kairos.gate.orders import Order
from kairos.records import ORDER_TRACE, RejectReason
from kairos.status import Counter, Slot

_PAD = b""


class Producer(Protocol):
    def publish(self, batch: np.ndarray) -> int: ...


class OrderTrace:
    """One ORDER_TRACE row per order handed to an executor, published once per `flush` (never
    between the stamps it carries). Read/sent stamps are monotonic ns moved to the wall clock of the
    feeds' receipt stamps by one offset taken at start (as the strategy's LiveClock does). `sent`
    only keeps the order and its stamps (~0.1 us, between two legs of a batch); the rows are built
    with one numpy call per `flush`, after the batch (a row assignment per order costs ~0.7 us)."""

    __slots__ = ("_buf", "_offset", "_producer", "_rows")

    def __init__(self, producer: Producer, capacity: int = 256) -> None:
        self._producer = producer
        self._buf = np.zeros(capacity, ORDER_TRACE)
        self._rows: list[tuple[Order, int, int]] = []
        self._offset = time.time_ns() - time.monotonic_ns()

    def sent(self, order: Order, t_read: int, t_sent: int) -> None:
        rows = self._rows
        rows.append((order, t_read, t_sent))
        if len(rows) == len(self._buf):
            self.flush()

    def flush(self) -> None:
        rows = self._rows
        if rows:
            off, n = self._offset, len(rows)
            self._buf[:n] = [(o.ts_origin_ns, o.ts_created_ns, t_read + off, t_sent + off, o.instrument, o.strategy,
                              o.venue, o.side, o.flags, _PAD) for o, t_read, t_sent in rows]
            rows.clear()
            self._producer.publish(self._buf[:n])


class NoTrace:
    """The trace when there is no ``trace`` ring: nothing is recorded."""

    __slots__ = ()

    def sent(self, order: Order, t_read: int, t_sent: int) -> None:
        return None

    def flush(self) -> None:
        return None


class GateMetrics:
    __slots__ = ("_by_counter", "_slot", "bad_quotes", "by_reason", "events", "fills", "intents", "latency",
                 "open_orders", "orders", "other", "rejects", "replayed", "trace", "trading_state")

    def __init__(self, slot: Slot, trace: OrderTrace | NoTrace | None = None) -> None:
        self._slot = slot
        self.trace = trace or NoTrace()
        self.intents = slot.counter("intents")
        self.orders = slot.counter("orders_sent")
        self.fills = slot.counter("fills")
        self.rejects = slot.counter("rejects")
        self.events = slot.counter("events")
        self.replayed = slot.counter("replayed")
        self.trading_state = slot.counter("trading_state")
        self.open_orders = slot.counter("open_orders")
        self.bad_quotes = slot.counter("bad_quotes")
        self.other = slot.counter("rej.OTHER")
        self.latency = slot.histogram("gate_latency_ns")
        self.by_reason = [0] * (max(RejectReason) + 1)
        self._by_counter: list[Counter | None] = [None] * len(self.by_reason)

    def reject(self, reason: int) -> None:
        self.rejects.add(1)
        self.by_reason[reason] += 1
        counter = self._by_counter[reason]
        if counter is None:
            counter = self._by_counter[reason] = self._claim(reason)
        counter.add(1)

    def _claim(self, reason: int) -> Counter:
        try:
            return self._slot.counter(f"rej.{RejectReason(reason).name}")
        except RingError:
            return self.other

    def rejects_by_reason(self) -> dict[str, int]:
        return {RejectReason(r).name: n for r, n in enumerate(self.by_reason) if n}
