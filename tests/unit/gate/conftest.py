"""An in-process gate on real rings and a real status board, driven one duty cycle at a time; its paper
venues load their order rules from a simulator's REST (one per test session)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from kairos import config
from kairos.gate.agent import GateAgent
from kairos.gate.snapshot import GateStateReader
from kairos.records import (
    MARKET_DATA,
    ORDER_INTENT,
    Action,
    ExecKind,
    Kind,
    OrderType,
    Side,
    Tif,
    Venue,
)
from kairos.sim.local import venue_sim
from tests.gate_shm import INPUTS, GateShm

BTC = 1


def intent(coid: str, side: Side = Side.BUY, price: float = 101.0, qty: float = 0.1, venue: Venue = Venue.BINANCE,
           order_type: OrderType = OrderType.LIMIT, tif: Tif = Tif.IOC, action: Action = Action.NEW,
           instrument: int = BTC, flags: int = 0, ts: int | None = None) -> np.ndarray:
    rec = np.zeros(1, ORDER_INTENT)
    now = time.time_ns()
    rec["ts_created_ns"] = now if ts is None else ts
    rec["ts_origin_ns"] = now - 1000
    rec["price"], rec["qty"], rec["client_order_id"] = price, qty, coid.encode()
    rec["instrument"], rec["strategy"], rec["venue"] = instrument, 7, venue
    rec["side"], rec["order_type"], rec["tif"], rec["action"], rec["flags"] = side, order_type, tif, action, flags
    return rec


class Harness:
    """Rings + board under one prefix, settings from the real loader, events read as consumer 'test'."""

    def __init__(self, prefix: str, tmp: Path, env: dict[str, str], events_capacity: int = 1024,
                 sim_env: dict[str, str] | None = None) -> None:
        self.prefix = prefix
        self.shm = GateShm(prefix, 1024, events_capacity)
        self.rings, self.board = self.shm.rings, self.shm.board
        base = {"KAIROS__SHM_PREFIX": prefix, "KAIROS__RISK__JOURNAL_DIR": str(tmp / "journal"),
                "KAIROS__EXECUTION__PAPER_LATENCY_MS": "0", "KAIROS__LOGGING__DIR": str(tmp / "log")}
        self.settings = config.load(env=base | (sim_env or {}) | env)
        self.producers = {n: self.rings[n].producer() for n in INPUTS}
        self.events_in = self.rings["events"].consumer("test")
        self.seen: list[np.void] = []
        self.agents: list[GateAgent] = []

    def gate(self) -> GateAgent:
        agent = GateAgent(self.settings, self.board.claim("gate"))
        agent.on_start()
        self.agents.append(agent)
        return agent

    def mark(self, bid: float, ask: float, venue: str = "binance", instrument: int = BTC) -> None:
        rec = np.zeros(1, MARKET_DATA)
        rec["kind"], rec["instrument"], rec["price"], rec["price2"] = Kind.BBO, instrument, bid, ask
        rec["venue"] = Venue.BINANCE if venue == "binance" else Venue.OKX
        self.producers[f"md.{venue}"].publish(rec)

    def send(self, rec: np.ndarray, ring: str = "intents") -> None:
        self.producers[ring].publish(rec)

    def run(self, agent: GateAgent, until: Callable[[list[np.void]], bool] = lambda _: False,
            cycles: int = 200) -> list[np.void]:
        """Duty cycles until ``until(events so far)`` holds (bounded by count and 5 s)."""
        deadline = time.monotonic() + 5.0
        for _ in range(cycles):
            agent.do_work()
            self.seen += list(self.events_in.read(1024))
            if until(self.seen) or time.monotonic() > deadline:
                break
        return self.seen

    def blob(self, agent: GateAgent, until: Callable[[dict], bool]) -> dict:
        """Run until the published gate state satisfies ``until`` (it is written at most every 10 ms)."""
        reader = GateStateReader(self.prefix)
        try:
            deadline = time.monotonic() + 5.0
            while True:
                agent.do_work()
                state = reader.read()
                if (state is not None and until(state)) or time.monotonic() > deadline:
                    return state or {}
                time.sleep(0.002)
        finally:
            reader.close()

    def kinds(self, coid: str) -> list[ExecKind]:
        return [ExecKind(e["kind"]) for e in self.seen if e["client_order_id"] == coid.encode()]

    def close(self) -> None:
        for agent in self.agents:
            agent.on_close()
        self.shm.close()


@pytest.fixture(scope="session")
def sim_env() -> Iterator[dict[str, str]]:
    """Both venues' ``sim`` endpoints pointed at one quiet simulator for the whole session."""
    with venue_sim() as env:
        yield env


@pytest.fixture
def make_harness(shm_prefix: str, tmp_path: Path, sim_env: dict[str, str]) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(events_capacity: int = 1024, **env: str) -> Harness:
        harness = Harness(shm_prefix, tmp_path, {f"KAIROS__{k.upper()}": v for k, v in env.items()}, events_capacity,
                          sim_env)
        made.append(harness)
        return harness

    try:
        yield make
    finally:
        for harness in made:
            harness.close()
