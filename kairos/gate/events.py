"""EXEC_EVENT records, batched: built one row per event, published once per batch.

``event_seq`` is the events ring's own sequence (the segment keeps it), so it keeps increasing
across gate restarts without a file. A row is assigned from one tuple (one numpy call, not one per
field). If the ring stays full past the producer's bounded wait, RingFull leaves the rows that did
not go out in place for the next flush (their sequence numbers still right): the gate stops taking
intents meanwhile, and nothing is dropped.
"""

from __future__ import annotations

import time
from typing import Protocol

import numpy as np

from kairos.errors import RingFull
from kairos.execution.base import ExecReport
from kairos.gate.orders import Order, Rejected
from kairos.records import EXEC_EVENT, ExecKind, OrderState

_PAD = b"\x00\x00"
_FILL = int(ExecKind.FILL)


class Producer(Protocol):
    @property
    def published(self) -> int: ...

    def publish(self, batch: np.ndarray) -> int: ...


class EventWriter:
    __slots__ = ("_buf", "_n", "_next_seq", "_prod", "published")

    def __init__(self, producer: Producer, capacity: int = 1024) -> None:
        self._prod = producer
        self._buf = np.zeros(capacity, EXEC_EVENT)
        self._n = 0
        self._next_seq = producer.published + 1
        self.published = 0

    @property
    def pending(self) -> int:
        return self._n

    def _row(self, row: tuple) -> None:
        if self._n == len(self._buf):
            self.flush()
        self._buf[self._n] = row
        self._n += 1

    def report(self, order: Order, r: ExecReport) -> None:
        """What an executor (or reconciliation) said about an order, after the gate applied it."""
        fill = r.kind == _FILL
        self._row((time.time_ns(), r.ts_exchange_ns, order.ts_origin_ns, r.last_px if fill else order.price,
                   r.last_qty if fill else 0.0, order.cum_qty, order.qty, r.fee, order.coid, order.venue_order_id,
                   self._next_seq + self._n, order.instrument, order.venue, order.strategy, r.reason, r.kind,
                   order.side, order.state, order.flags, _PAD))

    def reject(self, coid: bytes, rej: Rejected, ts_origin_ns: int, state: int = OrderState.REJECTED,
               kind: int = ExecKind.REJECT) -> None:
        """A refused intent (or cancel): no order was sent; ``state`` is the existing order's if any."""
        self._row((time.time_ns(), 0, ts_origin_ns, rej.price, 0.0, 0.0, rej.qty, 0.0, coid, 0,
                   self._next_seq + self._n, rej.instrument, rej.venue, rej.strategy, rej.reason, kind,
                   rej.side, state, 0, _PAD))

    def trading(self, state: int, ts_origin_ns: int = 0) -> None:
        """Kind STATE: the trading state changed; the new TradingState is in ``flags``."""
        self._row((time.time_ns(), 0, ts_origin_ns, 0.0, 0.0, 0.0, 0.0, 0.0, b"", 0, self._next_seq + self._n,
                   0, 0, 0, 0, ExecKind.STATE, 0, 0, state, _PAD))

    def flush(self) -> int:
        """Publish what is buffered. On RingFull what did not fit stays buffered for the next call."""
        n = self._n
        if n == 0:
            return 0
        before = self._prod.published
        try:
            self._prod.publish(self._buf[:n])
        except RingFull:
            self._consume(self._prod.published - before)  # a batch over a lap goes in pieces
            raise
        self._consume(n)
        return n

    def _consume(self, done: int) -> None:
        """Drop the first ``done`` rows (published); the rest keep their sequence numbers."""
        if done <= 0:
            return
        rest = self._n - done
        self._buf[:rest] = self._buf[done : self._n]
        self._n = rest
        self._next_seq += done
        self.published += done
