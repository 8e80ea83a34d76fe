"""The gate's row on the status board: counters, the gate-latency histogram, rejects by reason.

A row has 16 counter slots, so a reason gets its own ``rej.<REASON>`` counter on first use while
slots last (then ``rej.OTHER``); the full breakdown by reason is in the gate-state blob.
"""

from __future__ import annotations

from kairos.errors import RingError
from kairos.records import RejectReason
from kairos.status import Counter, Slot


class GateMetrics:
    __slots__ = ("_by_counter", "_slot", "by_reason", "events", "fills", "intents", "latency", "open_orders",
                 "orders", "other", "rejects", "replayed", "trading_state")

    def __init__(self, slot: Slot) -> None:
        self._slot = slot
        self.intents = slot.counter("intents")
        self.orders = slot.counter("orders_sent")
        self.fills = slot.counter("fills")
        self.rejects = slot.counter("rejects")
        self.events = slot.counter("events")
        self.replayed = slot.counter("replayed")
        self.trading_state = slot.counter("trading_state")
        self.open_orders = slot.counter("open_orders")
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
