"""One supervised child: the supervisord state machine, pure (no OS calls, clock passed in).

The arbiter feeds in what happened (``spawned``, ``exited``, ``stale``) and calls ``transition``
every loop; the child answers with what the arbiter must do (`Do.SPAWN`, `Do.TERM`, `Do.KILL`).
``transition`` is the only place a spawn is decided. Edges::

    STOPPED --start--> STARTING --start_secs up--> RUNNING
                          |                           |
                          | exit early / spawn error  | exit (crash, kill -9)
                          v                           v
                       BACKOFF <----------------------+
                          |  delay = min(initial * 2^(retries-1), backoff_max_s), forever
                          +--delay--> STARTING
    STARTING/RUNNING --exit code 3 (boot error: bad config, shm layout)--> FATAL (the only way in)
    STARTING/RUNNING --stop or stale heartbeat--> STOPPING --exit--> STOPPED (stop) | BACKOFF (stale)
    FATAL --SIGHUP (operator retry)--> STOPPED --> STARTING

No role ever gives up on a crash: past ``start_retries`` consecutive failures the child is in a
*crash loop* (``crash_loop``), still retried at the capped delay; for a ``fail_closed`` role (gate,
strategy) the arbiter halts trading then, and only the operator resumes it. A run of ``stable_secs``
forgives earlier failures. EXITED is only ever observed (--watch mode), never entered here.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from enum import Enum

from kairos.config import SupervisorConfig
from kairos.errors import EXIT_BOOT_ERROR
from kairos.records import ChildState


class Do(Enum):
    """What the arbiter must do for a child after a transition."""

    SPAWN = "spawn"
    TERM = "term"
    KILL = "kill"


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """One row of the child table: a role and the exact command a systemd unit would run."""

    role: str
    argv: tuple[str, ...]
    halts_trading: bool = False  # the risk gate: down means nobody checks risk (CANCEL_ALL before stopping it)
    fail_closed: bool = False  # a crash loop or FATAL here halts trading until the operator resumes it
    secrets: tuple[str, ...] = ()  # config sections whose secrets it gets (kairos/supervisor/secrets.py)


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    start_secs: float
    start_retries: int
    backoff_initial_s: float
    backoff_max_s: float
    graceful_secs: float
    stable_secs: float

    @classmethod
    def from_config(cls, cfg: SupervisorConfig) -> RestartPolicy:
        return cls(cfg.start_secs, cfg.start_retries, cfg.backoff_initial_s, cfg.backoff_max_s,
                   cfg.graceful_secs, cfg.stable_secs)

    def delay(self, retries: int) -> float:
        """Exponential: initial, 2x, 4x ... capped at backoff_max_s."""
        return min(self.backoff_initial_s * 2 ** max(retries - 1, 0), self.backoff_max_s)


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """A copy of a child's state for the API thread (never the live object)."""

    role: str
    state: ChildState
    pid: int
    uptime_s: float
    restarts: int
    last_exit_code: int | None
    last_error: str
    next_attempt_s: float  # BACKOFF: seconds until the next spawn; -1 otherwise
    crash_loop: bool


def describe_exit(code: int) -> str:
    """Exit codes as waitstatus_to_exitcode gives them: negative means killed by that signal."""
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    if code == EXIT_BOOT_ERROR:
        return f"boot error (exit code {code}): bad config or shm layout, not restarted"
    return f"exited with code {code}"


def exit_reason(code: int, note: str) -> str:
    """The exit as the OS saw it, plus what the process said about it (its exit note), if anything."""
    return f"{describe_exit(code)}: {note}" if note else describe_exit(code)


