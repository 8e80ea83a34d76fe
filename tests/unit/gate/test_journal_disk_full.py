"""The gate journal on a real full disk (a 256 KiB tmpfs): trading halts with reason DISK_FULL, the order
that could not be journaled is rejected and never sent, the gate stays up, a resume is refused while
the disk is full and accepted once there is space; the journal stays clean for the next start."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from kairos.journal import AppendLog
from kairos.records import Action, ExecKind, RejectReason, TradingState
from tests.service.tmpfs import small_disk

from .conftest import Harness, intent
from .test_desk import has

__all__ = ["small_disk"]
STATE = ExecKind.STATE


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk`` (bounded: the disk is small)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for _ in range(1024):
            try:
                os.write(fd, bytes(4096))
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                return filler
    finally:
        os.close(fd)
    raise AssertionError(f"{disk} never filled up")


def exhaust(journal: AppendLog) -> None:
    """Use up the slack in the journal's last page too (a full tmpfs still writes into allocated
    pages): padding lines, which replay ignores, until a write fails (and is cut off again)."""
    for _ in range(200):
        try:
            journal.append({"t": "pad", "x": "." * 40})
        except OSError:
            return
    raise AssertionError("the journal never ran out of space")


def set_state(h: Harness, state: TradingState) -> None:
    h.send(intent("", action=Action.SET_STATE, flags=state), ring="manual")


def test_a_full_journal_disk_halts_disk_full_and_the_operator_resumes(
        make_harness: Callable[..., Harness], small_disk: Callable[[str, str], Path],
        caplog: pytest.LogCaptureFixture) -> None:
    disk = small_disk("journal", "256k")
    h = make_harness(risk__journal_dir=str(disk))
    gate = h.gate()
    h.mark(100.0, 101.0)
    h.send(intent("before", qty=0.1))
    h.run(gate, has(ExecKind.FILL, "before"))
    h.run(gate, cycles=5)                                       # its reports journaled

    filler = fill(disk)
    exhaust(gate.desk.blotter.journal)
    h.send(intent("nospace", qty=0.1))
    h.run(gate, has(ExecKind.REJECT, "nospace"))
    assert h.kinds("nospace") == [ExecKind.REJECT], "rejected, never sent"
    assert b"nospace" not in gate.desk.blotter.orders.all and not gate.state.open_orders
    [halt] = [e for e in h.seen if e["kind"] == STATE]
    assert halt["flags"] == TradingState.HALTED
    assert [e["reason"] for e in h.seen if e["client_order_id"] == b"nospace"] == [RejectReason.TRADING_HALTED]
    blob = h.blob(gate, lambda b: b["trading_state"] == "HALTED")
    assert blob["trading_reason"].startswith("DISK_FULL: the journal cannot be written")
    assert any("ACTIVE -> HALTED: DISK_FULL" in r.getMessage() for r in caplog.records), "the reason is logged"
    assert "No space left" in blob["trading_reason"] or "short journal write" in blob["trading_reason"]

    set_state(h, TradingState.ACTIVE)                           # the operator, too early
    h.run(gate, has(STATE, count=2))
    assert h.seen[-1]["kind"] == STATE and h.seen[-1]["flags"] == TradingState.HALTED, "the refusal is announced"
    blob = h.blob(gate, lambda b: b["trading_refused"] == 1)
    assert blob["trading_state"] == "HALTED" and blob["trading_reason"].startswith("DISK_FULL")

    filler.unlink()                                             # space again: the operator resumes
    set_state(h, TradingState.ACTIVE)
    h.run(gate, has(STATE, count=3))
    assert gate.state.trading == TradingState.ACTIVE and gate.desk.blotter.why == "manual SET_STATE"
    h.mark(100.0, 101.0)
    h.send(intent("after", qty=0.1))
    h.run(gate, has(ExecKind.FILL, "after"))

    journal = Path(h.settings.risk.journal_dir) / f"{h.prefix}.gate.jsonl"
    entries = [orjson.loads(line) for line in journal.read_bytes().splitlines()]  # no torn line left behind
    assert [e["c"] for e in entries if e["t"] == "A"] == ["before", "after"]
    [halted, active] = [(e["s"], e["why"]) for e in entries if e["t"] == "T"]  # the halt journaled once it could be
    assert halted[0] == TradingState.HALTED and halted[1].startswith("DISK_FULL") and active[0] == TradingState.ACTIVE
    again = h.gate()                                            # the next start replays it cleanly
    assert again.state.trading == TradingState.ACTIVE and b"after" in again.desk.blotter.orders.all


def test_a_halt_journaled_late_survives_a_restart(make_harness: Callable[..., Harness],
                                                  small_disk: Callable[[str, str], Path]) -> None:
    disk = small_disk("journal", "256k")
    h = make_harness(risk__journal_dir=str(disk))
    gate = h.gate()
    h.mark(100.0, 101.0)
    filler = fill(disk)
    exhaust(gate.desk.blotter.journal)
    h.send(intent("nospace", qty=0.1))
    h.run(gate, has(ExecKind.REJECT, "nospace"))
    assert gate.desk.blotter.pending is not None, "the halt could not be journaled yet"
    filler.unlink()                                             # space returns; nobody resumes
    h.run(gate, lambda _: gate.desk.blotter.pending is None, cycles=20)
    restarted = h.gate()
    assert restarted.state.trading == TradingState.HALTED and restarted.desk.blotter.why.startswith("DISK_FULL")
