"""Every edge of the child state machine, driven by an injected clock (supervisord test style)."""

from __future__ import annotations

import signal

import pytest

from kairos.errors import EXIT_BOOT_ERROR
from kairos.records import ChildState
from kairos.supervisor.child import Child, ChildSpec, Do, RestartPolicy, describe_exit

POLICY = RestartPolicy(start_secs=1.0, start_retries=3, backoff_initial_s=0.5, backoff_max_s=4.0,
                       graceful_secs=5.0, stable_secs=60.0)
S = ChildState


def running_child(now: float = 0.0) -> Child:
    child = Child(ChildSpec("strategy", ("python", "-m", "procs.strategy")), POLICY)
    child.start()
    assert child.transition(now) is Do.SPAWN
    child.spawned(100)
    child.transition(now + POLICY.start_secs)
    assert child.state is S.RUNNING
    return child


def test_stopped_stays_stopped_until_started() -> None:
    child = Child(ChildSpec("gate", ("x",)), POLICY)
    assert child.transition(0.0) is None
    assert child.state is S.STOPPED


def test_stopped_to_starting_spawns() -> None:
    child = Child(ChildSpec("gate", ("x",)), POLICY)
    child.start()
    assert child.transition(0.0) is Do.SPAWN
    assert child.state is S.STARTING


def test_starting_to_running_only_after_start_secs() -> None:
    child = Child(ChildSpec("gate", ("x",)), POLICY)
    child.start()
    child.transition(10.0)
    child.spawned(42)
    assert child.transition(10.5) is None and child.state is S.STARTING
    assert child.transition(11.0) is None and child.state is S.RUNNING
    assert child.info(12.5).uptime_s == pytest.approx(2.5)


def test_starting_to_backoff_when_it_dies_early() -> None:
    child = Child(ChildSpec("gate", ("x",)), POLICY)
    child.start()
    child.transition(0.0)
    child.spawned(42)
    child.exited(1, 0.2)
    assert child.state is S.BACKOFF and child.retries == 1 and child.pid == 0
    assert child.last_error == "exited with code 1"


def test_backoff_to_starting_after_delay_with_exponential_growth() -> None:
    child = Child(ChildSpec("gate", ("x",)), POLICY)
    child.start()
    now, delays = 0.0, []
    assert child.transition(now) is Do.SPAWN
    for _ in range(3):
        child.spawned(42)
        child.exited(1, now)
        assert child.state is S.BACKOFF
        spawn_at = now
        while child.transition(spawn_at) is None and spawn_at < 100.0:
            spawn_at += 0.125
        delays.append(spawn_at - now)
        now = spawn_at
    assert delays == [0.5, 1.0, 2.0]


