"""The gate process as an Agent: marks, executor reports, then intents, one duty cycle at a time.

Start: replay the journal, then (in ``do_work``, retried every second while a venue is down) start
each executor (which loads the venue's order rules: they go into the pre-trade table) and reconcile
it. Until one venue is reconciled the intents and manual rings are not read, so intents wait in
them. From then on intents are taken, and one for a venue not (yet) reconciled, e.g. one whose
rules cannot be loaded, is rejected NOT_RECONCILED, never sent (fail closed per venue): one
venue's outage does not block the others, and its retried start runs on a worker thread
(kairos/gate/opener.py) so a venue that hangs does not stall them either. Every ring is read
under the consumer name ``gate`` and one Waiter sleeps on its doorbell; while an order or cancel
is in flight the gate polls its executors every ``INFLIGHT_SLEEP_S`` instead. The executors ring the
same doorbell with every report (ACK, fill, cancel), so either sleep ends as soon as one arrives.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import time
from collections.abc import Iterable

import posix_ipc

from kairos.config import Settings
from kairos.errors import ExecutionError, RingFull, RingNotFound
from kairos.execution.base import Executor
from kairos.gate.build import Gate
from kairos.gate.desk import DISK_FULL, Desk
from kairos.gate.marks import Marks
from kairos.gate.metrics import GateMetrics, NoTrace, OrderTrace
from kairos.gate.opener import Opener
from kairos.gate.snapshot import GateStateWriter
from kairos.gate.state import describe
from kairos.logs import ErrorTally
from kairos.records import (
    EXEC_EVENT,
    MARKET_DATA,
    ORDER_INTENT,
    ORDER_TRACE,
    ProcState,
    TradingState,
    Venue,
)
from kairos.ring import Poller, Ring, Waiter
from kairos.risk import RiskState
from kairos.status import Counter, Slot

log = logging.getLogger(__name__)
ROLE = "gate"
MD_LIMIT, INTENT_LIMIT = 4096, 256
STATE_MIN_NS, STATE_MAX_NS, RETRY_NS = 10_000_000, 500_000_000, 1_000_000_000
INFLIGHT_SLEEP_S = 0.0005
DISK_ERRNOS = frozenset((errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS))


class GateAgent:
    role = ROLE

    def __init__(self, settings: Settings, slot: Slot) -> None:
        self._settings, self._slot, self._prefix = settings, slot, settings.shm_prefix
        self.gate: Gate | None = None
        self.state: RiskState | None = None  # the gate's parts, bound at on_start
        self._rings: list[Ring] = []
        self._md: list[tuple[Poller, Marks]] = []
        self._changed: set[int] = set()
        self._executors: list[Executor | None] = []
        self._started: set[int] = set()
        self._running: list[Executor] = []  # the started executors: the only ones the duty cycle touches
        self._opener = Opener()
        self._reconciled: set[int] = set()
        self._closed: dict[int, Counter] = {}  # enabled venues not reconciled yet: their ``closed.<venue>`` flag
        self._ready = False  # at least one venue reconciled: intents are read
        self._retry_ns = self._published_ns = 0
        self._tally = ErrorTally(log)
        self._writer: GateStateWriter | None = None
        self._waiter: Waiter | None = None
        self.desk: Desk | None = None
        self._intents: Poller | None = None
        self._manual: Poller | None = None

    def on_start(self) -> None:
        events = Ring.attach("events", EXEC_EVENT, self._prefix)
        self._rings.append(events)
        gate = self.gate = Gate.build(self._settings, events.producer(self._settings.rings.block_timeout_ms / 1000),
                                      GateMetrics(self._slot, self._trace()))
        self.state, self.desk, self._executors = gate.state, gate.desk, gate.executors
        self._close_venues()
        self._attach_inputs()
        self._writer = GateStateWriter(self._prefix)
        log.info("journal replayed: %d entries, %d open orders, trading %s; reconciling before taking intents",
                 gate.replayed, len(gate.desk.blotter.orders.open), TradingState(self.state.trading).name)

    def _close_venues(self) -> None:
        """Every enabled venue starts closed (``closed.<venue>`` = 1, no order sent) until it is reconciled."""
        for venue, executor in enumerate(self._executors):
            if executor is not None:
                self.desk.reconciled[venue] = False
                self._closed[venue] = self._slot.counter(f"closed.{executor.venue.name.lower()}")
                self._closed[venue].set(1)
        self._ready = not self._closed

    def _trace(self) -> OrderTrace | NoTrace:
        """Order traces go to the ``trace`` ring when the supervisor made one (older set-ups: off)."""
        try:
            ring = Ring.attach("trace", ORDER_TRACE, self._prefix)
        except RingNotFound:
            log.info("no trace ring: per-order stage timestamps are off")
            return NoTrace()
        self._rings.append(ring)
        return OrderTrace(ring.producer())

    def _attach_inputs(self) -> None:
        consumers: list[Poller] = []
        for name in ("intents", "manual"):
            ring = Ring.attach(name, ORDER_INTENT, self._prefix)
            self._rings.append(ring)
            consumers.append(ring.consumer(ROLE))
        self._intents, self._manual = consumers
        for venue, executor in enumerate(self._executors):
            if executor is not None:
                ring = Ring.attach(f"md.{executor.venue.name.lower()}", MARKET_DATA, self._prefix)
                self._rings.append(ring)
                consumers.append(ring.consumer(ROLE))
                self._md.append((consumers[-1], self.gate.marks(venue, self._changed)))
        self._waiter = Waiter(consumers, self._prefix, ROLE, wait=self._settings.wait_for(ROLE),
                              spin_us=self._settings.rings.spin_us)
        bell = self._waiter.bell
        for executor in self._executors:
            if executor is not None and bell is not None:
                executor.wake = bell.release  # an ACK or fill wakes the sleeping gate at once

    def do_work(self) -> int:
        """One duty cycle. A disk error that reaches here (the journal paths handle their own; e.g. a
        paper ledger) halts trading DISK_FULL instead of crash-looping the gate: it stays up to say so."""
        try:
            return self._cycle()
        except OSError as exc:
            if exc.errno not in DISK_ERRNOS or self.desk is None:
                raise
            if not self.desk.blotter.why.startswith(DISK_FULL):  # the first one with its traceback, then tallied
                log.exception("disk error in the gate's duty cycle")
            self.desk.disk_full(exc)
            return 0

    def _cycle(self) -> int:
        desk = self.desk
        backlog = desk.events.pending  # events the last cycle's flush could not publish (RingFull)
        work = self._marks_in()
        for executor in self._running:
            work += desk.on_reports(executor)
        if self._closed:
            work += self._connect()
        if self._ready and not backlog:
            work += self._intents_in()
        try:
            desk.flush()
        except RingFull as exc:
            self._tally("events ring full", str(exc))
        self._publish(time.monotonic_ns())
        return work

    def _marks_in(self) -> int:
        work = sum(consumer.poll(marks, MD_LIMIT) for consumer, marks in self._md)
        for _, marks in self._md:
            if marks.bad:
                self._bad_quotes(marks)
        if self._changed:
            s, stride = self.state, self.state.grid.stride
            for k in self._changed:
                executor = self._executors[k // stride]
                if executor is not None and not self._opener.busy(k // stride):
                    executor.on_mark(k % stride, s.bid[k], s.ask[k])
            self._changed.clear()
            self.desk.blotter.book.refresh_gross()
            self.desk.scan(time.monotonic_ns())
        return work

    def _bad_quotes(self, marks: Marks) -> None:
        """Invalid quotes are not marks (kairos/gate/marks.py): counted on the board, logged rate-limited."""
        self.desk.metrics.bad_quotes.add(marks.bad)
        marks.bad = 0
        k, bid, ask = marks.last_bad
        venue, _ = self.state.grid.split(k)
        self._tally("invalid quote not used as a mark",
                    f"{self.state.grid.symbol[k]} on {Venue(venue).name}: bid {bid!r} ask {ask!r}")

    def _intents_in(self) -> int:
        """Manual commands first. Not called while events from an earlier cycle wait to be published
        (backpressure); this cycle's reports do not hold an intent back (the batch publishes them first)."""
        desk = self.desk
        try:
            return (self._manual.poll(desk.on_manual, INTENT_LIMIT)
                    + self._intents.poll(desk.on_intents, INTENT_LIMIT))
        except RingFull as exc:  # the batch stays in its ring and comes back as replays
            self._tally("events ring full", str(exc))
            return 0

    def _connect(self) -> int:
        """Start and reconcile every venue not reconciled yet (retried each second while one is down);
        intents are taken once one is. A venue still closed shows as DEGRADED and ``closed.<venue>`` = 1."""
        now = time.monotonic_ns()
        due = now >= self._retry_ns
        if due:
            self._retry_ns = now + RETRY_NS
        opened = [v for v in sorted(self._closed) if self._open(v, due, now)]
        for venue in opened:
            self._closed.pop(venue).set(0)
            self.desk.reconciled[venue] = True
        if due or opened:
            self._slot.set_state(ProcState.DEGRADED if self._closed else ProcState.RUNNING)
        if not opened:
            return 0
        self._ready = True
        self.desk.blotter.book.refresh_gross()
        if self._closed:
            log.warning("reconciled with %s: taking intents; still closed, its intents rejected NOT_RECONCILED "
                        "and retried every second: %s", ", ".join(self._names(opened)),
                        ", ".join(self._names(self._closed)))
        else:
            log.info("reconciled with every venue: taking intents")
        return len(opened)

    def _names(self, venues: Iterable[int]) -> list[str]:
        return [self._executors[v].venue.name for v in venues]

    def _open(self, venue: int, due: bool, now: int) -> bool:
        """Start (`_start`), then reconcile one closed venue (when ``due``: once a second); False while closed."""
        executor = self._executors[venue]
        try:
            if venue not in self._started:
                if not self._start(venue, executor, due, now):
                    return False
                self.gate.load_rules(venue)
                self._started.add(venue)
                self._running.append(executor)
            elif not due:
                return False
            self.gate.reconcile(venue)
        except ExecutionError as exc:
            self._tally(f"{executor.venue.name} not reachable", str(exc))
            return False
        self._reconciled.add(venue)
        return True

    def _start(self, venue: int, executor: Executor, due: bool, now: int) -> bool:
        """Before any venue trades, here (nothing to stall); after, on the opener's thread (never blocks)."""
        if self._ready:
            return self._opener.poll(venue, executor, now)
        if due:
            executor.start()
        return due

    def _publish(self, now: int) -> None:
        desk = self.desk
        if now - self._published_ns < (STATE_MIN_NS if desk.dirty else STATE_MAX_NS):
            return
        executors = {v: e for v, e in enumerate(self._executors) if e is not None}
        blob = describe(desk.blotter, self.gate.instruments, executors, desk.metrics, self._settings.execution.mode,
                        self._reconciled)
        if not self._writer.write(blob):
            self._tally("gate state too large for its segment", f"{len(blob.orders)} orders")
        desk.dirty = False
        self._published_ns = now

    def idle(self, work: int) -> None:
        """AgentRunner idle: block on the doorbell unless an order or cancel is in flight."""
        if work:
            return
        desk = self.desk
        inflight = desk is not None and (desk.blotter.orders.awaiting() or any(
            e.pending() for e in self._running))
        waiter = self._waiter
        bell = None if waiter is None else waiter.bell
        if waiter is not None and not inflight:
            waiter.idle(0)
        elif bell is not None:
            with contextlib.suppress(posix_ipc.BusyError, posix_ipc.SignalError):  # timeout: paper's travelling
                bell.acquire(INFLIGHT_SLEEP_S)  # requests are polled; the executors ring it with each report
        else:
            time.sleep(INFLIGHT_SLEEP_S)

    def on_close(self) -> None:
        self._opener.close()
        if self.desk is not None:
            try:
                self.desk.flush()
            except RingFull as exc:
                log.error("events not published at shutdown: %s", exc)
        if self.gate is not None:
            self.gate.close()
        for closable in (self._waiter, self._writer, *self._rings):
            if closable is not None:
                closable.close()
