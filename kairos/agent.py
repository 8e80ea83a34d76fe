"""A process is an Agent; one runner owns signals, heartbeat and idling (Agrona AgentRunner).

``do_work`` returns how much it did; 0 lets the injected idle strategy wait (usually a ring's
blocking wait, so an idle process costs no CPU). Signal handlers only set a flag.
"""

from __future__ import annotations

import gc
import logging
import signal
import time
from collections.abc import Callable
from typing import Protocol

from kairos.errors import EXIT_OK
from kairos.records import ProcState
from kairos.supervisor.systemd import Notifier

log = logging.getLogger(__name__)


class Agent(Protocol):
    role: str

    def on_start(self) -> None: ...

    def do_work(self) -> int: ...

    def on_close(self) -> None: ...


class Heartbeat(Protocol):
    def heartbeat(self) -> None: ...

    def set_state(self, state: ProcState) -> None: ...


Idle = Callable[[int], None]
"""Called with the work count of the last duty cycle; waits (bounded) when it was 0."""


def sleep_idle(max_sleep_s: float = 0.001) -> Idle:
    def idle(work: int) -> None:
        if work == 0:
            time.sleep(max_sleep_s)

    return idle


def settle_heap() -> None:
    """After start-up: collect its garbage, then freeze what is left (modules, config, tables, books) out
    of the collector's generations, so a later pass scans only what the duty cycles made (a full pass in
    the gate: ~30 ms -> ~0.06 ms; docs/BENCHMARKS.md). The gen0 threshold stays CPython's (700): a larger
    one made each pass ~10x longer."""
    gc.collect()
    gc.freeze()


class AgentRunner:
    """Runs one agent until SIGTERM/SIGINT; the duty cycle is do_work -> heartbeat (+ systemd WATCHDOG=1) -> idle."""

    __slots__ = ("_agent", "_heartbeat_ns", "_idle", "_notifier", "_status", "_stop")

    def __init__(self, agent: Agent, idle: Idle, status: Heartbeat, heartbeat_interval_s: float = 0.2) -> None:
        self._agent = agent
        self._idle = idle
        self._status = status
        self._heartbeat_ns = int(heartbeat_interval_s * 1e9)
        self._stop = False
        self._notifier = Notifier()

    def stop(self, *_: object) -> None:
        self._stop = True

    def run(self) -> int:
        """Start, loop, close; returns EXIT_OK. An error marks the row FAILED and goes on to the process
        edge (kairos/process.py), which logs it, leaves the exit note and picks the exit code."""
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        status, agent = self._status, self._agent
        status.set_state(ProcState.STARTING)
        status.heartbeat()
        try:
            agent.on_start()
            settle_heap()
            status.set_state(ProcState.RUNNING)
            self._notifier.send(f"READY=1\nSTATUS={agent.role} running")
            log.info("%s running", agent.role)
            self._loop()
            return EXIT_OK
        except Exception:
            status.set_state(ProcState.FAILED)
            raise
        finally:
            status.set_state(ProcState.STOPPING)
            self._notifier.send(f"STOPPING=1\nSTATUS={agent.role} stopping")
            try:
                agent.on_close()
            finally:
                status.set_state(ProcState.STOPPED)
                log.info("%s stopped", agent.role)

    def _loop(self) -> None:
        agent_work, idle, status, watchdog = self._agent.do_work, self._idle, self._status, self._notifier.watchdog
        interval = self._heartbeat_ns
        next_beat = 0
        while not self._stop:
            work = agent_work()
            now = time.monotonic_ns()
            if now >= next_beat:
                status.heartbeat()
                watchdog(now)
                next_beat = now + interval
            idle(work)
