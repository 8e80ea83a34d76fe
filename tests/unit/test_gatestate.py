"""The gate-state contract: a real blob round-trips; a wrong-shaped one is one clear error, logged once."""

from __future__ import annotations

import logging
from dataclasses import asdict

import pytest

from kairos.gate.snapshot import GateStateReader, GateStateWriter
from kairos.gatestate import Balance, GateState, GateStateError, Pnl, parse

GOOD = GateState(ts_ns=5, trading_state="ACTIVE", trading_state_id=0, venues_reconciled=["binance"],
                 balances=[Balance("binance", 1, "USDT", 900.0, 100.0)], pnl=Pnl(1.0, -2.0),
                 balance_pushes={"binance": {"applied": 3, "held": 1, "stale": 0, "foreign": 0, "bad": 0}})


def test_a_blob_round_trips_through_the_segment(shm_prefix: str) -> None:
    writer, reader = GateStateWriter(shm_prefix), GateStateReader(shm_prefix)
    try:
        assert reader.state() is None  # nothing published yet
        writer.write(GOOD)
        state = reader.state()
        assert state is not None and state.balances == GOOD.balances and state.pnl == GOOD.pnl
        assert state.venues_reconciled == ["binance"] and state.age_s >= 0.0
        assert state.balance_pushes == GOOD.balance_pushes
    finally:
        writer.close()
        reader.close()
        GateStateReader.unlink(shm_prefix)


@pytest.mark.parametrize(("change", "named"), [
    ({"pnl": {"realized_today": "lots", "unrealized": 0}}, "gate state.pnl.realized_today"),
    ({"balances": [{"venue": "okx"}]}, "gate state.balances[0]: missing"),
    ({"trading_refused": True}, "gate state.trading_refused"),
    ({"extra": 1}, "unknown ['extra']"),
    ({"version": 2}, "version 2"),
    ({"balance_pushes": {"binance": {"applied": "3"}}}, "gate state.balance_pushes.binance.applied"),
    ({"balance_pushes": [1]}, "gate state.balance_pushes: list"),
])
def test_a_wrong_shape_names_the_field(change: dict, named: str) -> None:
    with pytest.raises(GateStateError, match=named.replace("[", r"\[").replace("]", r"\]")):
        parse(asdict(GOOD) | change)


def test_a_blob_from_a_gate_before_a_field_was_added_still_parses() -> None:
    """Fields added within version 1 (``ADDED``) may be missing: an older gate's blob keeps its readers working."""
    older = asdict(GOOD)
    del older["balance_pushes"]
    state = parse(older)
    assert state.balance_pushes == {} and state.balances == GOOD.balances
    del older["executors"]                                      # not an added field: still required
    with pytest.raises(GateStateError, match="missing \\['executors'\\]"):
        parse(older)


def test_the_reader_logs_a_bad_blob_once_and_recovers(shm_prefix: str, caplog: pytest.LogCaptureFixture) -> None:
    writer, reader = GateStateWriter(shm_prefix), GateStateReader(shm_prefix)
    try:
        writer.write({"version": 1})  # type: ignore[arg-type]  # a buggy gate
        with caplog.at_level(logging.ERROR, logger="kairos.gate.snapshot"):
            assert [reader.state() for _ in range(3)] == [None, None, None]
        assert len(caplog.records) == 1 and "missing" in caplog.text and reader.bad == 3
        writer.write(GOOD)
        assert reader.state() is not None and reader.bad == 0
    finally:
        writer.close()
        reader.close()
        GateStateReader.unlink(shm_prefix)