class Child:
    __slots__ = ("_kill_at", "_restart_after_stop", "_spawn_at", "_wanted", "last_error", "last_exit_code",
                 "pid", "policy", "retries", "spawns", "spec", "started_at", "state")

    def __init__(self, spec: ChildSpec, policy: RestartPolicy) -> None:
        self.spec = spec
        self.policy = policy
        self.state = ChildState.STOPPED
        self.pid = 0
        self.spawns = 0
        self.retries = 0
        self.started_at = 0.0
        self.last_exit_code: int | None = None
        self.last_error = ""
        self._wanted = False
        self._restart_after_stop = False
        self._spawn_at = 0.0
        self._kill_at = 0.0

    @property
    def role(self) -> str:
        return self.spec.role

    @property
    def alive(self) -> bool:
        return self.pid > 0

    def start(self) -> None:
        """Ask for the child to run; the next ``transition`` spawns it."""
        self._wanted = True

    def transition(self, now: float) -> Do | None:
        """Advance time-driven edges; returns the action the arbiter must take, if any."""
        state = self.state
        if state is ChildState.STOPPED and self._wanted:
            return self._spawn(now)  # STOPPED -> STARTING
        if state is ChildState.STARTING and self.alive and now - self.started_at >= self.policy.start_secs:
            self.state = ChildState.RUNNING  # STARTING -> RUNNING: stayed up for start_secs
            return None
        if state is ChildState.RUNNING:
            self._forgive(now)  # RUNNING stays RUNNING: a stable run ends a crash loop
            return None
        if state is ChildState.BACKOFF and now >= self._spawn_at:
            return self._spawn(now)  # BACKOFF -> STARTING: delay elapsed (even in a crash loop: never give up)
        if state is ChildState.STOPPING and self._kill_at and now >= self._kill_at:
            self._kill_at = 0.0  # STOPPING stays STOPPING: escalate to SIGKILL after graceful_secs
            return Do.KILL
        return None

    def _spawn(self, now: float) -> Do:
        self.state = ChildState.STARTING
        self.started_at = now
        return Do.SPAWN

    def spawned(self, pid: int) -> None:
        self.pid = pid
        self.spawns += 1

    def spawn_failed(self, error: str, now: float) -> None:
        self.last_error = f"spawn failed: {error}"
        self._fail(now)  # STARTING -> BACKOFF: could not even exec

    def exited(self, code: int, now: float, note: str = "") -> None:
        """The process is gone (code < 0: killed by signal -code); ``note`` is its own last words, if any."""
        self.pid = 0
        self.last_exit_code = code
        if self.state is ChildState.STOPPING and not self._restart_after_stop:
            self.state = ChildState.STOPPED  # STOPPING -> STOPPED: we asked it to stop
            self._kill_at = 0.0
            return
        if not self._restart_after_stop:
            self.last_error = exit_reason(code, note)
        if code == EXIT_BOOT_ERROR:
            self.state = ChildState.FATAL  # STARTING/RUNNING -> FATAL: a boot error never heals by retrying
            return
        self._forgive(now)
        self._kill_at = 0.0
        self._restart_after_stop = False
        self._fail(now)  # STARTING/RUNNING/STOPPING(stale) -> BACKOFF: died early, crashed, killed or hung

    def _forgive(self, now: float) -> None:
        """A long, healthy run (stable_secs) forgives earlier failures."""
        if now - self.started_at >= self.policy.stable_secs:
            self.retries = 0

    def _fail(self, now: float) -> None:
        self.retries += 1
        self.state = ChildState.BACKOFF
        self._spawn_at = now + self.policy.delay(self.retries)

    @property
    def crash_loop(self) -> bool:
        """More than start_retries failures without a stable run: still retried, but something is wrong."""
        return self.retries > self.policy.start_retries

    def stop(self, now: float) -> Do | None:
        """Stop for good (shutdown): SIGTERM if running, SIGKILL after graceful_secs."""
        self._wanted = False
        self._restart_after_stop = False
        if self.state is ChildState.BACKOFF:
            self.state = ChildState.STOPPED  # BACKOFF -> STOPPED: nothing running, no restart
            return None
        if self.state in (ChildState.STARTING, ChildState.RUNNING) and self.alive:
            return self._terminate(now)  # STARTING/RUNNING -> STOPPING
        return None

    def revive(self) -> None:
        """Operator retry (SIGHUP) after fixing what made the child FATAL."""
        if self.state is ChildState.FATAL:
            self.state = ChildState.STOPPED  # FATAL -> STOPPED: retries forgiven, spawned on the next transition
            self.retries = 0
            self._wanted = True

    def stale(self, age_s: float, now: float) -> Do | None:
        """The heartbeat is older than the timeout: terminate it and restart it afterwards."""
        if self.state is not ChildState.RUNNING or not self.alive:
            return None
        self._restart_after_stop = True
        self.last_error = f"heartbeat stale for {age_s:.1f}s: terminated"
        return self._terminate(now)  # RUNNING -> STOPPING: hung, will go to BACKOFF and restart

    def _terminate(self, now: float) -> Do:
        self.state = ChildState.STOPPING
        self._kill_at = now + self.policy.graceful_secs
        return Do.TERM

    @property
    def restarts(self) -> int:
        """Spawns after the first (never reset)."""
        return max(self.spawns - 1, 0)

    def info(self, now: float) -> ChildInfo:
        up = now - self.started_at if self.alive else 0.0
        wait = max(self._spawn_at - now, 0.0) if self.state is ChildState.BACKOFF else -1.0
        return ChildInfo(self.role, self.state, self.pid, up, self.restarts, self.last_exit_code, self.last_error,
                         wait, self.crash_loop)

