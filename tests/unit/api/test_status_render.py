"""`kairosctl status` text: the gate's safety counters are shown (a closed venue, invalid quotes)."""

from __future__ import annotations

from kairos.api.pb import pb
from kairos.cli import render


def gate(**counters: int) -> pb.ProcessStatus:
    proc = pb.ProcessStatus(role="gate", state_name="RUNNING", self_state="DEGRADED")
    proc.counters.update(counters)
    return proc


def test_status_names_a_closed_venue_and_counts_bad_quotes() -> None:
    text = render.status(pb.SystemStatus(processes=[gate(**{"closed.okx": 1, "closed.binance": 0,
                                                            "bad_quotes": 7})]))
    assert "gate: okx not reconciled: its orders are rejected NOT_RECONCILED" in text
    assert "binance not reconciled" not in text
    assert "gate: 7 invalid quotes not used as marks (bad_quotes)" in text
    assert "RUNNING/DEGRADED" in text


def test_a_healthy_gate_adds_no_line() -> None:
    text = render.status(pb.SystemStatus(processes=[gate(**{"closed.okx": 0, "bad_quotes": 0})]))
    assert "gate:" not in text


def test_balance_pushes_show_once_there_are_any_and_bad_ones_are_flagged() -> None:
    text = render.status(pb.SystemStatus(processes=[gate(**{"push.applied": 12, "push.held": 2, "push.stale": 1,
                                                            "push.bad": 1})]))
    assert "gate: venue balance pushes applied 12, held 2, stale 1, foreign 0, bad 1 (bad: not a finite" in text
    quiet = render.status(pb.SystemStatus(processes=[gate(**{"push.applied": 0, "push.bad": 0})]))
    assert "balance pushes" not in quiet