def test_delay_is_capped() -> None:
    assert [POLICY.delay(n) for n in (1, 2, 3, 4, 5, 9)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_a_crash_loop_never_gives_up_and_is_flagged() -> None:
    child = Child(ChildSpec("gate", ("x",)), POLICY)
    child.start()
    now, spawns, loops = 0.0, 0, []
    while spawns < 20:
        if child.transition(now) is Do.SPAWN:
            spawns += 1
            child.spawned(1000 + spawns)
            child.exited(1, now + 0.1)
            loops.append(child.crash_loop)
        now += 0.5
    assert child.state is S.BACKOFF and child.retries == 20
    assert loops == [False] * POLICY.start_retries + [True] * (20 - POLICY.start_retries)
    assert child.last_error == "exited with code 1"
    info = child.info(now)
    assert info.crash_loop and 0.0 <= info.next_attempt_s <= POLICY.backoff_max_s


def test_backoff_shows_the_time_to_the_next_attempt() -> None:
    child = running_child()
    child.exited(1, 10.0)
    assert child.info(10.0).next_attempt_s == pytest.approx(0.5)
    assert child.info(10.2).next_attempt_s == pytest.approx(0.3)
    child.transition(10.5)
    assert child.state is S.STARTING and child.info(10.5).next_attempt_s == -1.0


def test_the_exit_note_is_kept_with_the_exit() -> None:
    child = running_child()
    child.exited(1, 5.0, "ValueError: boom")
    assert child.last_error == "exited with code 1: ValueError: boom"


def test_spawn_failure_goes_to_backoff() -> None:
    child = Child(ChildSpec("gate", ("x",)), POLICY)
    child.start()
    child.transition(0.0)
    child.spawn_failed("No such file or directory", 0.0)
    assert child.state is S.BACKOFF and child.last_error.startswith("spawn failed")


@pytest.mark.parametrize("state_when_dying", [S.STARTING, S.RUNNING])
def test_boot_error_is_fatal_at_once(state_when_dying: ChildState) -> None:
    child = running_child() if state_when_dying is S.RUNNING else Child(ChildSpec("gate", ("x",)), POLICY)
    if state_when_dying is S.STARTING:
        child.start()
        child.transition(0.0)
        child.spawned(7)
    child.exited(EXIT_BOOT_ERROR, 2.0)
    assert child.state is S.FATAL and child.retries == 0
    assert "boot error" in child.last_error
    assert child.transition(100.0) is None


def test_running_to_exited_then_restart_after_delay() -> None:
    child = running_child()
    child.exited(-signal.SIGKILL, 5.0)
    assert child.state is S.BACKOFF and child.last_exit_code == -9
    assert child.last_error == "killed by SIGKILL"
    assert child.transition(5.4) is None
    assert child.transition(5.5) is Do.SPAWN and child.state is S.STARTING
    child.spawned(101)
    assert child.restarts == 1


def test_crash_loop_after_running_keeps_restarting_at_the_capped_delay() -> None:
    child = running_child()
    now = 1.0
    for pid in range(200, 210):
        now += 2.0  # each run reaches RUNNING, then crashes long before stable_secs
        child.exited(1, now)
        now += POLICY.delay(child.retries)
        assert child.transition(now) is Do.SPAWN
        child.spawned(pid)
        child.transition(now + POLICY.start_secs)
        assert child.state is S.RUNNING
    assert child.retries == 10 and child.crash_loop and POLICY.delay(child.retries) == POLICY.backoff_max_s


def test_a_stable_run_resets_the_crash_counter() -> None:
    child = running_child()
    child.retries = 7
    assert child.crash_loop
    child.exited(1, POLICY.stable_secs + 1.0)
    assert child.state is S.BACKOFF and child.retries == 1 and not child.crash_loop


def test_a_stable_run_ends_a_crash_loop_while_still_running() -> None:
    child = running_child()
    child.retries = 7
    child.transition(POLICY.stable_secs - 1.0)
    assert child.crash_loop
    child.transition(POLICY.stable_secs)
    assert child.state is S.RUNNING and not child.crash_loop


def test_running_to_stopping_to_stopped_on_stop() -> None:
    child = running_child()
    assert child.stop(10.0) is Do.TERM and child.state is S.STOPPING
    child.exited(0, 11.0)
    assert child.state is S.STOPPED and child.transition(100.0) is None


def test_stopping_escalates_to_kill_after_graceful_secs_once() -> None:
    child = running_child()
    child.stop(10.0)
    assert child.transition(14.9) is None
    assert child.transition(15.0) is Do.KILL and child.state is S.STOPPING
    assert child.transition(16.0) is None
    child.exited(-signal.SIGKILL, 16.0)
    assert child.state is S.STOPPED


def test_backoff_to_stopped_on_stop() -> None:
    child = Child(ChildSpec("gate", ("x",)), POLICY)
    child.start()
    child.transition(0.0)
    child.spawned(5)
    child.exited(1, 0.2)
    assert child.state is S.BACKOFF
    assert child.stop(0.3) is None and child.state is S.STOPPED
    assert child.transition(1000.0) is None


def test_crashed_to_stopped_on_stop() -> None:
    child = running_child()
    child.exited(1, 5.0)
    assert child.state is S.BACKOFF
    assert child.stop(5.1) is None and child.state is S.STOPPED
    assert child.transition(1000.0) is None


def test_fatal_stays_fatal_on_stop() -> None:
    child = running_child()
    child.exited(EXIT_BOOT_ERROR, 3.0)
    assert child.stop(4.0) is None and child.state is S.FATAL


def test_stale_heartbeat_terminates_then_restarts() -> None:
    child = running_child()
    assert child.stale(12.0, 20.0) is Do.TERM and child.state is S.STOPPING
    assert child.transition(25.0) is Do.KILL
    child.exited(-signal.SIGKILL, 25.1)
    assert child.state is S.BACKOFF and child.retries == 1
    assert "heartbeat stale for 12.0s" in child.last_error
    assert child.transition(25.6) is Do.SPAWN


def test_stale_is_ignored_unless_running() -> None:
    child = Child(ChildSpec("gate", ("x",)), POLICY)
    child.start()
    child.transition(0.0)
    child.spawned(5)
    assert child.stale(30.0, 0.5) is None and child.state is S.STARTING


def test_shutdown_during_stale_kill_does_not_restart() -> None:
    child = running_child()
    child.stale(12.0, 20.0)
    assert child.stop(20.5) is None
    child.exited(-signal.SIGTERM, 21.0)
    assert child.state is S.STOPPED


def test_describe_exit() -> None:
    assert describe_exit(-15) == "killed by SIGTERM"
    assert describe_exit(2) == "exited with code 2"
