"""The strategy host in-process on real rings and a real status board (no child process)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from kairos.records import Action, BookStatus, Side, Venue
from kairos.ring import Ring
from kairos.status import BoardRow, StatusBoard
from kairos.strategy.host import StrategyHost
from tests.unit.strategy.helpers import batch, bbo, fill, reject, status
from tests.unit.strategy.rings import GateStub, close_rings, create_rings, settings_for

B, X = Venue.BINANCE, Venue.OKX  # X: OKX


class Engine:
    def __init__(self, prefix: str, rings: dict[str, Ring], board: StatusBoard) -> None:
        self.prefix, self.rings, self.board = prefix, rings, board
        self.gate_state = GateStub(prefix)
        self.md = {B: rings["md.binance"].producer(), X: rings["md.okx"].producer()}
        self.events = rings["events"].producer()
        self.gate = rings["intents"].consumer("gate")
        self.host: StrategyHost | None = None

    def start(self, **env: str) -> StrategyHost:
        settings, _ = settings_for(self.prefix, **env)
        self.host = StrategyHost.build(settings, self.board.claim("strategy"))
        self.host.on_start()
        self.run_until(lambda: not self.host.recovering)
        return self.host

    def run_until(self, done: Callable[[], bool], cycles: int = 500, timeout_s: float = 10.0) -> None:
        """Duty cycles as AgentRunner runs them (work, then idle), bounded by count and time."""
        deadline = time.monotonic() + timeout_s
        for _ in range(cycles):
            self.host.idle(self.host.do_work())
            if done():
                return
            if time.monotonic() > deadline:
                break
        raise AssertionError("condition not met within the duty-cycle bound")

    def intents(self, n: int) -> np.ndarray:
        got: list[np.ndarray] = []
        self.run_until(lambda: got.append(self.gate.read(64)) or sum(map(len, got)) >= n)
        return np.concatenate(got)

    def row(self) -> BoardRow:
        return next(r for r in self.board.snapshot() if r.role == "strategy")


@pytest.fixture
def engines(shm_prefix: str) -> Iterator[Callable[..., Engine]]:
    made: list[Engine] = []

    def make(**ring_args: object) -> Engine:
        rings = create_rings(shm_prefix, md_capacity=16, **ring_args)
        made.append(Engine(shm_prefix, rings, StatusBoard.create(shm_prefix)))
        return made[-1]

    try:
        yield make
    finally:
        for eng in made:
            if eng.host is not None:
                eng.host.on_close()
            close_rings(eng.rings, shm_prefix)
            eng.gate_state.close()
            eng.board.close()
            StatusBoard.unlink(shm_prefix)


@pytest.fixture
def engine(engines: Callable[..., Engine]) -> Engine:
    return engines()


def now() -> int:
    return time.time_ns()


def opportunity(eng: Engine, rich_bid: float = 100.5) -> None:
    eng.md[B].publish(bbo(B, 1, 99.9, 100.0, ts=now()))
    eng.md[X].publish(bbo(X, 1, rich_bid, rich_bid + 0.1, ts=now()))


def test_market_data_in_intents_out_with_counters_and_latency(engine: Engine) -> None:
    engine.start()
    opportunity(engine)
    buy, sell = engine.intents(2)
    assert (buy["venue"], buy["side"], sell["venue"], sell["side"]) == (B, Side.BUY, X, Side.SELL)
    engine.run_until(lambda: engine.row().counters["intents_out"] == 2)
    row = engine.row()
    assert row.counters["md_records"] == 2 and row.counters["intents_out"] == 2
    assert row.counters["arb_fired"] == 1
    assert row.histograms["decision_ns"].count == 2 and row.histograms["read_to_out_ns"].count == 1


def test_exec_events_reach_the_strategy_and_leg_failure_is_hedged(engine: Engine) -> None:
    engine.start()
    opportunity(engine)
    buy, sell = engine.intents(2)
    engine.events.publish(batch(fill(buy, buy["qty"]), reject(sell)))
    (hedge,) = engine.intents(1)
    assert hedge["side"] == Side.SELL and hedge["qty"] == buy["qty"] and hedge["action"] == Action.NEW


def test_resyncing_book_is_not_traded(engine: Engine) -> None:
    engine.start()
    engine.md[X].publish(batch(bbo(X, 1, 100.5, 100.6, ts=now()), status(X, 1, BookStatus.RESYNCING, ts=now())))
    engine.md[B].publish(bbo(B, 1, 99.9, 100.0, ts=now()))
    engine.run_until(lambda: engine.host.stats["md_records"] == 3)
    for _ in range(5):
        engine.host.do_work()
    assert len(engine.gate.read(64)) == 0


def test_overrun_drops_the_venues_books(engine: Engine) -> None:
    engine.start()
    engine.md[B].publish(bbo(B, 1, 99.9, 100.0, ts=now()))
    engine.md[X].publish(bbo(X, 1, 99.95, 100.05, ts=now()))
    engine.run_until(lambda: engine.host.stats["md_records"] == 2)
    engine.md[B].publish(np.concatenate([bbo(B, 2, 10.0, 10.1, ts=now())] * 40))
    engine.run_until(lambda: engine.host.stats["md_overruns"] > 0)
    engine.md[X].publish(bbo(X, 1, 100.5, 100.6, ts=now()))
    engine.run_until(lambda: engine.host.stats["md_records"] >= 19)
    assert len(engine.gate.read(64)) == 0, "binance book for instrument 1 was dropped by the overrun"
    engine.md[B].publish(bbo(B, 1, 99.9, 100.0, ts=now()))
    assert len(engine.intents(2)) == 2


def test_full_intents_ring_drops_counts_and_rejects_locally(engines: Callable[..., Engine]) -> None:
    engine = engines(intents_capacity=2, intents_consumers=("gate", "audit"))
    audit = engine.rings["intents"].consumer("audit")
    engine.start(rings__block_timeout_ms="5")
    opportunity(engine)
    engine.run_until(lambda: engine.host.stats["intents_out"] == 2)
    buy, sell = audit.read(8)
    engine.events.publish(batch(fill(buy, buy["qty"]), fill(sell, sell["qty"])))
    engine.run_until(lambda: engine.host.stats["events"] == 2)
    opportunity(engine, 100.7)
    engine.run_until(lambda: engine.host.stats["intents_dropped"] == 2)
    arb = engine.host._strategies[0]
    engine.run_until(lambda: arb.stats["missed"] == 1)
    assert arb.stats["completed"] == 1 and arb.stats["fired"] == 2 and arb.stats["leg_failures"] == 0
    engine.gate.read(8)
    opportunity(engine, 100.8)
    engine.run_until(lambda: engine.host.stats["intents_out"] == 4)


def test_a_venue_the_gate_has_not_reconciled_is_not_traded_until_it_is(engine: Engine) -> None:
    engine.gate_state.publish(venues=("binance",))
    host = engine.start(strategy__recover_on_start="false")
    engine.run_until(lambda: host.venues.flags[B] and engine.row().counters["venues_closed"] == 1)
    assert not host.venues.flags[X]
    opportunity(engine)
    arb = host._strategies[0]
    engine.run_until(lambda: arb.stats["venue_closed"] >= 1)
    assert len(engine.gate.read(64)) == 0 and arb.stats["fired"] == 0
    engine.run_until(lambda: engine.row().counters["arb_venue_closed"] >= 1)
    engine.gate_state.publish(venues=("binance", "okx"))
    engine.run_until(lambda: host.venues.flags[X], cycles=2000)
    opportunity(engine, 100.6)
    buy, sell = engine.intents(2)
    assert (buy["venue"], sell["venue"]) == (B, X) and engine.row().counters["venues_closed"] == 0


def test_without_a_fresh_gate_state_no_venue_is_traded(engine: Engine) -> None:
    engine.gate_state.close()
    host = engine.start(strategy__recover_on_start="false")
    engine.run_until(lambda: engine.row().counters["venues_closed"] == 2)
    opportunity(engine)
    engine.run_until(lambda: host.stats["md_records"] == 2)
    for _ in range(5):
        host.do_work()
    assert len(engine.gate.read(64)) == 0 and host._strategies[0].stats["venue_closed"] >= 1
