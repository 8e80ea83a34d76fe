"""The supervisor loop (gunicorn Arbiter): create the shared memory, spawn the children, reap and
restart them, kill hung ones, serve gRPC, and shut everything down in dependency order.

Signal handlers only queue the signal and write a byte to a self-pipe; the loop does the work.
A second SIGTERM/SIGINT during shutdown skips the grace period (SIGKILL to what is left). SIGHUP
retries FATAL children. A crash loop (or FATAL) of a fail-closed role (gate, strategy) queues
HALTED for the gate once per episode; only the operator resumes trading. Each child is spawned
with only the secrets its role uses (kairos/supervisor/secrets.py), and its exit note
(kairos/exits.py) is cleared before the spawn and read after the death. In --watch mode (systemd
owns the processes) nothing is spawned: the loop heartbeats, samples the board, serves gRPC, kills
hung processes (kairos/supervisor/hung.py) and counts the restarts systemd makes
(kairos/supervisor/restarts.py) under the same crash-loop policy, halting trading the same way.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import signal
import time
from collections.abc import Mapping

from kairos import exits
from kairos.config import Settings
from kairos.errors import EXIT_OK, RingError, SupervisorError
from kairos.gate.snapshot import GateStateReader
from kairos.records import ChildState, ProcState
from kairos.ring import sweep_stale
from kairos.status import BoardRow, Slot, StatusBoard
from kairos.supervisor import hung, spawn
from kairos.supervisor.api import EngineApi
from kairos.supervisor.child import Child, ChildInfo, Do, RestartPolicy, describe_exit
from kairos.supervisor.restarts import RestartWatch
from kairos.supervisor.rings import RingSet, budget_specs, ring_specs
from kairos.supervisor.secrets import child_env
from kairos.supervisor.specs import Plan
from kairos.supervisor.systemd import Notifier, scrub

log = logging.getLogger(__name__)
ROLE = "supervisor"
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)
SIG_NAMES = {sig: sig.name[3:].lower() for sig in SIGNALS}
TICK_S = 0.1
SAMPLE_S = 1.0


class Arbiter:
    def __init__(self, settings: Settings, plan: Plan, watch: bool, env: Mapping[str, str]) -> None:
        self.settings, self.cfg, self.prefix, self.watch = settings, settings.supervisor, settings.shm_prefix, watch
        policy = RestartPolicy.from_config(self.cfg)
        self.children = [] if watch else [Child(spec, policy) for spec in plan.specs]
        self.by_role = {c.role: c for c in self.children}
        self.phases = plan.stop_phases
        self.halting = frozenset(s.role for s in plan.specs if s.halts_trading)
        self.fail_closed_roles = frozenset(s.role for s in plan.specs if s.fail_closed)
        full = {**scrub(env), "KAIROS__SHM_PREFIX": self.prefix}
        self.envs = {c.role: child_env(full, c.spec.secrets) for c in self.children}
        self.notes = {c.role: exits.note_path(settings, c.role) for c in self.children}
        self.rings = RingSet(ring_specs(settings), self.prefix, budget_specs(settings))
        self.board: StatusBoard | None = None
        self.slot: Slot | None = None
        self.api: EngineApi | None = None
        self.view: tuple[ChildInfo, ...] = ()
        self._sig_queue: list[int] = []
        self._pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._stopping = self._hurry = False
        self._halted_for: set[str] = set()  # fail-closed roles whose current crash loop has halted trading
        self._next_sample = 0.0
        self.notifier = Notifier()  # READY=1, WATCHDOG=1 from tick(), STOPPING=1 to a Type=notify unit
        self.terminator = hung.Terminator(self.cfg.heartbeat_timeout_s, self.cfg.graceful_secs) if watch else None
        self.restarts = RestartWatch(self.cfg.start_retries, self.cfg.stable_secs) if watch else None
        self.last_words = exits.watched(settings)  # --watch: a unit's exit note as it stands

    def run(self) -> int:
        """Until SIGTERM/SIGINT; always tears down what it built."""
        try:
            self.start()
            while not self._stopping:
                self.tick(TICK_S)
        finally:
            self.stop()
        return EXIT_OK

    def start(self) -> None:
        for sig in SIGNALS:
            signal.signal(sig, self.signal)
        self.open_shared()
        self.slot = self.board.claim(ROLE)
        self.api = EngineApi(self.settings, self.rings, self.board, "watch" if self.watch else "spawn",
                             lambda: self.view, self.halting, self.restarts)
        self.api.start()
        self.slot.set_state(ProcState.RUNNING)
        for child in self.children:
            child.start()
        self.notifier.send(f"READY=1\nSTATUS=supervisor up ({'watch' if self.watch else 'spawn'} mode)")
        log.info("supervisor up (%s mode, prefix %s): %s", "watch" if self.watch else "spawn", self.prefix,
                 ", ".join(c.role for c in self.children) or "no children")

    def open_shared(self) -> None:
        """Fresh rings and board, unless (watch mode) live processes already use them: then adopt."""
        live = self.live_pids()
        if live and not self.watch:
            live = self.await_exit(live)
            if live:
                raise SupervisorError(f"processes of a previous run still use prefix {self.prefix!r}: pids {live}")
        if live:
            log.info("adopting the rings of running processes %s", live)
            self.rings.adopt()
            self.board = StatusBoard.attach(self.prefix)
        else:
            self.rings.create()
            self.board = StatusBoard.create(self.prefix)

    def await_exit(self, live: list[int]) -> list[int]:
        """Orphans of a crashed supervisor got their parent-death SIGTERM: give them graceful_secs to go."""
        log.warning("waiting up to %.0fs for processes of a previous run to exit: %s", self.cfg.graceful_secs, live)
        deadline = time.monotonic() + self.cfg.graceful_secs
        while live and time.monotonic() < deadline:
            time.sleep(0.1)
            live = self.live_pids()
        return live

    def live_pids(self) -> list[int]:
        """Pids on the existing status board (other than ours) that are still running."""
        try:
            board = StatusBoard.attach(self.prefix)
        except RingError:  # absent, or another layout: nothing to adopt
            return []
        try:
            return [r.pid for r in board.snapshot() if r.alive and r.pid != os.getpid()]
        finally:
            board.close()

    def signal(self, sig: int, _frame: object) -> None:
        """Signal handler: NO LOGGING, just queue the signal and wake the loop (gunicorn)."""
        self._sig_queue.append(sig)
        try:
            os.write(self._pipe[1], b".")
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EINTR):
                raise

    def wait_for_signals(self, timeout: float) -> list[int]:
        try:
            readable, _, _ = select.select([self._pipe[0]], [], [], timeout)
        except InterruptedError:
            readable = [self._pipe[0]]
        if readable:
            try:
                while os.read(self._pipe[0], 64):
                    pass
            except BlockingIOError:
                pass
        signals, self._sig_queue = self._sig_queue, []
        return signals

    def tick(self, timeout: float) -> None:
        """One loop turn: signals, reap, hung children, transitions, our own heartbeat."""
        for sig in self.wait_for_signals(timeout):
            getattr(self, f"handle_{SIG_NAMES[sig]}")()
        self.reap_children()
        now = time.monotonic()
        if now >= self._next_sample:
            self._next_sample = now + SAMPLE_S
            rows = self.api.status.sample()
            self.murder_stale(rows)
            self.watch_restarts(rows)
            self.api.check()
            self.publish_budgets()
        self.manage_children()
        self.slot.heartbeat()
        self.notifier.watchdog(time.monotonic_ns())

    def publish_budgets(self) -> None:
        """Each venue's shared rate budget as ``rl.<venue>.*`` counters on our row: a ban shows in status.
        Five per venue, so six venues fit the row's 32 counters."""
        for venue, budget in self.rings.budgets.items():
            stats = budget.stats()
            for key in ("ban_s", "ban_status", "bans", "deferred", "refused"):
                self.slot.counter(f"rl.{venue}.{key}").set(stats[key])

    def handle_term(self) -> None:
        self._hurry = self._stopping
        self._stopping = True

    handle_int = handle_term

    def handle_hup(self) -> None:
        """Operator retry: FATAL children go back to STOPPED and are spawned again."""
        for child in self.children:
            if child.state is ChildState.FATAL:
                log.warning("SIGHUP: retrying FATAL %s", child.role)
                child.revive()

    def handle_chld(self) -> None:
        """Nothing to do here: reap_children runs every turn."""

    def reap_children(self) -> None:
        by_pid = {c.pid: c for c in self.children if c.alive}
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            spawn.signal_group(pid, signal.SIGKILL)  # whatever the child left in its group
            child = by_pid.get(pid)
            if child is not None:
                before, code = child.state, os.waitstatus_to_exitcode(status)
                child.exited(code, time.monotonic(), exits.take(self.notes[child.role]))
                log.log(logging.INFO if child.state is ChildState.STOPPED else logging.WARNING,
                        "%s (pid %d) %s: %s -> %s", child.role, pid, describe_exit(code), before.name, child.state.name)
                if child.state is ChildState.BACKOFF:
                    wait = child.info(time.monotonic()).next_attempt_s
                    log.warning("%s: BACKOFF, next attempt in %.1fs (%s)", child.role, wait, child.last_error)

    def murder_stale(self, rows: list[BoardRow]) -> None:
        """A child in its duty loop whose heartbeat is older than heartbeat_timeout_s is hung: SIGTERM, later
        SIGKILL. Start-up (self-reported STARTING: reconciliation, snapshots) is not judged by heartbeats."""
        now_ns, now = time.monotonic_ns(), time.monotonic()
        if self.terminator is not None:
            self.terminator.check(rows, now_ns, now)  # --watch: the same kill for processes systemd runs
            return
        for row, age in hung.stale_rows(rows, now_ns, self.cfg.heartbeat_timeout_s):
            child = self.by_role.get(row.role)
            if child is not None and row.pid == child.pid:
                log.error("%s (pid %d): heartbeat %.1fs old, terminating", child.role, child.pid, age)
                self.act(child, child.stale(age, now))

    def manage_children(self) -> None:
        """Time-driven transitions (the only place that spawns), then publish a view for the API."""
        now = time.monotonic()
        for child in self.children:
            before = child.state
            self.act(child, child.transition(now))
            if child.state is not before:
                log.info("%s: %s -> %s", child.role, before.name, child.state.name)
            if child.spec.fail_closed:
                self.fail_closed(child.role, broken(child), child.last_error)
        self.view = tuple(c.info(now) for c in self.children)

    def act(self, child: Child, action: Do | None) -> None:
        if action is Do.SPAWN:
            self.spawn_child(child)
        elif action is not None:
            spawn.signal_group(child.pid, signal.SIGTERM if action is Do.TERM else signal.SIGKILL)

    def spawn_child(self, child: Child) -> None:
        exits.clear(self.notes[child.role])
        try:
            pid = spawn.spawn(child.spec.argv, self.envs[child.role])
        except OSError as exc:
            child.spawn_failed(str(exc), time.monotonic())
            log.error("%s: spawn failed: %s", child.role, exc)
            return
        child.spawned(pid)
        log.info("%s: spawned pid %d: %s", child.role, pid, " ".join(child.spec.argv))

    def watch_restarts(self, rows: list[BoardRow]) -> None:
        """--watch: judge the restarts systemd makes like our own; a fail-closed role's crash loop halts trading."""
        if self.restarts is None:
            return
        self.restarts.observe(rows)
        for role in self.fail_closed_roles:
            looping = self.restarts.crash_loop(role)
            why = f"crash loop ({self.restarts.runs[role].retries} restarts without a stable run)" if looping else ""
            self.fail_closed(role, why, (self.last_words(role) or "no exit note") if looping else "")

    def fail_closed(self, role: str, why: str, detail: str) -> None:
        """Halt trading once when a gate or strategy enters a crash loop or FATAL (``why`` says which); a stable
        run ends the episode, but trading stays halted until the operator resumes it."""
        if not why:
            self._halted_for.discard(role)
        elif role not in self._halted_for:
            self._halted_for.add(role)
            log.critical("%s %s (%s): trading HALTED; it stays halted until the operator resumes it", role, why, detail)
            self.api.halt(f"{role} {why}")

    def stop(self) -> None:
        """Ordered shutdown (feeds, strategy, gate, persister, sim); unlink shm only if nothing is left."""
        self._stopping = True
        self.notifier.send("STOPPING=1\nSTATUS=supervisor stopping")
        if self.api is not None:
            self.api.server.set_serving(False)
            for phase in self.phases:
                self.stop_phase([self.by_role[r] for r in phase if r in self.by_role])
            self.api.stop()
            self.api = None
        self.reap_children()
        clean = not any(c.alive for c in self.children) and not self.live_pids()
        self.release(clean)
        log.info("supervisor stopped (%s)", "clean: shared memory removed" if clean else "shared memory kept")

    def stop_phase(self, children: list[Child]) -> None:
        alive = [c for c in children if c.alive]
        if self.cfg.cancel_on_shutdown and any(c.spec.halts_trading for c in alive):
            self.api.cancel_all(self.cfg.graceful_secs)
        for child in children:
            self.act(child, child.stop(time.monotonic()))
        deadline = time.monotonic() + self.cfg.graceful_secs + 5.0
        while any(c.alive for c in children) and time.monotonic() < deadline:
            for sig in self.wait_for_signals(0.05):
                self._hurry |= sig in (signal.SIGTERM, signal.SIGINT)
            self.reap_children()
            for child in children:
                self.act(child, Do.KILL if self._hurry and child.alive else child.transition(time.monotonic()))
        for child in children:
            if child.alive:
                log.error("%s (pid %d) survived SIGKILL", child.role, child.pid)

    def release(self, clean: bool) -> None:
        if self.board is not None:
            if self.slot is not None:
                self.slot.set_state(ProcState.STOPPED)
                self.slot = None
            self.board.close()
            self.board = None
        self.rings.close()
        if clean:
            self.rings.unlink()
            StatusBoard.unlink(self.prefix)
            GateStateReader.unlink(self.prefix)
            sweep_stale(self.prefix)


def broken(child: Child) -> str:
    """Why a spawned child makes a fail-closed role halt trading ('' while it is fine)."""
    if child.state is ChildState.FATAL:
        return "FATAL"
    return f"crash loop ({child.retries} failures in a row)" if child.crash_loop else ""
