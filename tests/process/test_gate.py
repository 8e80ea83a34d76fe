"""`python -m procs.gate` as a real process on real rings (paper mode): events, rejects, duplicates,
HALTED, and kill -9 mid-stream with a restart that reconciles, sends nothing twice and loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest

from kairos.gate.snapshot import GateStateReader
from kairos.records import (
    MARKET_DATA,
    ORDER_INTENT,
    Action,
    ExecKind,
    Kind,
    OrderType,
    ProcState,
    RejectReason,
    Side,
    Tif,
    TradingState,
    Venue,
)
from kairos.sim.local import venue_sim
from tests.gate_shm import INPUTS, GateShm

ROOT = Path(__file__).resolve().parents[2]


def intent(coid: str, side: Side = Side.BUY, price: float = 101.0, qty: float = 0.1, tif: Tif = Tif.IOC,
           action: Action = Action.NEW, flags: int = 0) -> np.ndarray:
    rec = np.zeros(1, ORDER_INTENT)
    rec["ts_created_ns"] = time.time_ns()
    rec["ts_origin_ns"] = rec["ts_created_ns"] - 5000
    rec["price"], rec["qty"], rec["client_order_id"] = price, qty, coid.encode()
    rec["instrument"], rec["venue"], rec["side"] = 1, Venue.BINANCE, side
    rec["order_type"], rec["tif"], rec["action"], rec["flags"] = OrderType.LIMIT, tif, action, flags
    return rec


class GateProcess:
    """Rings and board under the test prefix; the gate spawned exactly as a systemd unit would run it."""

    def __init__(self, prefix: str, tmp: Path, **env: str) -> None:
        self.prefix, self.tmp = prefix, tmp
        self.shm = GateShm(prefix, 4096)
        self.rings, self.board = self.shm.rings, self.shm.board
        self.pub = {n: self.rings[n].producer() for n in INPUTS}
        self.events = self.rings["events"].consumer("test")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KAIROS")} | {
            "KAIROS__SHM_PREFIX": prefix, "KAIROS__EXECUTION__MODE": "paper",
            "KAIROS__LOGGING__DIR": str(tmp / "log"), "KAIROS__RISK__JOURNAL_DIR": str(tmp / "journal"),
            "KAIROS__EXECUTION__PAPER_LATENCY_MS": "1", "KAIROS__RISK__MAX_ORDERS_PER_SEC": "0",
        } | {f"KAIROS__{k.upper()}": v for k, v in env.items()}
        self.proc: subprocess.Popen | None = None
        self.seen: list[np.void] = []

    def start(self) -> None:
        with open(self.tmp / "gate.out", "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "procs.gate"], env=self.env, cwd=ROOT, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)
        return self.proc.wait(30)

    def mark(self, bid: float = 100.0, ask: float = 101.0) -> None:
        rec = np.zeros(1, MARKET_DATA)
        rec["kind"], rec["instrument"], rec["venue"], rec["price"], rec["price2"] = Kind.BBO, 1, Venue.BINANCE, bid, ask
        self.pub["md.binance"].publish(rec)

    def wait(self, done: Callable[[list[np.void]], bool], what: str, timeout_s: float = 30.0) -> list[np.void]:
        deadline = time.monotonic() + timeout_s
        for _ in range(int(timeout_s / 0.01)):
            self.seen += list(self.events.read(4096))
            if done(self.seen):
                return self.seen
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"gate exited {self.proc.returncode}: {self.output()}")
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        raise AssertionError(f"timed out waiting for {what}; {len(self.seen)} events; {self.output()}")

    def working(self, intents: int) -> bool:
        """This very process is running and has taken more than ``intents`` intents."""
        row = next((r for r in self.board.snapshot() if r.role == "gate"), None)
        return bool(row and self.proc and row.pid == self.proc.pid and row.counters.get("intents", 0) > intents)

    def output(self) -> str:
        path = self.tmp / "gate.out"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def ledger(self) -> list[dict]:
        path = self.tmp / "journal" / f"{self.prefix}.paper.binance.jsonl"
        return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()
        self.shm.close()


@pytest.fixture(scope="module")
def sim_env() -> Iterator[dict[str, str]]:
    """A quiet simulator: the paper venues load their order rules from its REST, as in dev."""
    with venue_sim() as env:
        yield {k.removeprefix("KAIROS__").lower(): v for k, v in env.items()}


@pytest.fixture
def gate(shm_prefix: str, tmp_path: Path, sim_env: dict[str, str]) -> Iterator[Callable[..., GateProcess]]:
    made: list[GateProcess] = []

    def make(**env: str) -> GateProcess:
        made.append(GateProcess(shm_prefix, tmp_path, **(sim_env | env)))
        return made[-1]

    try:
        yield make
    finally:
        for g in made:
            g.close()


def of(coid: str, kind: ExecKind) -> Callable[[list[np.void]], bool]:
    return lambda seen: any(e["client_order_id"] == coid.encode() and e["kind"] == kind for e in seen)


def test_intent_waiting_before_start_becomes_ack_and_fill(gate: Callable[..., GateProcess]) -> None:
    g = gate()
    g.mark()
    sent = intent("early1")
    g.pub["intents"].publish(sent)                       # published before the gate exists: it waits
    g.start()
    ack, fill = g.wait(of("early1", ExecKind.FILL), "the fill")
    assert (ack["kind"], fill["kind"]) == (ExecKind.ACK, ExecKind.FILL)
    assert fill["ts_origin_ns"] == sent["ts_origin_ns"][0] and fill["event_seq"] == ack["event_seq"] + 1
    row = next(r for r in g.board.snapshot() if r.role == "gate")
    assert row.state == ProcState.RUNNING and row.counters["orders_sent"] == 1
    assert row.histograms["gate_latency_ns"].count == 1
    state = GateStateReader(g.prefix).read()
    assert state is not None and state["reconciled"] and state["mode"] == "paper"
    assert (g.tmp / "log" / "gate.jsonl").exists()
    assert g.kill(signal.SIGTERM) == 0


def test_risk_reject_reaches_no_executor_and_duplicates_make_one_order(gate: Callable[..., GateProcess]) -> None:
    g = gate(risk__max_order_qty="0.5")
    g.mark()
    g.start()
    g.pub["intents"].publish(intent("big", qty=0.6))
    g.pub["intents"].publish(intent("dup", tif=Tif.GTC, price=100.0))
    g.pub["intents"].publish(intent("dup", tif=Tif.GTC, price=100.0))
    g.wait(lambda s: sum(e["kind"] == ExecKind.REJECT for e in s) == 2, "two rejects")
    g.wait(of("dup", ExecKind.ACK), "the ack of the first dup")
    reasons = {e["client_order_id"]: RejectReason(e["reason"]) for e in g.seen if e["kind"] == ExecKind.REJECT}
    assert reasons == {b"big": RejectReason.MAX_ORDER_QTY, b"dup": RejectReason.DUPLICATE_ORDER}
    assert [e["c"] for e in g.ledger() if e["t"] == "N"] == ["dup"]


def test_one_venue_unreachable_the_other_trades(gate: Callable[..., GateProcess]) -> None:
    """OKX's REST refuses connections: binance orders fill, OKX intents are rejected NOT_RECONCILED at once
    (never sent), and the gate says OKX is closed (DEGRADED, ``closed.okx``, the blob, the log)."""
    g = gate(venues__okx__endpoints="{sim: {rest_url: 'http://127.0.0.1:9', ws_url: 'ws://127.0.0.1:9'}}")
    g.mark()
    g.start()
    okx = intent("okx1")
    okx["venue"] = Venue.OKX
    g.pub["intents"].publish(intent("bnb1"))
    g.pub["intents"].publish(okx)
    g.wait(lambda s: of("bnb1", ExecKind.FILL)(s) and of("okx1", ExecKind.REJECT)(s), "a fill and a reject")
    reject = next(e for e in g.seen if e["client_order_id"] == b"okx1")
    assert RejectReason(reject["reason"]) == RejectReason.NOT_RECONCILED
    okx_ledger = (g.tmp / "journal" / f"{g.prefix}.paper.okx.jsonl").read_bytes().splitlines()
    assert not [e for e in map(orjson.loads, okx_ledger) if e["t"] == "N"]      # nothing reached OKX
    assert [e["c"] for e in g.ledger() if e["t"] == "N"] == ["bnb1"]
    row = next(r for r in g.board.snapshot() if r.role == "gate")
    assert row.state == ProcState.DEGRADED and row.counters["closed.okx"] == 1
    state = GateStateReader(g.prefix).read()
    assert state is not None and state["venues_reconciled"] == ["binance"] and not state["reconciled"]
    log = (g.tmp / "log" / "gate.jsonl").read_text()
    assert "OKX not reachable" in log and "still closed" in log
    assert g.kill(signal.SIGTERM) == 0


def test_halted_by_set_state_rejects_then_active_again_accepts(gate: Callable[..., GateProcess]) -> None:
    g = gate()
    g.mark()
    g.start()
    g.pub["manual"].publish(intent("", action=Action.SET_STATE, flags=TradingState.HALTED))
    g.wait(lambda s: any(e["kind"] == ExecKind.STATE for e in s), "the STATE event")
    g.pub["intents"].publish(intent("h1"))
    g.wait(of("h1", ExecKind.REJECT), "the reject")
    assert g.seen[-1]["reason"] == RejectReason.TRADING_HALTED
    g.pub["manual"].publish(intent("", action=Action.SET_STATE, flags=TradingState.ACTIVE))
    g.pub["intents"].publish(intent("h2"))
    g.wait(of("h2", ExecKind.FILL), "the fill after ACTIVE")
    assert [e["flags"] for e in g.seen if e["kind"] == ExecKind.STATE] == [TradingState.HALTED, TradingState.ACTIVE]


STREAM_MARK = (1000.0, 1001.0)


def stream(gp: GateProcess, coids: list[str], stop: threading.Event) -> None:
    """Publisher thread: one intent at a time, as fast as the ring takes them, with a fresh mark every 50
    (at 1000: 0.005 BTC is then the venue's 5 USDT minimum notional)."""
    for i, coid in enumerate(coids):
        if stop.is_set():
            return
        if i % 50 == 0:
            gp.mark(*STREAM_MARK)
        if i % 5 == 0:
            time.sleep(0.001)                             # about 5000 intents/s: the stream outlives the kills
        gp.pub["intents"].publish(intent(coid, side=Side.BUY if i % 2 else Side.SELL, qty=0.005,
                                         price=1001.0 if i % 2 else 1000.0, tif=Tif.GTC if i % 7 == 0 else Tif.IOC))


def test_kill_9_mid_stream_then_restart_loses_nothing_and_sends_nothing_twice(
        gate: Callable[..., GateProcess]) -> None:
    g = gate(risk__max_open_orders="0")
    g.start()
    coids = [f"k{i}" for i in range(4000)]
    stop = threading.Event()
    publisher = threading.Thread(target=stream, args=(g, coids, stop), daemon=True)
    publisher.start()
    try:
        for delay in (0.05, 0.02, 0.0):                   # kill -9 while intents keep arriving
            g.wait(lambda _: g.working(20), "the (restarted) gate at work")
            time.sleep(delay)
            g.kill()
            g.start()
            g.mark(*STREAM_MARK)
        publisher.join(60)
        g.mark(*STREAM_MARK)
        outcome = (ExecKind.ACK, ExecKind.REJECT)
        g.wait(lambda s: {e["client_order_id"] for e in s if e["kind"] in outcome} >= {c.encode() for c in coids},
               "an outcome for every intent", timeout_s=90)
    finally:
        stop.set()
    news = [e["c"] for e in g.ledger() if e["t"] == "N"]
    assert len(news) == len(set(news))                   # the venue never got an order twice
    kinds = defaultdict(set)
    for e in g.seen:
        kinds[e["client_order_id"]].add(ExecKind(e["kind"]))
    for coid in coids:
        got = kinds[coid.encode()]
        assert not ({ExecKind.ACK, ExecKind.REJECT} <= got), (coid, got)
        assert (ExecKind.ACK in got) == (coid in news), (coid, got)
    reasons = {RejectReason(e["reason"]) for e in g.seen if e["kind"] == ExecKind.REJECT}
    assert reasons <= {RejectReason.NOT_RECONCILED, RejectReason.NO_MARK}, reasons
    seqs = [int(e["event_seq"]) for e in g.seen]
    assert seqs == sorted(seqs)
    assert (g.tmp / "log" / "gate.jsonl").read_text().count("reconciled with every venue") == 4
