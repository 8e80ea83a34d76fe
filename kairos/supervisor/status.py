"""GetSystemStatus: the supervisor's child states joined with what each process says about itself
on the status board (heartbeat, counters, latency histograms) and the rings' cursors.

In --watch mode nothing is ours: a process's state is derived from its board row alone (alive
pid, self-reported state, heartbeat age; UNKNOWN when the heartbeat is stale), its restarts and
crash loop from the pids seen on that row (kairos/supervisor/restarts.py).

The trading state is the gate's published word only while the gate is RUNNING: otherwise the blob
is whatever a dead or restarting gate last wrote, so it is reported as unknown (UNSPECIFIED) with a
note saying why, never as a stale ACTIVE.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from kairos.api import gatestate
from kairos.api.convert import to_pb
from kairos.api.pb import pb
from kairos.records import ChildState, ProcState
from kairos.status import BoardRow
from kairos.supervisor.child import ChildInfo
from kairos.supervisor.restarts import RestartWatch
from kairos.supervisor.rings import RingSet
from kairos.supervisor.trace import OrderLatencies

_OBSERVED = {ProcState.STARTING: ChildState.STARTING, ProcState.RUNNING: ChildState.RUNNING,
             ProcState.DEGRADED: ChildState.RUNNING, ProcState.STOPPING: ChildState.STOPPING,
             ProcState.STOPPED: ChildState.STOPPED, ProcState.FAILED: ChildState.EXITED}


def observed_state(row: BoardRow, now_ns: int, timeout_s: float) -> ChildState:
    """What a board row alone says about a process we do not manage."""
    if not row.alive:
        return ChildState.STOPPED if row.state is ProcState.STOPPED else ChildState.EXITED
    if (now_ns - row.heartbeat_ns) / 1e9 > timeout_s:
        return ChildState.UNKNOWN
    return _OBSERVED.get(row.state, ChildState.UNKNOWN)


class RateMeter:
    """Per-second rates of every board counter, from samples the arbiter takes about once a second."""

    __slots__ = ("_last", "_last_ns", "rates")

    def __init__(self) -> None:
        self._last: dict[tuple[str, int], dict[str, int]] = {}
        self._last_ns = 0
        self.rates: dict[str, dict[str, float]] = {}

    def sample(self, rows: list[BoardRow], now_ns: int) -> None:
        dt = (now_ns - self._last_ns) / 1e9
        current = {(r.role, r.pid): r.counters for r in rows}
        rates = {}
        for (role, pid), counters in current.items():
            before = self._last.get((role, pid))
            if before is not None and dt > 0:
                rates[role] = {k: max(v - before.get(k, 0), 0) / dt for k, v in counters.items()}
        self._last, self._last_ns, self.rates = current, now_ns, rates


class StatusView:
    """Read side for the API: safe to call from gRPC threads (copies only)."""

    def __init__(self, mode: str, children: Callable[[], tuple[ChildInfo, ...]], board: Any, rings: RingSet,
                 gate: Any, halting_roles: frozenset[str], heartbeat_timeout_s: float,
                 orders: OrderLatencies | None = None, last_words: Callable[[str], str] | None = None,
                 restarts: RestartWatch | None = None) -> None:
        self.mode, self._children, self._board, self._rings, self._gate = mode, children, board, rings, gate
        self._orders, self._last_words = orders, last_words  # last_words: --watch mode exit notes (kairos/exits.py)
        self._restarts = restarts  # --watch: the restarts systemd made
        self._halting, self._timeout_s = halting_roles, heartbeat_timeout_s
        self._started = time.monotonic()
        self.meter = RateMeter()
        self._lock = threading.Lock()

    def sample(self) -> list[BoardRow]:
        """Called by the arbiter loop: fresh board rows, also fed to the rate meter."""
        rows = self._board.snapshot()
        with self._lock:
            self.meter.sample(rows, time.monotonic_ns())
        if self._orders is not None:
            self._orders.sample()
        return rows

    def trading_blocked(self) -> str | None:
        for info in self._children():
            if info.role in self._halting and info.state is ChildState.FATAL:
                return (f"{info.role} is FATAL ({info.last_error}); trading is halted. Fix the cause, then "
                        "send SIGHUP to the supervisor to retry FATAL processes")
            if info.role in self._halting and info.crash_loop:
                return (f"{info.role} is in a crash loop ({info.last_error}); trading is halted. It is retried "
                        "every supervisor.backoff_max_s; resume trading once it runs again")
        for role in sorted(self._halting):
            if self._restarts is not None and self._restarts.crash_loop(role):
                return (f"{role} is in a crash loop (restarted by systemd without a stable run); trading is halted. "
                        "Resume trading once it runs for supervisor.stable_secs")
        return None

    def gate_doubt(self, rows: dict[str, BoardRow], now_ns: int) -> str:
        """Why the gate's published state is not its live word now ('' when every gate role is RUNNING by the
        supervisor's view and in its duty loop by its own row: a gate still reconciling has not published yet)."""
        managed = {info.role: info for info in self._children()}
        for role in sorted(self._halting):
            row, info = rows.get(role), managed.get(role)
            if info is not None and info.state is not ChildState.RUNNING:
                return f"{role} is {info.state.name}"
            if row is None or (info is not None and row.pid != info.pid):
                return f"{role} has not reported yet"
            own = observed_state(row, now_ns, self._timeout_s)
            if own is not ChildState.RUNNING:
                return f"{role} is {own.name}"
        return ""

    def system_status(self) -> Any:
        rows = {r.role: r for r in self._board.snapshot()}
        now_ns = time.monotonic_ns()
        doubt = self.gate_doubt(rows, now_ns)
        cursors = self._rings.cursors()
        procs = [self._managed(info, rows.pop(info.role, None), now_ns) for info in self._children()]
        procs += [self._observed(row, now_ns) for row in rows.values()]
        for proc in procs:
            proc.rings.extend(pb.RingCursor(ring=c.ring, consumer=c.consumer, depth=c.depth, overruns=c.overruns)
                              for c in cursors if c.consumer == proc.role)
        blob = self._gate.state()
        state = None if doubt else gatestate.trading_state(blob)
        return pb.SystemStatus(
            mode=self.mode, trading_state=to_pb(state) if state is not None else 0, trading_state_note=doubt,
            trading_reason=blob.trading_reason if blob and state is not None else "",
            gate_state_age_s=blob.age_s if blob else -1.0, processes=procs,
            rings=[pb.RingInfo(name=n, capacity=r.capacity, published=r.published, overflow=r.overflow.name)
                   for n, r in self._rings.rings.items()],
            uptime_s=time.monotonic() - self._started, shm_prefix=self._rings.prefix,
            order_latencies=[pb.Latency(name=name, p50_us=p50, p99_us=p99, p999_us=p999, count=n)
                             for name, p50, p99, p999, n in (self._orders.stats() if self._orders else ())],
        )

    def _managed(self, info: ChildInfo, row: BoardRow | None, now_ns: int) -> Any:
        proc = pb.ProcessStatus(role=info.role, state=to_pb(info.state), state_name=info.state.name, pid=info.pid,
                                uptime_s=info.uptime_s, restarts=info.restarts, heartbeat_age_s=-1.0,
                                last_exit_code=info.last_exit_code or 0, last_error=info.last_error, managed=True,
                                next_attempt_in_s=info.next_attempt_s, crash_loop=info.crash_loop)
        if row is not None and row.pid == info.pid and info.pid:
            self._fill_from_row(proc, row, now_ns)
        return proc

    def _observed(self, row: BoardRow, now_ns: int) -> Any:
        state = ChildState.RUNNING if row.pid == os.getpid() else observed_state(row, now_ns, self._timeout_s)
        last = self._last_words(row.role) if self._last_words else ""
        run = self._restarts.runs.get(row.role) if self._restarts is not None else None
        proc = pb.ProcessStatus(role=row.role, state=to_pb(state), state_name=state.name, pid=row.pid,
                                uptime_s=(now_ns - row.start_ns) / 1e9 if row.alive else 0.0, managed=False,
                                next_attempt_in_s=-1.0, last_error=last, restarts=run.restarts if run else 0,
                                crash_loop=self._restarts.crash_loop(row.role) if run else False)
        self._fill_from_row(proc, row, now_ns)
        return proc

    def _fill_from_row(self, proc: Any, row: BoardRow, now_ns: int) -> None:
        proc.self_state = row.state.name if row.alive else ""  # a dead process's last word is stale
        proc.heartbeat_age_s = max(now_ns - row.heartbeat_ns, 0) / 1e9 if row.heartbeat_ns else -1.0
        proc.counters.update(row.counters)
        with self._lock:
            proc.msg_rates.update(self.meter.rates.get(row.role, {}))
        proc.latencies.extend(
            pb.Latency(name=name, p50_us=h.p50 / 1e3, p99_us=h.p99 / 1e3, p999_us=h.p999 / 1e3,
                       count=h.count)
            for name, h in row.histograms.items()
        )
