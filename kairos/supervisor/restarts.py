"""--watch mode: restarts of the processes systemd runs, seen as a new pid on a role's status-board row.

The spawn supervisor counts failures at each exit it reaps (kairos/supervisor/child.py). Under systemd
the units restart themselves, so a new pid on a row is the restart, judged by the same policy: more
than ``start_retries`` restarts without a run of ``stable_secs`` is a crash loop, and a run that long
(from the row's start to its last heartbeat seen) ends it. A run whose row said STOPPED before it
ended was stopped on purpose (``systemctl restart``) and is not a failure. The board is sampled
about once a second, so a process that dies before it claims its row is not seen.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace

from kairos.records import ProcState
from kairos.status import BoardRow

log = logging.getLogger(__name__)

@dataclass(frozen=True, slots=True)
class Run:
    """One role's current run as last sampled, and its history since the supervisor started."""

    pid: int
    start_ns: int
    last_beat_ns: int  # the newest heartbeat seen from this run: how long it was seen healthy
    restarts: int  # new pids seen (never reset)
    retries: int  # failed runs in a row without a stable one
    stopped: bool  # the row said STOPPED: a clean stop, not a failure


class RestartWatch:
    """Counts restarts per role from board samples; ``runs`` is replaced whole, so API threads may read it."""

    __slots__ = ("_max_retries", "_stable_ns", "runs")

    def __init__(self, start_retries: int, stable_secs: float) -> None:
        self._max_retries, self._stable_ns = start_retries, int(stable_secs * 1e9)
        self.runs: dict[str, Run] = {}

    def observe(self, rows: list[BoardRow]) -> None:
        runs = dict(self.runs)
        for row in rows:
            if row.pid == os.getpid():
                continue
            old = runs.get(row.role)
            if old is None:  # first sight (or the supervisor itself restarted): nothing to judge yet
                runs[row.role] = Run(row.pid, row.start_ns, row.heartbeat_ns, 0, 0, False)
                log.info("watching %s (pid %d)", row.role, row.pid)
            elif row.pid != old.pid:
                retries = (0 if self._stable(old) else old.retries) + (not old.stopped)
                runs[row.role] = Run(row.pid, row.start_ns, row.heartbeat_ns, old.restarts + 1,
                                        retries, False)
                log.log(logging.WARNING if retries else logging.INFO,
                        "%s restarted: pid %d -> %d (%s; %d failed runs in a row)", row.role, old.pid, row.pid,
                        "stopped cleanly" if old.stopped else "it failed", retries)
            else:
                run = replace(old, last_beat_ns=max(row.heartbeat_ns, old.last_beat_ns),
                              stopped=row.state is ProcState.STOPPED)
                runs[row.role] = replace(run, retries=0) if row.alive and self._stable(run) else run
        self.runs = runs

    def _stable(self, run: Run) -> bool:
        return run.last_beat_ns - run.start_ns >= self._stable_ns

    def crash_loop(self, role: str) -> bool:
        run = self.runs.get(role)
        return run is not None and run.retries > self._max_retries
