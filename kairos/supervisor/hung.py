"""Hung processes: a status-board row in a beating state whose heartbeat is older than heartbeat_timeout_s.

Spawn mode hands each one to its Child's state machine (SIGTERM, SIGKILL after graceful_secs, restart).
In --watch mode systemd owns the processes, so `Terminator` applies the same kill itself: SIGTERM once,
SIGKILL graceful_secs later if the heartbeat is still stale, and the unit's ``Restart=always`` brings the
process back. A SIGSTOPped process keeps its SIGTERM pending, so only the SIGKILL ends it.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator

from kairos.records import ProcState
from kairos.status import BoardRow

log = logging.getLogger(__name__)
BEATING = (ProcState.RUNNING, ProcState.DEGRADED)
"""Self-reported states in which a process heartbeats (STARTING is start-up: reconciliation, snapshots)."""


def stale_rows(rows: list[BoardRow], now_ns: int, timeout_s: float) -> Iterator[tuple[BoardRow, float]]:
    """(row, heartbeat age in s) of every live process in a beating state past the timeout."""
    for row in rows:
        if row.alive and row.state in BEATING:
            age = (now_ns - row.heartbeat_ns) / 1e9
            if age > timeout_s:
                yield row, age


class Terminator:
    """--watch: the heartbeat kill for processes the supervisor did not spawn (matched by pid)."""

    __slots__ = ("_graceful_s", "_kill_at", "_timeout_s")

    def __init__(self, timeout_s: float, graceful_s: float) -> None:
        self._timeout_s, self._graceful_s = timeout_s, graceful_s
        self._kill_at: dict[int, float] = {}  # pid -> when SIGTERM turns into SIGKILL

    def check(self, rows: list[BoardRow], now_ns: int, now: float) -> None:
        hung = {row.pid: (row, age) for row, age in stale_rows(rows, now_ns, self._timeout_s)
                if row.pid != os.getpid()}
        self._kill_at = {pid: at for pid, at in self._kill_at.items() if pid in hung}  # gone or beating again
        for pid, (row, age) in hung.items():
            at = self._kill_at.get(pid)
            if at is None:
                log.error("%s (pid %d): heartbeat %.1fs old, terminating", row.role, pid, age)
                self._signal(pid, signal.SIGTERM)
                self._kill_at[pid] = now + self._graceful_s
            elif now >= at:
                log.error("%s (pid %d): still hung %.1fs after SIGTERM, killing", row.role, pid, self._graceful_s)
                self._signal(pid, signal.SIGKILL)
                self._kill_at[pid] = now + self._graceful_s

    def _signal(self, pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass  # it ended on its own
        except PermissionError as exc:
            log.error("cannot signal pid %d (%s): run the supervisor as the processes' user", pid, exc)
