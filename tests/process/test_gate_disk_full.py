"""The real `python -m procs.gate` with risk.journal_dir on a 256 KiB tmpfs that fills up: the gate stays
up (no crash loop), halts with reason DISK_FULL (JSON log, state blob), rejects the order it could not
journal without sending it, refuses a resume while the disk is full and accepts one once there is space."""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson

from kairos.gate.snapshot import GateStateReader
from kairos.records import Action, ExecKind, ProcState, RejectReason, TradingState
from tests.process.test_gate import GateProcess, gate, intent, of, sim_env
from tests.service.tmpfs import small_disk

__all__ = ["gate", "sim_env", "small_disk"]


def fill(paths: list[tuple[Path, int]]) -> None:
    """Every free byte: a filler file first, then the slack of the journal's last page, with spaces
    (allowed before the next JSON entry, so the journal stays valid)."""
    for path, flags in paths:
        fd = os.open(path, flags, 0o644)
        try:
            for _ in range(1024):
                os.write(fd, b" " * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)


def states(seen: list[np.void]) -> list[int]:
    return [int(e["flags"]) for e in seen if e["kind"] == ExecKind.STATE]


def set_state(g: GateProcess, state: TradingState) -> None:
    g.pub["manual"].publish(intent("", action=Action.SET_STATE, flags=state))


def test_a_full_journal_disk_halts_the_gate_disk_full_and_it_stays_up(
        gate: Callable[..., GateProcess], small_disk: Callable[[str, str], Path]) -> None:
    disk = small_disk("journal", "256k")
    g = gate(risk__journal_dir=str(disk))
    g.mark()
    g.start()
    g.pub["intents"].publish(intent("before"))
    g.wait(of("before", ExecKind.FILL), "the first fill")
    journal = disk / f"{g.prefix}.gate.jsonl"
    g.wait(lambda _: journal.read_bytes().count(b'"t":"E"') >= 2, "its reports journaled")

    fill([(disk / "filler", os.O_WRONLY | os.O_CREAT), (journal, os.O_WRONLY | os.O_APPEND)])
    g.pub["intents"].publish(intent("nospace"))
    g.wait(of("nospace", ExecKind.REJECT), "the order that could not be journaled rejected")
    assert [e["reason"] for e in g.seen if e["client_order_id"] == b"nospace"] == [RejectReason.TRADING_HALTED]
    ledger = (disk / f"{g.prefix}.paper.binance.jsonl").read_bytes().splitlines()
    assert [e["c"] for e in map(orjson.loads, ledger) if e["t"] == "N"] == ["before"], "never sent"
    assert states(g.seen) == [TradingState.HALTED]
    reader = GateStateReader(g.prefix)
    try:
        g.wait(lambda _: (reader.read() or {}).get("trading_reason", "").startswith("DISK_FULL"), "the reason")
        set_state(g, TradingState.ACTIVE)                    # too early: refused, announced, counted
        g.wait(lambda s: len(states(s)) == 2, "the refusal announced")
        assert states(g.seen) == [TradingState.HALTED, TradingState.HALTED]
        g.wait(lambda _: (reader.read() or {}).get("trading_refused") == 1, "the refusal counted")
    finally:
        reader.close()
    assert g.proc is not None and g.proc.poll() is None, "no crash loop: the gate stays up to say why"
    row = next(r for r in g.board.snapshot() if r.role == "gate")
    assert row.pid == g.proc.pid and row.state == ProcState.RUNNING
    assert "DISK_FULL: the journal cannot be written" in (g.tmp / "log" / "gate.jsonl").read_text()

    (disk / "filler").unlink()                               # space again: the operator resumes
    set_state(g, TradingState.ACTIVE)
    g.wait(lambda s: states(s)[-1:] == [TradingState.ACTIVE], "trading ACTIVE again")
    g.mark()
    g.pub["intents"].publish(intent("after"))
    g.wait(of("after", ExecKind.FILL), "an order after the resume")
    assert g.kill(signal.SIGTERM) == 0
