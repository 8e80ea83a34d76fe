"""Recorded sessions served by the simulator's replay mode over real sockets, read by the real feed."""

from __future__ import annotations

import dataclasses

import pytest

from kairos.config import FeedConfig
from kairos.feeds.binance import BinanceFeed
from kairos.feeds.okx import OkxFeed
from kairos.feeds.sync import State
from kairos.records import BookStatus, Venue
from tests.replay.conftest import (
    BINANCE_FILE,
    BINANCE_SYMBOLS,
    OKX_FILE,
    OKX_SYMBOLS,
    RecordedSnapshots,
    Replay,
    instruments,
    lines,
)
from tests.samples import require_samples
from tests.unit.feeds.conftest import pump, sim_settings

require_samples()

CASES = [(Venue.BINANCE, BINANCE_FILE, BINANCE_SYMBOLS, BinanceFeed), (Venue.OKX, OKX_FILE, OKX_SYMBOLS, OkxFeed)]


def _expected(path, symbols, adapter_cls) -> Replay:
    replay = Replay(adapter_cls(symbols, ("bbo", "trades", "depth")), RecordedSnapshots(lines(path)), FeedConfig())
    for row in lines(path):
        if row.get("src") == "ws" or row.get("dir") == "recv":
            replay.frame(str(row["raw"]).encode())
    return replay


@pytest.mark.parametrize(("venue", "path", "symbols", "adapter_cls"), CASES)
def test_replayed_session_rebuilds_the_same_books(make_sim, make_agent, venue, path, symbols, adapter_cls) -> None:
    expected = _expected(path, symbols, adapter_cls)
    base = sim_settings({"watchdog_ms": 60_000}, replay_file=str(path), replay_speed=0.0)
    empty = {"binance": {}, "okx": {}}
    settings = dataclasses.replace(base, instruments=instruments(**{**empty, venue.name.lower(): symbols}))
    server = make_sim(settings)
    agent, out = make_agent(settings, server, venue)
    frames = sum(1 for row in lines(path) if row.get("src") == "ws" or row.get("dir") == "recv")
    assert pump(agent, lambda: agent.stats.frames == frames and all(t.state == State.LIVE
                                                                    for t in agent.sync.tracks.values()), timeout_s=20)
    for instrument, track in agent.sync.tracks.items():
        assert track.book.levels(True, 400) == expected.sync.tracks[instrument].book.levels(True, 400)
        assert track.book.levels(False, 400) == expected.sync.tracks[instrument].book.levels(False, 400)
        assert out.statuses(instrument) == [BookStatus.SYNCED]
    assert agent.sync.counts["gaps"] == 0 and agent.tally.counts.get("malformed_json", 0) == 0
    assert server.hubs[venue].stats["connections"] == 1
