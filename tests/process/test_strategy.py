"""`python -m procs.strategy` as a real child process on real rings and a real status board."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from kairos import config
from kairos.errors import EXIT_BOOT_ERROR
from kairos.gate.snapshot import GateStateReader
from kairos.records import Action, BookStatus, ProcState, Side, Tif, Venue
from kairos.ring import Ring
from kairos.sim.local import venue_sim
from kairos.status import BoardRow, StatusBoard
from kairos.supervisor.rings import RingSet, ring_specs
from tests.unit.strategy.helpers import batch, bbo, fill, reject, status
from tests.unit.strategy.rings import GateStub, close_rings, create_rings

ROOT = Path(__file__).resolve().parents[2]
B, X = Venue.BINANCE, Venue.OKX  # X: OKX


def wait_for(cond: Callable[[], object], timeout_s: float = 15.0, what: str = "condition") -> object:
    """Poll ``cond`` until truthy; bounded by time and by count."""
    deadline = time.monotonic() + timeout_s
    for _ in range(int(timeout_s / 0.005) + 1):
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            break
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


class Child:
    def __init__(self, prefix: str, tmp: Path, **env: str) -> None:
        environ = {**os.environ, "KAIROS__SHM_PREFIX": prefix, "KAIROS__LOGGING__DIR": str(tmp),
                   "KAIROS__STRATEGY__ARBITRAGE__COOLDOWN_MS": "0", "PYTHONPATH": str(ROOT)}
        environ.update({f"KAIROS__{k.upper()}": v for k, v in env.items()})
        self.proc = subprocess.Popen([sys.executable, "-m", "procs.strategy"], cwd=ROOT, env=environ,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc.stdout:
            self.proc.stdout.close()


class Engine:
    """What the supervisor would create, plus the test acting as feeds and gate."""

    def __init__(self, prefix: str, tmp: Path) -> None:
        self.prefix, self.tmp = prefix, tmp
        self.board = StatusBoard.create(prefix)
        self.rings: dict[str, Ring] = create_rings(prefix)
        self.md = {B: self.rings["md.binance"].producer(), X: self.rings["md.okx"].producer()}
        self.events = self.rings["events"].producer()
        self.gate = self.rings["intents"].consumer("gate")
        self.gate_state = GateStub(prefix)
        self.children: list[Child] = []

    def spawn(self, **env: str) -> Child:
        self.children.append(Child(self.prefix, self.tmp, **env))
        return self.children[-1]

    def row(self) -> BoardRow | None:
        return next((r for r in self.board.snapshot() if r.role == "strategy"), None)

    def running(self) -> None:
        """The newest child's own row RUNNING: a killed child's row still says RUNNING until its successor
        claims it (and, while it is claimed afresh, there is briefly no row)."""
        pid = self.children[-1].proc.pid
        wait_for(lambda: (r := self.row()) and r.pid == pid and r.state == ProcState.RUNNING,
                 what="strategy RUNNING")

    def intents(self, n: int) -> np.ndarray:
        got: list[np.ndarray] = []
        wait_for(lambda: got.append(self.gate.read(64)) or sum(map(len, got)) >= n, what=f"{n} intents")
        return np.concatenate(got)

    def close(self) -> None:
        for child in self.children:
            child.kill()
        close_rings(self.rings, self.prefix)
        self.gate_state.close()
        self.board.close()
        StatusBoard.unlink(self.prefix)


@pytest.fixture
def engine(shm_prefix: str, tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(shm_prefix, tmp_path)
    try:
        yield eng
    finally:
        eng.close()


def opportunity(eng: Engine, rich_bid: float = 100.5) -> None:
    eng.md[B].publish(bbo(B, 1, 99.9, 100.0, ts=time.time_ns()))
    eng.md[X].publish(bbo(X, 1, rich_bid, rich_bid + 0.1, ts=time.time_ns()))


def arbitrage(eng: Engine, rich_bid: float = 100.5) -> np.ndarray:
    """The two legs of one trade. The opportunity is shown again until they come: a host still settling
    its previous run with the gate (restart recovery) lets market data pass without trading."""
    got: list[np.ndarray] = []

    def legs() -> bool:
        if not sum(map(len, got)):
            opportunity(eng, rich_bid)
        time.sleep(0.02)
        got.append(eng.gate.read(64))
        return sum(map(len, got)) >= 2

    wait_for(legs, what="two arbitrage legs")
    return np.concatenate(got)


@pytest.mark.slow
def test_strategy_process_trades_md_into_intents_and_hedges_a_failed_leg(engine: Engine) -> None:
    child = engine.spawn()
    engine.running()
    engine.md[X].publish(status(X, 1, BookStatus.RESYNCING, ts=time.time_ns()))
    engine.md[B].publish(bbo(B, 1, 99.9, 100.0, ts=time.time_ns()))
    wait_for(lambda: engine.row().counters.get("md_records") == 2, what="md consumed")
    assert len(engine.gate.read(64)) == 0, "no trading against a resyncing book"
    buy, sell = arbitrage(engine)
    assert (buy["venue"], buy["side"], buy["tif"], sell["venue"], sell["side"]) == (B, Side.BUY, Tif.IOC, X, Side.SELL)
    engine.events.publish(batch(fill(buy, buy["qty"]), reject(sell)))
    (hedge,) = engine.intents(1)
    assert (hedge["action"], hedge["side"], hedge["qty"]) == (Action.NEW, Side.SELL, buy["qty"])
    row = wait_for(lambda: (r := engine.row()).counters.get("arb_hedges_sent") == 1 and r, what="counters")
    assert row.counters["arb_leg_failures"] == 1 and row.counters["intents_out"] == 3
    assert row.histograms["decision_ns"].count == 2 and row.histograms["read_to_out_ns"].count == 1
    assert child.stop() == 0
    assert engine.row().state == ProcState.STOPPED


@pytest.mark.slow
def test_restarted_strategy_resumes_its_cursors_and_new_ids_do_not_collide(engine: Engine) -> None:
    first = engine.spawn()
    engine.running()
    old = arbitrage(engine)
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=10)
    opportunity(engine, 100.6)
    engine.spawn()
    engine.running()
    wait_for(lambda: engine.row().counters.get("md_records") == 2, what="md sent while it was down consumed")
    new = arbitrage(engine, 100.6)
    assert not set(old["client_order_id"].tolist()) & set(new["client_order_id"].tolist())
    assert new[1]["price"] == pytest.approx(100.6)


@pytest.mark.slow
def test_bad_strategy_config_is_a_boot_error(engine: Engine) -> None:
    child = engine.spawn(strategy__arbitrage__instruments="[NOPE-USDT]")
    assert child.proc.wait(timeout=20) == EXIT_BOOT_ERROR
    out = child.proc.stdout.read().decode()
    assert "NOPE-USDT" in out and "strategy.arbitrage.instruments" in out


def _allowed_cpus(pid: int) -> set[str]:
    """Cpus_allowed_list of every thread of ``pid``."""
    return {line.split(":", 1)[1].strip() for status in Path(f"/proc/{pid}/task").glob("*/status")
            for line in status.read_text().splitlines() if line.startswith("Cpus_allowed_list:")}


@pytest.mark.slow
def test_tuning_pins_the_process_and_a_spinning_strategy_still_trades(engine: Engine) -> None:
    cpu = max(os.sched_getaffinity(0))
    child = engine.spawn(tuning__cpus=f"{{strategy: [{cpu}]}}", tuning__waits="{strategy: spin}")
    engine.running()
    assert _allowed_cpus(child.proc.pid) == {str(cpu)}
    assert len(arbitrage(engine)) == 2
    assert child.stop() == 0


@pytest.mark.slow
def test_pinning_to_a_cpu_the_process_may_not_use_is_a_boot_error(engine: Engine) -> None:
    missing = max(os.sched_getaffinity(0)) + 1
    child = engine.spawn(tuning__cpus=f"{{strategy: [{missing}]}}")
    assert child.proc.wait(timeout=20) == EXIT_BOOT_ERROR
    out = child.proc.stdout.read().decode()
    assert "tuning.cpus.strategy" in out and f"[{missing}]" in out


@pytest.mark.slow
def test_restart_cancels_the_previous_runs_orders_then_hedges_its_residual(engine: Engine) -> None:
    old_leg = {"client_order_id": "K01oldrun00a1", "strategy": 1, "venue_id": int(X), "instrument_id": 1,
               "state": 1}
    engine.gate_state.publish(orders=[old_leg], strategies=[{"strategy": 1, "instrument_id": 1, "net_quantity": 0.05}])
    engine.spawn()
    engine.running()
    (cancel,) = engine.intents(1)
    assert (cancel["action"], cancel["client_order_id"], cancel["venue"]) == (Action.CANCEL, b"K01oldrun00a1", X)
    engine.md[B].publish(bbo(B, 1, 99.9, 100.0, ts=time.time_ns()))
    engine.md[X].publish(bbo(X, 1, 100.0, 100.1, ts=time.time_ns()))    # no edge: only the hedge may trade
    time.sleep(0.2)
    assert len(engine.gate.read(64)) == 0, "nothing new while the previous run's order is open"
    engine.gate_state.publish(strategies=[{"strategy": 1, "instrument_id": 1, "net_quantity": 0.05}])
    (hedge,) = engine.intents(1)
    assert (hedge["action"], hedge["side"], hedge["venue"], hedge["tif"]) == (Action.NEW, Side.SELL, X, Tif.IOC)
    assert hedge["qty"] == pytest.approx(0.05) and hedge["price"] == pytest.approx(100.0 * (1 - 20 / 1e4))


@pytest.mark.slow
def test_no_one_legged_trade_while_the_gate_has_a_venue_closed(engine: Engine) -> None:
    engine.gate_state.publish(venues=("binance",))        # okx not reconciled: its intents would be refused
    engine.spawn(strategy__recover_on_start="false")
    engine.running()
    wait_for(lambda: engine.row().counters.get("venues_closed") == 1, what="okx seen closed")
    for _ in range(10):
        opportunity(engine)
        time.sleep(0.02)
    wait_for(lambda: (c := engine.row().counters).get("md_records") == 20 and c.get("arb_venue_closed", 0) >= 1,
             what="every opportunity seen and held back")
    assert len(engine.gate.read(64)) == 0, "no leg sent while one venue of the pair is closed"
    engine.gate_state.publish(venues=("binance", "okx"))
    wait_for(lambda: engine.row().counters.get("venues_closed") == 0, what="okx open")
    buy, sell = arbitrage(engine)
    assert (buy["venue"], buy["side"], sell["venue"], sell["side"]) == (B, Side.BUY, X, Side.SELL)


@pytest.mark.slow
def test_with_a_real_gate_that_cannot_reach_okx_no_leg_is_sent(shm_prefix: str, tmp_path: Path) -> None:
    """procs.gate (paper, OKX's address refuses connections: only binance is reconciled) and procs.strategy on
    the supervisor's ring set: an arbitrage edge between the two venues never becomes an intent."""
    unreachable = "{sim: {rest_url: 'http://127.0.0.1:9', ws_url: 'ws://127.0.0.1:9'}}"
    with venue_sim() as sim:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAIROS")} | sim | {
            "KAIROS__SHM_PREFIX": shm_prefix, "KAIROS__EXECUTION__MODE": "paper",
            "KAIROS__VENUES__OKX__ENDPOINTS": unreachable, "KAIROS__PERSISTER__ENABLED": "false",
            "KAIROS__LOGGING__DIR": str(tmp_path), "KAIROS__RISK__JOURNAL_DIR": str(tmp_path / "journal"),
            "KAIROS__STRATEGY__RECOVER_ON_START": "false", "KAIROS__STRATEGY__ARBITRAGE__COOLDOWN_MS": "0",
            "PYTHONPATH": str(ROOT)}
        rings, board = RingSet(ring_specs(config.load(env=env)), shm_prefix), StatusBoard.create(shm_prefix)
        rings.create()
        gate_state, procs = GateStateReader(shm_prefix), []

        def row() -> BoardRow:
            return next((r for r in board.snapshot() if r.role == "strategy"),
                        BoardRow("strategy", 0, False, ProcState.EMPTY, 0, 0, {}, {}))

        try:
            for role in ("gate", "strategy"):
                procs.append(subprocess.Popen([sys.executable, "-m", f"procs.{role}"], cwd=ROOT, env=env,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_for(lambda: row().counters.get("venues_closed") == 1 and row().state == ProcState.RUNNING,
                     timeout_s=60, what="the strategy sees binance open and okx closed in the real gate's state")
            md = {B: rings.rings["md.binance"].producer(), X: rings.rings["md.okx"].producer()}
            for _ in range(10):
                md[B].publish(bbo(B, 1, 99.9, 100.0, ts=time.time_ns()))
                md[X].publish(bbo(X, 1, 100.5, 100.6, ts=time.time_ns()))
                time.sleep(0.02)
            wait_for(lambda: (c := row().counters).get("md_records") == 20 and c.get("arb_venue_closed", 0) >= 1,
                     what="every opportunity seen and held back")
            time.sleep(0.3)                                   # the gate republishes its state at least every 0.5 s
            state = wait_for(gate_state.read, what="the gate's state")
            assert state["venues_reconciled"] == ["binance"] and state["counters"]["intents"] == 0
            assert row().counters.get("intents_out", 0) == 0 and row().counters.get("arb_fired", 0) == 0
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
            gate_state.close()
            rings.close()
            rings.unlink()
            board.close()
            StatusBoard.unlink(shm_prefix)
            GateStateReader.unlink(shm_prefix)
