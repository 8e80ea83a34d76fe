"""The persister agent: drain rings into the spool, let one thread per sink write from the spool.

Exactly-once, end to end::

    ring --poll--> handler: Spool.append (page cache) --return--> ring cursor stored
                                   |
              sink thread: read spool from checkpoint -> COPY/INSERT ... ON CONFLICT DO NOTHING
                           (or Redis MULTI/EXEC) -> commit -> checkpoint

The ring cursor moves only after the records are in the spool, and a sink checkpoint only after
the sink committed them. A kill at any point replays at most (a) the ring records since the
cursor, appended to the spool a second time, and (b) the spool since each checkpoint; the
idempotent keys absorb both. The drain path never touches a database, so a slow or dead
PostgreSQL or Redis never backs up a ring (``events`` is a block ring: the gate would wait).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final

import numpy as np

from kairos.errors import PersistError
from kairos.logs import ErrorTally
from kairos.persist.batch import MD_STREAMS, STREAM_FINGERPRINTS, Stream
from kairos.persist.gatestate import GATE_STATE_FINGERPRINT, GateStateSampler
from kairos.persist.spool import Spool
from kairos.persist.worker import SinkWorker
from kairos.records import ProcState
from kairos.ring import Poller
from kairos.status import Slot

log = logging.getLogger(__name__)

REPORT_NS: Final = 250_000_000
COLLECT_EVERY_S: Final = 1.0
RETRY_S: Final = 0.05


class PersisterAgent:
    """``do_work`` only moves ring batches into the spool; counters and state every 250 ms."""

    role = "persister"

    def __init__(self, sources: Sequence[tuple[Stream, Poller]], spool: Spool, workers: Sequence[SinkWorker],
                 slot: Slot, gate: GateStateSampler | None = None, poll_limit: int = 4096, fsync_s: float = 0.2,
                 stop_drain_s: float = 5.0, spool_max_bytes: int = 0) -> None:
        self._spool, self._workers, self._slot, self._gate = spool, tuple(workers), slot, gate
        self._max_bytes = spool_max_bytes
        self.md_shed = 0
        self.md_open = True  # False from a failed append until the spool thread sees room again
        self.disk_bytes = self.spool_errors = 0
        self._polls = tuple((cons.poll, self._appender(stream)) for stream, cons in sources)
        self._consumers = tuple(cons for _, cons in sources)
        self._limit, self._fsync_s, self._stop_drain_s = poll_limit, fsync_s, stop_drain_s
        self._tally = ErrorTally(log)
        self._next_report = 0
        self._state = ProcState.RUNNING
        self._stop = threading.Event()
        self._keeper = threading.Thread(target=self._keep, name="persist-spool", daemon=True)
        self.rows = 0
        sinks = [f"{w.sink.name}_{what}" for what in ("rows", "failures") for w in self._workers]
        self._counters = {name: slot.counter(name) for name in (
            "spooled_rows", "spool_bytes", *sinks, "dead_frames", "md_overruns", "spool_errors",
            "spool_skipped_bytes", "md_shed_rows", "spool_disk_bytes", "spool_reserve_bytes")}

    def _appender(self, stream: Stream) -> Callable[[np.ndarray], object]:
        """Spool append for one ring: market data may be shed, executions and gate state never."""
        append = functools.partial(self._spool.append, int(stream), STREAM_FINGERPRINTS[stream])
        return functools.partial(self._append_md if stream in MD_STREAMS else self._append_kept, append)

    def _append_md(self, append: Callable[[np.ndarray], object], records: np.ndarray) -> object:
        """Shed (counted) while the backlog is over the cap or the disk is full, so a long database
        outage cannot take the space executions need and stall ``events`` (a block ring)."""
        if self.md_open and (not self._max_bytes or self._backlog() <= self._max_bytes):
            try:
                return append(records)
            except OSError as exc:
                self.md_open = False
                self._spool_failed(exc)
        self.md_shed += len(records)
        self._tally("market data shed (spool over persister.spool_max_mb or disk full)",
                    f"{self.md_shed} md rows shed so far; executions and state are still spooled")
        return None

    def _append_kept(self, append: Callable[[np.ndarray], object], records: np.ndarray) -> object:
        """On a full disk the reserve is given up and the append tried again; if that fails as well the
        error reaches ``do_work`` and the ring cursor stays (the batch is appended on a later cycle)."""
        try:
            return append(records)
        except OSError:
            if not self._spool.reserve.release():
                raise
            self.md_open = False
            return append(records)

    def _backlog(self) -> int:
        return self._spool.backlog_bytes(min(w.position for w in self._workers))

    def on_start(self) -> None:
        for worker in self._workers:
            worker.start()
        self._keeper.start()
        log.info("persister draining %d rings into spool %s", len(self._polls), self._spool.directory)

    def do_work(self) -> int:
        work, limit = 0, self._limit
        try:
            for poll, append in self._polls:
                work += poll(append, limit)
        except OSError as exc:  # disk full or gone: the cursor did not move; retried after a pause (no spin)
            self._spool_failed(exc)
            time.sleep(RETRY_S)
        self.rows += work
        now = time.monotonic_ns()
        if now >= self._next_report:
            self._next_report = now + REPORT_NS
            self._sample_gate(now)
            self._report()
        return work

    def _sample_gate(self, now: int) -> None:
        """Balances and positions live in the gate's state blob, not on a ring: spool them on change."""
        payload = self._gate.sample(now) if self._gate is not None else None
        if payload is not None:
            try:
                self._spool.append(Stream.GATE_STATE, GATE_STATE_FINGERPRINT, payload)
            except OSError as exc:
                self._spool_failed(exc)

    def _spool_failed(self, exc: OSError) -> None:
        self._tally("spool write failed (retried; market data shed until the disk has room)", str(exc))
        self.spool_errors += 1

    def _report(self) -> None:
        """Counters, then RUNNING/DEGRADED: degraded while a sink is down (rows are being spooled).
        A crashed sink thread is a bug: raise, so the process exits and is restarted."""
        self._publish_counters()
        for w in self._workers:
            if w.crashed is not None:
                raise PersistError(f"{w.sink.name} worker crashed: {w.crashed!r}")
        if self._keeper.ident is not None and not self._keeper.is_alive():
            raise PersistError("the spool thread (fsync, segment removal, reserve) died")
        down = [w.sink.name for w in self._workers if w.down]
        state = ProcState.DEGRADED if down else ProcState.RUNNING
        if state != self._state:
            self._state = state
            self._slot.set_state(state)
            if down:
                log.warning("DEGRADED: %s down, spooling to %s", " and ".join(down), self._spool.directory)
            else:
                log.info("RUNNING: all sinks up (the spool backlog drains in order)")

    def _publish_counters(self) -> None:
        c, spool = self._counters, self._spool
        c["spooled_rows"].set(self.rows)
        c["spool_bytes"].set(spool.appended_bytes)
        c["md_overruns"].set(sum(cons.overruns for cons in self._consumers))
        c["spool_skipped_bytes"].set(spool.torn_bytes + spool.skipped_bytes)
        c["md_shed_rows"].set(self.md_shed)
        c["spool_errors"].set(self.spool_errors + sum(w.disk_errors for w in self._workers))
        c["spool_disk_bytes"].set(self.disk_bytes)
        c["spool_reserve_bytes"].set(spool.reserve.size if spool.reserve.held else 0)
        c["dead_frames"].set(sum(w.dead_frames for w in self._workers))
        for w in self._workers:
            c[f"{w.sink.name}_rows"].set(w.rows)
            c[f"{w.sink.name}_failures"].set(w.failures)

    def _keep(self) -> None:
        """fsync the spool every ``fsync_s``, drop segments every sink has checkpointed past, and let
        market data in again once the disk has room. A disk error is counted and retried next turn;
        anything else kills the thread and ``_report`` makes the process exit."""
        next_collect = 0.0
        while not self._stop.wait(self._fsync_s):
            try:
                self._spool.sync()
                if time.monotonic() >= next_collect:
                    next_collect = time.monotonic() + COLLECT_EVERY_S
                    self._spool.collect(min(w.position for w in self._workers))
                    self.disk_bytes = self._spool.disk_bytes()
                if not self.md_open and self._spool.reserve.room():
                    self.md_open = True
                    log.info("spool has room again: market data is spooled again (%d rows shed)", self.md_shed)
            except OSError as exc:
                self._spool_failed(exc)
            except Exception:
                log.exception("spool thread died")
                raise

    def on_close(self) -> None:
        """Sinks finish what is spooled (bounded by ``stop_drain_s``); the spool keeps the rest."""
        for worker in self._workers:
            worker.stop(self._stop_drain_s)
        for worker in self._workers:
            worker.join()
        self._stop.set()
        self._keeper.join(self._fsync_s + 5.0)
        self._publish_counters()
        self._spool.close()

