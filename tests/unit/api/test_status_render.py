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
