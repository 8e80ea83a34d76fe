"""The gate's row on the status board: counters, the gate-latency histogram, rejects by reason;
and the order trace (exact per-order stage timestamps on the ``trace`` ring).

A row has 32 counter slots, so a reason gets its own ``rej.<REASON>`` counter on first use while
slots last (then ``rej.OTHER``); the full breakdown by reason is in the gate-state blob. Likewise the
balance-push outcomes: the row has the gate's totals (``push.<outcome>``), the blob each venue's.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Protocol

import numpy as np

from kairos.errors import RingError
from kairos.gate.orders import Order
from kairos.gate.pushes import OUTCOMES
from kairos.records import ORDER_TRACE, RejectReason
from kairos.status import Counter, Slot

_PAD = b""


class Producer(Protocol):
    def publish(self, batch: np.ndarray) -> int: ...


Sent = tuple[Order, int, int]
"""An order handed to its executor, with its read and handed-over stamps (monotonic ns)."""


class OrderTrace:
    """One ORDER_TRACE row per order handed to an executor, written by `GateMetrics.flush` after the
    batch (never between the stamps it carries): the rows are built with one numpy call per batch (a
    row assignment per order costs ~0.7 us). Read/sent stamps are monotonic ns moved to the wall clock
    of the feeds' receipt stamps by one offset taken at start (as the strategy's LiveClock does)."""

    __slots__ = ("_buf", "_offset", "_producer")

    def __init__(self, producer: Producer, capacity: int = 256) -> None:
        self._producer = producer
        self._buf = np.zeros(capacity, ORDER_TRACE)
        self._offset = time.time_ns() - time.monotonic_ns()

    def write(self, sent: list[Sent]) -> None:
        off, size = self._offset, len(self._buf)
        for lo in range(0, len(sent), size):
            rows = [(o.ts_origin_ns, o.ts_created_ns, t_read + off, t_sent + off, o.instrument, o.strategy, o.venue,
                     o.side, o.flags, _PAD) for o, t_read, t_sent in sent[lo : lo + size]]
            self._buf[: len(rows)] = rows
            self._producer.publish(self._buf[: len(rows)])


class NoTrace:
    """The trace when there is no ``trace`` ring: nothing is recorded."""

    __slots__ = ()

    def write(self, sent: list[Sent]) -> None:
        return None


class GateMetrics:
    __slots__ = ("_by_counter", "_pushes", "_sent", "_slot", "bad_quotes", "by_reason", "events", "fills", "intents",
                 "latency", "open_orders", "orders", "other", "rejects", "replayed", "trace", "trading_state")

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
        self._pushes = [(name, slot.counter(f"push.{name}")) for name in OUTCOMES]
        self.latency = slot.histogram("gate_latency_ns")
        self.by_reason = [0] * (max(RejectReason) + 1)
        self._by_counter: list[Counter | None] = [None] * len(self.by_reason)
        self._sent: list[Sent] = []

    def sent(self, order: Order, t_read: int, t_sent: int) -> None:
        """An order handed to its executor: only kept (~0.1 us between two legs of a batch); counted,
        timed into ``gate_latency_ns`` and traced by `flush`, after the batch."""
        self._sent.append((order, t_read, t_sent))

    def flush(self) -> None:
        sent = self._sent
        if sent:
            record = self.latency.record
            for _, t_read, t_sent in sent:
                record(t_sent - t_read)
            self.orders.add(len(sent))
            self.trace.write(sent)
            sent.clear()

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

    def balance_pushes(self, totals: Mapping[str, int]) -> None:
        """The gate's balance-push totals onto the row (`kairos.gate.pushes.OUTCOMES`), where kairosctl status
        reads them; set with each published state."""
        for name, counter in self._pushes:
            counter.set(totals.get(name, 0))

    def rejects_by_reason(self) -> dict[str, int]:
        return {RejectReason(r).name: n for r, n in enumerate(self.by_reason) if n}
