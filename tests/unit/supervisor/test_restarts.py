"""RestartWatch: restarts systemd made, judged from board rows by the spawn supervisor's crash-loop policy."""

from __future__ import annotations

from kairos.records import ProcState
from kairos.status import BoardRow
from kairos.supervisor.restarts import RestartWatch

S = 1_000_000_000


def row(pid: int, start_s: float, beat_s: float, alive: bool = True,
        state: ProcState = ProcState.RUNNING) -> BoardRow:
    return BoardRow("gate", pid, alive, state, int(start_s * S), int(beat_s * S), {}, {})


def test_more_than_start_retries_quick_restarts_is_a_crash_loop() -> None:
    watch = RestartWatch(start_retries=2, stable_secs=10)
    for pid in range(100, 103):
        watch.observe([row(pid, pid, pid + 0.5)])
        assert not watch.crash_loop("gate")
    watch.observe([row(103, 103, 103.5)])
    assert watch.crash_loop("gate") and watch.runs["gate"].restarts == 3 and watch.runs["gate"].retries == 3


def test_a_stable_run_ends_the_crash_loop_and_forgives_its_failures() -> None:
    watch = RestartWatch(start_retries=1, stable_secs=10)
    for pid in (1, 2, 3):
        watch.observe([row(pid, pid, pid + 0.5)])
    assert watch.crash_loop("gate")
    watch.observe([row(3, 3, 13.0)])  # the same run has heartbeat for stable_secs
    assert not watch.crash_loop("gate") and watch.runs["gate"].retries == 0
    watch.observe([row(4, 14, 14.5)])  # its death after a stable run starts a new count
    assert watch.runs["gate"].retries == 1 and watch.runs["gate"].restarts == 3


def test_a_clean_stop_is_a_restart_but_not_a_failure() -> None:
    watch = RestartWatch(start_retries=0, stable_secs=10)
    watch.observe([row(1, 1, 1.5)])
    watch.observe([row(1, 1, 1.6, alive=False, state=ProcState.STOPPED)])
    watch.observe([row(2, 2, 2.5)])
    assert watch.runs["gate"].restarts == 1 and watch.runs["gate"].retries == 0 and not watch.crash_loop("gate")
    watch.observe([row(3, 3, 3.5)])  # killed without a word: a failure
    assert watch.crash_loop("gate")


def test_a_role_seen_once_is_not_judged() -> None:
    watch = RestartWatch(start_retries=0, stable_secs=10)
    watch.observe([row(1, 1, 1.5, alive=False)])
    assert watch.runs["gate"].restarts == 0 and not watch.crash_loop("gate") and not watch.crash_loop("strategy")
