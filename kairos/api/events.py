"""Execution events for the API: one pump thread reads the `events` ring as consumer `supervisor`
and hands each event to the calls waiting for it (PlaceOrder, CancelOrder) and to every
StreamEvents subscriber.

The pump never blocks on a client: a subscriber that falls ``queue_len`` events behind is cut off
(its stream ends with RESOURCE_EXHAUSTED) rather than silently skipping events or stalling the
ring, which would in turn stall the gate.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from kairos.api.convert import exec_event, to_pb
from kairos.errors import SupervisorError
from kairos.instruments import InstrumentTable
from kairos.records import ExecKind

log = logging.getLogger(__name__)

PLACE_OUTCOMES = frozenset({ExecKind.ACK, ExecKind.REJECT, ExecKind.FILL, ExecKind.CANCELED, ExecKind.EXPIRED})
CANCEL_OUTCOMES = frozenset({ExecKind.CANCELED, ExecKind.CANCEL_REJECT})
BATCH = 256


class Outcome:
    """The first event of the expected kinds for one client order id, set once by the pump.

    ``listener`` (optional) is called with the event before a waiter sees it: PlaceOrder's log records
    it, and sets ``error`` if it could not (the waiting call then answers UNAVAILABLE).
    """

    __slots__ = ("_done", "error", "event", "kinds", "listener")

    def __init__(self, kinds: frozenset[ExecKind]) -> None:
        self.kinds = frozenset(to_pb(k) for k in kinds)
        self.event: Any = None
        self.error = ""
        self.listener: Callable[[Any], None] | None = None
        self._done = threading.Event()

    def set(self, event: Any) -> None:
        self.event = event
        if self.listener is not None:
            self.listener(event)
        self._done.set()

    def wait(self, timeout_s: float) -> Any:
        """The event, or None if it did not arrive within the timeout."""
        return self.event if self._done.wait(timeout_s) else None


class Subscription:
    """A bounded queue of events for one StreamEvents call."""

    __slots__ = ("_cond", "_queue", "closed", "overflowed", "queue_len")

    def __init__(self, queue_len: int) -> None:
        self._queue: collections.deque[Any] = collections.deque()
        self._cond = threading.Condition()
        self.queue_len = queue_len
        self.closed = False
        self.overflowed = False

    def offer(self, events: Iterable[Any]) -> None:
        with self._cond:
            self._queue.extend(events)
            if len(self._queue) > self.queue_len:
                self.overflowed = self.closed = True
                self._queue.clear()
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify()

    def take(self, timeout_s: float) -> list[Any]:
        """Whatever is queued (possibly nothing after the timeout); check ``closed`` when empty."""
        with self._cond:
            if not self._queue and not self.closed:
                self._cond.wait(timeout_s)
            items = list(self._queue)
            self._queue.clear()
            return items


class EventHub:
    """Owns the `supervisor` cursor on the events ring; fans events out to waiters and streams."""

    def __init__(self, consumer: Any, idle: Any, instruments: InstrumentTable, max_subscribers: int,
                 on_batch: Callable[[Any], None], queue_len: int = 4096) -> None:
        self._consumer = consumer
        self._idle = idle
        self._instruments = instruments
        self._max_subscribers = max_subscribers
        self._queue_len = queue_len
        self._lock = threading.Lock()
        self._waiting: dict[str, list[Outcome]] = {}
        self._subscribers: list[Subscription] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-pump", daemon=True)
        self._count = on_batch  # every batch as read (the supervisor's totals for /metrics)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        with self._lock:
            subscribers, self._subscribers = self._subscribers, []
        for sub in subscribers:
            sub.close()

    def expect(self, client_order_id: str, kinds: frozenset[ExecKind]) -> Outcome:
        """Register interest BEFORE sending the command, so a fast answer cannot be missed."""
        outcome = Outcome(kinds)
        with self._lock:
            self._waiting.setdefault(client_order_id, []).append(outcome)
        return outcome

    def forget(self, client_order_id: str, outcome: Outcome) -> None:
        with self._lock:
            pending = self._waiting.get(client_order_id, [])
            if outcome in pending:
                pending.remove(outcome)
            if not pending:
                self._waiting.pop(client_order_id, None)

    def subscribe(self) -> Subscription:
        with self._lock:
            if len(self._subscribers) >= self._max_subscribers:
                raise SupervisorError(f"too many event subscribers (max {self._max_subscribers})")
            sub = Subscription(self._queue_len)
            self._subscribers.append(sub)
            return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)

    @property
    def died(self) -> bool:
        """Started, not stopped, and no longer running: the pump died of an exception (logged)."""
        return self._thread.ident is not None and not self._thread.is_alive() and not self._stop.is_set()

    def _run(self) -> None:
        poll, idle, stop = self._consumer.poll, self._idle, self._stop
        try:
            while not stop.is_set():
                idle(poll(self._on_batch, BATCH))
        except Exception:
            log.exception("event pump died: the supervisor exits to be restarted (EngineApi.check)")

    def _on_batch(self, view: Any) -> None:
        self._count(view)
        events = [exec_event(rec, self._instruments) for rec in view]
        with self._lock:
            for event in events:
                self._resolve(event)
            subscribers = [s for s in self._subscribers if not s.closed]
            self._subscribers = subscribers
        for sub in subscribers:
            sub.offer(events)
            if sub.overflowed:
                log.warning("event subscriber fell %d events behind: cut off", sub.queue_len)

    def _resolve(self, event: Any) -> None:
        pending = self._waiting.get(event.client_order_id)
        if not pending:
            return
        for outcome in [o for o in pending if event.kind in o.kinds]:
            outcome.set(event)
            pending.remove(outcome)
        if not pending:
            del self._waiting[event.client_order_id]
