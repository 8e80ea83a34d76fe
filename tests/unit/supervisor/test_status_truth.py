"""The trading state is the gate's live word only while the gate is RUNNING (supervisor view) and in its
duty loop (its own row); otherwise GetSystemStatus says why it is unknown."""

from __future__ import annotations

import time

import pytest

from kairos.records import ChildState, ProcState
from kairos.status import BoardRow
from kairos.supervisor.child import ChildInfo
from kairos.supervisor.status import StatusView

S = ChildState


def info(state: ChildState, pid: int = 10) -> ChildInfo:
    return ChildInfo("gate", state, pid, 1.0, 0, None, "", -1.0, False)


def row(state: ProcState = ProcState.RUNNING, pid: int = 10, age_s: float = 0.1) -> BoardRow:
    return BoardRow("gate", pid, True, state, 0, time.monotonic_ns() - int(age_s * 1e9), {}, {})


def doubt(children: tuple[ChildInfo, ...], rows: dict, mode: str = "spawn") -> str:
    view = StatusView(mode, lambda: children, None, None, None, frozenset({"gate"}), heartbeat_timeout_s=5.0)
    return view.gate_doubt(rows, time.monotonic_ns())


@pytest.mark.parametrize("state", [S.STARTING, S.BACKOFF, S.STOPPING, S.FATAL, S.STOPPED])
def test_a_gate_the_supervisor_does_not_see_running_is_doubted(state: ChildState) -> None:
    assert doubt((info(state),), {"gate": row()}) == f"gate is {state.name}"


def test_a_gate_still_reconciling_has_not_published_its_live_state() -> None:
    assert doubt((info(S.RUNNING),), {"gate": row(ProcState.STARTING)}) == "gate is STARTING"


def test_a_row_of_an_earlier_gate_is_not_trusted() -> None:
    assert doubt((info(S.RUNNING, pid=11),), {"gate": row(pid=10)}) == "gate has not reported yet"
    assert doubt((info(S.RUNNING),), {}) == "gate has not reported yet"


def test_a_running_gate_in_its_duty_loop_is_trusted() -> None:
    assert doubt((info(S.RUNNING),), {"gate": row()}) == ""
    assert doubt((info(S.RUNNING),), {"gate": row(ProcState.DEGRADED)}) == ""


def test_watch_mode_judges_the_row_alone() -> None:
    assert doubt((), {"gate": row()}, "watch") == ""
    assert doubt((), {"gate": row(age_s=30.0)}, "watch") == "gate is UNKNOWN"
    assert doubt((), {}, "watch") == "gate has not reported yet"
