"""Feed test harness: a real simulator on ephemeral ports, a record collector, a bounded pump."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from decimal import Decimal

import numpy as np
import pytest

from kairos import config
from kairos.config import FeedConfig, Settings
from kairos.feeds import FEEDS
from kairos.feeds.agent import FeedAgent
from kairos.feeds.stats import FeedStats
from kairos.feeds.sync import State
from kairos.instruments import InstrumentTable
from kairos.records import MARKET_DATA, Kind, Venue
from kairos.sim.local import ephemeral
from kairos.sim.server import SimServer


class Collect:
    """The md ring's producer interface, keeping every published batch for inspection."""

    def __init__(self) -> None:
        self.batches: list[np.ndarray] = []

    def publish(self, batch: np.ndarray) -> int:
        self.batches.append(batch.copy())
        return len(self.batches)

    @property
    def records(self) -> np.ndarray:
        return np.concatenate(self.batches) if self.batches else np.zeros(0, MARKET_DATA)

    def kind(self, kind: Kind, instrument: int | None = None) -> np.ndarray:
        recs = self.records
        mask = recs["kind"] == kind
        if instrument is not None:
            mask &= recs["instrument"] == instrument
        return recs[mask]

    def statuses(self, instrument: int) -> list[int]:
        return [int(f) for f in self.kind(Kind.STATUS, instrument)["flags"]]

    def last_burst(self, instrument: int, depth: int) -> np.ndarray:
        return self.kind(Kind.DEPTH, instrument)[-depth:]


def sim_settings(feeds: dict[str, object] | None = None, **sim: object) -> Settings:
    base = config.load()
    feed_cfg = dataclasses.replace(base.feeds, **(feeds or {}))
    return dataclasses.replace(base, sim=ephemeral(base.sim, **sim), feeds=feed_cfg)


@pytest.fixture
def make_sim() -> Iterator[Callable[..., SimServer]]:
    servers: list[SimServer] = []

    def make(settings: Settings) -> SimServer:
        server = SimServer(settings)
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def make_agent(make_sim: Callable[..., SimServer]) -> Iterator[Callable[..., tuple[FeedAgent, Collect]]]:
    """Feed agents wired to a simulator; closed (socket, snapshot threads) before the simulator stops."""
    agents: list[FeedAgent] = []

    def make(settings: Settings, server: SimServer, venue: Venue, adapter_cls: type | None = None
             ) -> tuple[FeedAgent, Collect]:
        cls = adapter_cls or FEEDS[venue.name.lower()]
        adapter = cls(InstrumentTable(settings.instruments).venue_symbols(venue), settings.feeds.channels)
        publisher = Collect()
        agent = FeedAgent(adapter, server.urls(venue), settings.feeds, publisher, FeedStats(None))
        agents.append(agent)
        return agent, publisher

    yield make
    for agent in agents:
        agent.on_close()


def pump(agent: FeedAgent, until: Callable[[], bool], timeout_s: float = 10.0, cycles: int = 200_000,
         between: Callable[[], None] | None = None) -> bool:
    """Run the agent's duty cycle until ``until()`` (bounded by time and count); True if it happened."""
    deadline = time.monotonic() + timeout_s
    for _ in range(cycles):
        if until():
            return True
        if time.monotonic() > deadline:
            return False
        work = agent.do_work()
        agent.idle(work)
        if between is not None:
            between()
    return until()


def in_step(agent: FeedAgent, server: SimServer, venue: Venue) -> bool:
    """Every book is LIVE at exactly the simulator's current update id."""
    for track in agent.sync.tracks.values():
        if track.state != State.LIVE or track.last != server.market.book(venue, track.symbol, 1).update_id:
            return False
    return True


def sync_up(agent: FeedAgent, server: SimServer, venue: Venue) -> bool:
    """Step the (paused) market until every book is LIVE, then let the feed catch up with it."""
    live = pump(agent, lambda: all(t.state == State.LIVE for t in agent.sync.tracks.values()),
                between=server.market.step)
    return live and pump(agent, lambda: in_step(agent, server, venue))


def assert_book_matches(publisher: Collect, agent: FeedAgent, server: SimServer, venue: Venue, cfg: FeedConfig) -> None:
    """The last DEPTH burst of every instrument equals the simulator's top levels, exactly."""
    for instrument, track in agent.sync.tracks.items():
        view = server.market.book(venue, track.symbol, cfg.depth_levels)
        burst = publisher.last_burst(instrument, cfg.depth_levels)
        assert list(burst["flags"]) == list(range(cfg.depth_levels))
        for row, bid, ask in zip(burst, view.bids, view.asks, strict=False):
            assert (dec(row["price"]), dec(row["qty"])) == (bid.price, bid.qty)
            assert (dec(row["price2"]), dec(row["qty2"])) == (ask.price, ask.qty)


def dec(value: float) -> Decimal:
    """The shortest decimal that round-trips the float: what the venue's string was."""
    return Decimal(repr(float(value)))
