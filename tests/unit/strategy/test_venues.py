"""OpenVenues: the per-venue flags the host refreshes from the gate's state blob, failing closed."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from kairos.gate.snapshot import GateStateReader, GateStateWriter
from kairos.records import Venue
from kairos.strategy.venues import REFRESH_NS, OpenVenues
from tests.unit.strategy.helpers import T0

B, X = Venue.BINANCE, Venue.OKX


class Blob:
    """The gate's state blob as a test sets it; counts reads."""

    def __init__(self, blob: dict[str, Any] | None = None) -> None:
        self.blob, self.reads, self.closed = blob, 0, False

    def read(self) -> dict[str, Any] | None:
        self.reads += 1
        return None if self.blob is None else {"age_s": 0.01, **self.blob}

    def close(self) -> None:
        self.closed = True


def test_flags_follow_venues_reconciled_and_reads_only_every_refresh_interval() -> None:
    gate = Blob({"venues_reconciled": ["binance"]})
    venues = OpenVenues(gate)
    assert not any(venues.flags), "closed until the blob is read"
    venues.refresh(T0)
    assert (venues.flags[B], venues.flags[X]) == (True, False)
    gate.blob = {"venues_reconciled": ["binance", "okx"]}
    venues.refresh(T0 + REFRESH_NS - 1)
    assert gate.reads == 1 and not venues.flags[X], "not read again before the refresh interval"
    venues.refresh(T0 + REFRESH_NS)
    assert gate.reads == 2 and venues.flags[B] and venues.flags[X]
    gate.blob = {"venues_reconciled": ["okx"]}
    venues.refresh(T0 + 2 * REFRESH_NS)
    assert (venues.flags[B], venues.flags[X]) == (False, True), "a venue the gate closes again closes here"
    venues.close()
    assert gate.closed


@pytest.mark.parametrize("blob", [None, {"venues_reconciled": ["binance", "okx"], "age_s": 10.0}],
                         ids=["no blob", "stale blob"])
def test_no_or_stale_blob_closes_every_venue(blob: dict[str, Any] | None) -> None:
    gate = Blob({"venues_reconciled": ["binance", "okx"]})
    venues = OpenVenues(gate)
    venues.refresh(T0)
    assert venues.flags[B] and venues.flags[X]
    gate.blob = blob
    venues.refresh(T0 + REFRESH_NS)
    assert not any(venues.flags)


@pytest.mark.parametrize("bad", [None, "binance", ["binance", "nasdaq"], [1], {"binance": True}])
def test_a_blob_of_the_wrong_shape_closes_every_venue_logged_once(bad: object,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    gate = Blob({"venues_reconciled": ["binance", "okx"]})
    venues = OpenVenues(gate)
    venues.refresh(T0)
    gate.blob = {"venues_reconciled": bad}
    with caplog.at_level(logging.ERROR, "kairos.strategy.venues"):
        for i in range(1, 6):
            venues.refresh(T0 + i * REFRESH_NS)
    assert not any(venues.flags)
    assert [r.levelno for r in caplog.records] == [logging.ERROR] and "venues_reconciled" in caplog.text
    gate.blob = {"venues_reconciled": ["okx"]}
    venues.refresh(T0 + 6 * REFRESH_NS)
    assert venues.flags[X] and not venues.flags[B]


def test_reads_the_real_gate_state_segment(shm_prefix: str) -> None:
    writer, venues = GateStateWriter(shm_prefix), OpenVenues(GateStateReader(shm_prefix))
    try:
        venues.refresh(T0)
        assert not any(venues.flags), "no blob written yet"
        writer.write({"version": 1, "reconciled": False, "venues_reconciled": ["okx"]})
        venues.refresh(T0 + REFRESH_NS)
        assert (venues.flags[B], venues.flags[X]) == (False, True)
    finally:
        venues.close()
        writer.close()
        GateStateReader.unlink(shm_prefix)
