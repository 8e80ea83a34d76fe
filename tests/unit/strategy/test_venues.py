"""OpenVenues: the per-venue flags the host refreshes from the gate's typed state, failing closed."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from kairos.gate.snapshot import GateStateReader, GateStateWriter
from kairos.gatestate import GateState
from kairos.records import Venue
from kairos.strategy.venues import REFRESH_NS, OpenVenues
from tests.unit.strategy.helpers import T0, gate_state

B, X = Venue.BINANCE, Venue.OKX


class Blob:
    """The gate's state as a test sets it (venue names, or a whole state); counts reads."""

    def __init__(self, venues: list[str] | None = None) -> None:
        self.blob: list[str] | GateState | None = venues
        self.reads, self.closed, self.bad = 0, False, 0

    def state(self) -> GateState | None:
        self.reads += 1
        return gate_state(venues=self.blob) if isinstance(self.blob, list) else self.blob

    def close(self) -> None:
        self.closed = True


def test_flags_follow_venues_reconciled_and_reads_only_every_refresh_interval() -> None:
    gate = Blob(["binance"])
    venues = OpenVenues(gate)
    assert not any(venues.flags), "closed until the blob is read"
    venues.refresh(T0)
    assert (venues.flags[B], venues.flags[X]) == (True, False)
    gate.blob = ["binance", "okx"]
    venues.refresh(T0 + REFRESH_NS - 1)
    assert gate.reads == 1 and not venues.flags[X], "not read again before the refresh interval"
    venues.refresh(T0 + REFRESH_NS)
    assert gate.reads == 2 and venues.flags[B] and venues.flags[X]
    gate.blob = ["okx"]
    venues.refresh(T0 + 2 * REFRESH_NS)
    assert (venues.flags[B], venues.flags[X]) == (False, True), "a venue the gate closes again closes here"
    venues.close()
    assert gate.closed


@pytest.mark.parametrize("blob", [None, gate_state(venues=["binance", "okx"], age_s=10.0)],
                         ids=["no blob", "stale blob"])
def test_no_or_stale_blob_closes_every_venue(blob: GateState | None) -> None:
    gate = Blob(["binance", "okx"])
    venues = OpenVenues(gate)
    venues.refresh(T0)
    assert venues.flags[B] and venues.flags[X]
    gate.blob = blob
    venues.refresh(T0 + REFRESH_NS)
    assert not any(venues.flags)


@pytest.mark.parametrize("bad", [["binance", "nasdaq"], ["bybit2"]])
def test_a_venue_this_engine_does_not_know_closes_every_venue_logged_once(bad: list[str],
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    gate = Blob(["binance", "okx"])
    venues = OpenVenues(gate)
    venues.refresh(T0)
    gate.blob = bad
    with caplog.at_level(logging.ERROR, "kairos.strategy.venues"):
        for i in range(1, 6):
            venues.refresh(T0 + i * REFRESH_NS)
    assert not any(venues.flags) and venues.bad == 5
    assert [r.levelno for r in caplog.records] == [logging.ERROR] and "venues_reconciled" in caplog.text
    gate.blob = ["okx"]
    venues.refresh(T0 + 6 * REFRESH_NS)
    assert venues.flags[X] and not venues.flags[B]


@pytest.mark.parametrize("bad", [None, "binance", [1], {"binance": True}])
def test_a_blob_the_contract_refuses_closes_every_venue_counted(bad: object, shm_prefix: str,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """Through the real segment: the reader's typed parse refuses it; OpenVenues counts it and fails closed."""
    writer, venues = GateStateWriter(shm_prefix), OpenVenues(GateStateReader(shm_prefix))
    good = gate_state(venues=["binance", "okx"])
    try:
        writer.write(good)
        venues.refresh(T0)
        assert venues.flags[B] and venues.flags[X]
        writer.write(dataclasses.asdict(good) | {"venues_reconciled": bad})  # type: ignore[arg-type]
        with caplog.at_level(logging.ERROR):
            for i in range(1, 4):
                venues.refresh(T0 + i * REFRESH_NS)
        assert not any(venues.flags) and venues.bad == 3
        assert caplog.text.count("venues_reconciled") == 1, "the reader names the field, once"
        writer.write(dataclasses.replace(good, venues_reconciled=["okx"]))
        venues.refresh(T0 + 4 * REFRESH_NS)
        assert venues.flags[X] and not venues.flags[B]
    finally:
        venues.close()
        writer.close()
        GateStateReader.unlink(shm_prefix)


def test_reads_the_real_gate_state_segment(shm_prefix: str) -> None:
    writer, venues = GateStateWriter(shm_prefix), OpenVenues(GateStateReader(shm_prefix))
    try:
        venues.refresh(T0)
        assert not any(venues.flags), "no blob written yet"
        writer.write(gate_state(reconciled=False, venues=["okx"]))
        venues.refresh(T0 + REFRESH_NS)
        assert (venues.flags[B], venues.flags[X]) == (False, True)
    finally:
        venues.close()
        writer.close()
        GateStateReader.unlink(shm_prefix)
