"""Strategy decision latency: record in -> intent out, in-process and through the real process.

``python -m scripts.bench strategy [--json]`` (or ``python -m scripts.bench_strategy [--quick]``).
Same-run baselines, all on identical crafted books:

- in-process: ours (MarketView + CrossArbitrage / MarketMaker + IntentSink, timed from the batch to
  the ORDER_INTENT rows) against a naive per-record arbitrage with a dict per book, reading fields
  off each numpy record (``naive_*``), and the same naive logic fed one ``tolist()`` per batch
  (``naive_tolist_fire``: the fair one; it emits dicts and tracks no legs, so it does less work).
- cross-process: feed -> strategy -> gate round trip. Ours: md rings -> ``python -m procs.strategy``
  -> intents ring (the bench answers with fills on the events ring). Baseline: the naive strategy in
  a child fed and drained by ``multiprocessing.Queue``. Both children live at once and trips are
  interleaved, paced 1 ms, so machine noise hits both alike.

Percentiles are in microseconds; ratios are baseline / ours (> 1: ours is faster).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Final

import numpy as np

from kairos import config, gatestate
from kairos.config import ArbitrageConfig, MarketMakingConfig
from kairos.gate.snapshot import GateStateReader, GateStateWriter
from kairos.records import EXEC_EVENT, MARKET_DATA, Action, ExecKind, Kind, OrderState, Side, Venue
from kairos.ring import Waiter
from kairos.status import StatusBoard
from kairos.strategy.api import IntentSink, LiveClock, MarketView, OrderIds, new_run_id
from kairos.strategy.arbitrage import CrossArbitrage
from kairos.strategy.host import StrategyHost
from kairos.strategy.market_making import MarketMaker
from kairos.supervisor.rings import RingSet, ring_specs
from scripts.bench_gate import pct

ROOT = Path(__file__).resolve().parent.parent
B, X = Venue.BINANCE, Venue.OKX  # X: OKX
FEES = {B: 10.0, X: 10.0}
ARB = ArbitrageConfig(enabled=True, instruments=("BTC-USDT",), min_edge_bps=5.0, max_qty=0.01, cooldown_ms=0)
MM = MarketMakingConfig(enabled=True, instruments=("BTC-USDT",), requote_bps=2.0, use_microprice=False)


def books(n: int, edge: bool, ts: int, instruments: int = 1) -> list[np.ndarray]:
    """``n`` two-record batches (binance cheap ask, okx bid) with or without an arbitrage edge."""
    out = []
    for i in range(n):
        rec = np.zeros(2, MARKET_DATA)
        rec["venue"], rec["instrument"], rec["kind"] = (B, X), 1 + i % instruments, Kind.BBO
        rich = 100.5 + (i % 7) * 0.01 if edge else 100.01
        rec["price"], rec["price2"] = (99.9, rich), (100.0, rich + 0.1)
        rec["qty"] = rec["qty2"] = 1.0
        rec["ts_recv_ns"] = ts
        out.append(rec)
    return out


def fills(intents: np.ndarray) -> np.ndarray:
    ev = np.zeros(len(intents), EXEC_EVENT)
    for name in ("client_order_id", "instrument", "venue", "strategy", "side", "price"):
        ev[name] = intents[name]
    ev["kind"], ev["state"], ev["qty"], ev["cum_qty"] = ExecKind.FILL, OrderState.FILLED, intents["qty"], intents["qty"]
    return ev


class NaiveArb:
    """Baseline: a dict per book updated record by record; intents are dicts."""

    def __init__(self) -> None:
        self.books: dict[tuple[int, int], dict[str, float]] = {}

    def on_record(self, rec: dict) -> list[dict]:
        book = {"bid": rec["price"], "bid_qty": rec["qty"], "ask": rec["price2"], "ask_qty": rec["qty2"]}
        self.books[(rec["venue"], rec["instrument"])] = book
        out = []
        for buy, sell in ((B, X), (X, B)):
            a, b = self.books.get((buy, rec["instrument"])), self.books.get((sell, rec["instrument"]))
            if a and b and (b["bid"] / a["ask"] - 1) * 1e4 > FEES[buy] + FEES[sell] + ARB.min_edge_bps:
                qty = min(a["ask_qty"], b["bid_qty"], ARB.max_qty)
                out.append({"venue": buy, "side": Side.BUY, "price": a["ask"], "qty": qty, "ts": time.time_ns()})
                out.append({"venue": sell, "side": Side.SELL, "price": b["bid"], "qty": qty, "ts": time.time_ns()})
        return out


def _time_ours(strategy: object, view: MarketView, sink: IntentSink, batches: list[np.ndarray],
               after: Callable[[np.ndarray], None]) -> tuple[list[int], list[int]]:
    """(latencies of batches that produced intents, latencies of those that did not), ns."""
    hit, miss = [], []
    clock = time.perf_counter_ns
    for md in batches:
        md["ts_recv_ns"] = time.time_ns()  # fresh book: a long run must not age past max_book_age_ms
        t0 = clock()
        view.update(md)
        strategy.on_market(md, sink)  # type: ignore[attr-defined]
        view.clear_touched()
        intents = sink.take()
        t1 = clock()
        (hit if len(intents) else miss).append(t1 - t0)
        if len(intents):
            after(intents.copy())
    return hit, miss


def bench_arbitrage(n: int) -> dict:
    clock = LiveClock()
    view, sink = MarketView(2), IntentSink(clock)
    arb = CrossArbitrage(ARB, FEES, {1: (B, X)}, view, OrderIds(1, new_run_id(clock.now_ns())), clock)
    hit, _ = _time_ours(arb, view, sink, books(n, True, clock.now_ns()), lambda i: arb.on_event(fills(i), sink))
    _, miss = _time_ours(arb, view, sink, books(n, False, clock.now_ns()), lambda i: None)
    naive_hit, naive_miss = [], []
    for edge, into in ((True, naive_hit), (False, naive_miss)):
        naive = NaiveArb()
        for md in books(n, edge, clock.now_ns()):
            t0 = time.perf_counter_ns()
            out = [x for rec in md for x in naive.on_record({k: rec[k] for k in MARKET_DATA.names})]
            into.append(time.perf_counter_ns() - t0)
            assert bool(out) == edge
    return {"ours_fire": pct(hit), "ours_no_fire": pct(miss), "naive_fire": pct(naive_hit),
            "naive_no_fire": pct(naive_miss)}


def bench_market_making(n: int) -> dict:
    """Book moves beyond requote_bps every batch: timed market batch -> cancel intents."""
    clock = LiveClock()
    view, sink = MarketView(2), IntentSink(clock)
    mm = MarketMaker(MM, B, (1,), view, OrderIds(2, new_run_id(clock.now_ns())), clock)

    def answer(intents: np.ndarray) -> None:
        """The gate's acks: CANCELED for cancels (MM then requotes), ACK for new quotes."""
        while len(intents):
            ev, cancel = fills(intents), intents["action"] == Action.CANCEL
            ev["kind"] = np.where(cancel, ExecKind.CANCELED, ExecKind.ACK)
            ev["state"] = np.where(cancel, OrderState.CANCELED, OrderState.ACK)
            mm.on_event(ev, sink)
            intents = sink.take().copy()

    batches = []
    for i in range(n):
        rec = np.zeros(1, MARKET_DATA)
        mid = 100.0 + (i % 2) * 0.1
        rec["venue"], rec["instrument"], rec["kind"], rec["ts_recv_ns"] = B, 1, Kind.BBO, clock.now_ns()
        rec["price"], rec["price2"], rec["qty"], rec["qty2"] = mid - 0.05, mid + 0.05, 1.0, 1.0
        batches.append(rec)
    hit, miss = _time_ours(mm, view, sink, batches, answer)
    assert not miss, "every batch moves the book beyond requote_bps"
    return {"ours_requote": pct(hit)}


def _naive_rows(md: np.ndarray) -> list[dict]:
    return [dict(zip(MARKET_DATA.names, row, strict=True)) for row in md.tolist()]


def bench_naive_tuples(n: int) -> dict:
    """A fairer naive baseline: the same dict strategy, records converted with one tolist() per batch."""
    samples = []
    naive = NaiveArb()
    for md in books(n, True, time.time_ns()):
        t0 = time.perf_counter_ns()
        out = [x for rec in _naive_rows(md) for x in naive.on_record(rec)]
        samples.append(time.perf_counter_ns() - t0)
        assert out
    return pct(samples)


def bench_batches(n: int, size: int = 256) -> dict:
    """Catch-up throughput: ``size``-record batches (4 books, no edge), ours vs naive tolist, records/s."""
    clock = LiveClock()
    view, sink = MarketView(2), IntentSink(clock)
    arb = CrossArbitrage(ARB, FEES, {1: (B, X), 2: (B, X)}, view, OrderIds(1, new_run_id(clock.now_ns())), clock)
    md = np.concatenate(books(size // 2, False, clock.now_ns(), instruments=2))
    naive = NaiveArb()
    t0 = time.perf_counter_ns()
    for _ in range(n):
        view.update(md)
        arb.on_market(md, sink)
        view.clear_touched()
    t1 = time.perf_counter_ns()
    for _ in range(n):
        for rec in _naive_rows(md):
            naive.on_record(rec)
    t2 = time.perf_counter_ns()
    assert not len(sink)
    return {"batch": size, "ours_rec_per_s": round(n * size / (t1 - t0) * 1e9),
            "naive_tolist_rec_per_s": round(n * size / (t2 - t1) * 1e9)}


PROCESS_ENV = {"KAIROS__STRATEGY__ARBITRAGE__INSTRUMENTS": "[BTC-USDT, ETH-USDT]",
               "KAIROS__STRATEGY__ARBITRAGE__COOLDOWN_MS": "0", "KAIROS__PERSISTER__ENABLED": "false",
               "KAIROS__LOGGING__JSON_FILES": "false", "KAIROS__LOGGING__LEVEL": "WARNING",
               "KAIROS__STRATEGY__RECOVER_ON_START": "false"}  # the bench plays the gate: no gate state to settle


def _pair(inst: int, ts: int) -> tuple[np.ndarray, np.ndarray]:
    """One opportunity on ``inst`` as a Binance record and an OKX record (two rings)."""
    md = books(1, True, ts)[0]
    md["instrument"] = inst
    return md[:1].copy(), md[1:].copy()


def _engine_rings(prefix: str) -> tuple[StatusBoard, RingSet, dict[str, str]]:
    """The status board and the supervisor's ring set under a fresh prefix."""
    env = {**os.environ, **PROCESS_ENV, "KAIROS__SHM_PREFIX": prefix}
    rings = RingSet(ring_specs(config.load(env=env)), prefix)
    rings.create()
    return StatusBoard.create(prefix), rings, env


GATE_STATE: Final = gatestate.GateState(reconciled=True, venues_reconciled=["binance", "okx"])


class GateState:
    """The bench plays the gate: its state blob says both venues are reconciled (the strategies trade
    only those), rewritten every 0.5 s like the gate's so it never looks stale."""

    def __init__(self, prefix: str) -> None:
        self._prefix, self._writer, self._stop = prefix, GateStateWriter(prefix), threading.Event()
        self._writer.write(GATE_STATE)
        self._thread = threading.Thread(target=self._run, name="bench-gate-state", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._writer.write(GATE_STATE)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._writer.close()
        GateStateReader.unlink(self._prefix)


def bench_host(n: int) -> dict:
    """The host's duty cycle in this process on real rings: two md records in -> two intents published.

    ``duty_cycle``: the whole ``do_work``; ``receipt_to_intent``: each leg's ``ts_created_ns`` minus the
    records' ``ts_recv_ns``, stamped just before the bench publishes them (the pipeline's to_intent
    stage without the feed's parse and the wake-up)."""
    prefix = f"kairos-b{os.getpid()}-{uuid.uuid4().hex[:6]}"
    board, rings, env = _engine_rings(prefix)
    gate_state = GateState(prefix)
    host = StrategyHost.build(config.load(env=env), board.claim("strategy"))
    host.do_work()  # the first timer tick reads the gate state: both venues open
    md = {B: rings["md.binance"].producer(), X: rings["md.okx"].producer()}
    events, gate, samples, decided = rings["events"].producer(), rings["intents"].consumer("gate"), [], []
    supervisor = rings["events"].consumer("supervisor")  # the other events reader: keep it drained
    try:
        for i in range(n):
            pair, ts = _pair(1 + i % 2, 0), time.time_ns()  # stamped as received after they are built
            for rec in pair:
                rec["ts_recv_ns"] = ts
                md[int(rec["venue"][0])].publish(rec)
            t0 = time.perf_counter_ns()
            host.do_work()
            samples.append(time.perf_counter_ns() - t0)
            intents = gate.read(8)
            assert len(intents) == 2
            decided.extend((intents["ts_created_ns"] - intents["ts_origin_ns"]).tolist())
            events.publish(fills(intents))
            host.do_work()
            supervisor.read(64)
    finally:
        host.on_close()
        gate_state.close()
        rings.close()
        rings.unlink()
        board.close()
        StatusBoard.unlink(prefix)
    return {"duty_cycle": pct(samples), "receipt_to_intent": pct(decided)}


class RingPath:
    """md ring -> `python -m procs.strategy` -> intents ring (supervisor's ring set); the bench is feed and gate."""

    def __init__(self) -> None:
        self.prefix = f"kairos-b{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.board, self.rings, env = _engine_rings(self.prefix)
        self.gate_state = GateState(self.prefix)
        self.child = subprocess.Popen([sys.executable, "-m", "procs.strategy"], cwd=ROOT, env=env)
        self.md = {B: self.rings["md.binance"].producer(), X: self.rings["md.okx"].producer()}
        self.events, self.gate = self.rings["events"].producer(), self.rings["intents"].consumer("gate")
        self.supervisor = self.rings["events"].consumer("supervisor")  # the other events reader
        self.waiter = Waiter([self.gate], timeout_s=0.05)

    def wait_running(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.child.poll() is None:
            if any(r.role == "strategy" and r.state == 2 for r in self.board.snapshot()):
                return
            time.sleep(0.01)
        raise RuntimeError(f"strategy process did not reach RUNNING (exit code {self.child.poll()})")

    def trip(self, i: int) -> int | None:
        """One opportunity; ns from publishing it to reading both legs (None if they never came)."""
        ts = time.time_ns()
        cheap, rich = _pair(1 + i % 2, ts)
        self.md[B].publish(cheap)
        self.md[X].publish(rich)
        got, deadline = [], time.monotonic() + 1.0
        while sum(map(len, got)) < 2 and time.monotonic() < deadline:
            arr = self.gate.read(8)
            got.append(arr) if len(arr) else self.waiter.idle(0)
        if sum(map(len, got)) < 2:
            return None
        latency = time.time_ns() - ts
        self.events.publish(fills(np.concatenate(got)))
        self.supervisor.read(64)
        return latency

    def histograms(self) -> dict:
        row = next(r for r in self.board.snapshot() if r.role == "strategy")
        return {k: {"p50": round(v.p50 / 1000, 1), "p99": round(v.p99 / 1000, 1)} for k, v in row.histograms.items()}

    def close(self) -> None:
        self.child.terminate()
        self.child.wait(timeout=10)
        self.waiter.close()
        self.gate_state.close()
        self.rings.close()
        self.rings.unlink()
        self.board.close()
        StatusBoard.unlink(self.prefix)


def _queue_child(inq: mp.Queue, outq: mp.Queue) -> None:
    naive = NaiveArb()
    while (rec := inq.get()) is not None:
        for intent in naive.on_record(rec):
            outq.put(intent)


class QueuePath:
    """Baseline transport: the naive strategy in a child process fed by multiprocessing.Queue."""

    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self.inq, self.outq = ctx.Queue(), ctx.Queue()
        self.child = ctx.Process(target=_queue_child, args=(self.inq, self.outq), daemon=True)
        self.child.start()

    def trip(self, i: int) -> int | None:
        ts = time.time_ns()
        for part in _pair(1 + i % 2, ts):
            self.inq.put(_naive_rows(part)[0])
        try:
            self.outq.get(timeout=1.0), self.outq.get(timeout=1.0)
        except queue.Empty:
            return None
        return time.time_ns() - ts

    def close(self) -> None:
        self.inq.put(None)
        self.child.join(timeout=10)
        if self.child.is_alive():
            self.child.kill()


def bench_process(n: int, pace_s: float = 0.001) -> dict:
    """Both paths live at once, trips interleaved so machine noise hits both alike."""
    paths: dict[str, RingPath | QueuePath] = {}
    try:
        paths["ring_strategy_process"] = RingPath()
        paths["mp_queue_naive"] = QueuePath()
        paths["ring_strategy_process"].wait_running()  # type: ignore[union-attr]
        for i in range(20):
            for path in paths.values():
                path.trip(i)
        samples: dict[str, list[int]] = {name: [] for name in paths}
        misses = dict.fromkeys(paths, 0)
        for i in range(n):
            for name, path in paths.items():
                latency = path.trip(i)
                if latency is None:
                    misses[name] += 1
                else:
                    samples[name].append(latency)
                time.sleep(pace_s)
        out = {name: {"round_trip": pct(samples[name]), "misses": misses[name]} for name in paths}
        out["ring_strategy_process"]["host_histograms_us"] = paths["ring_strategy_process"].histograms()
        return out
    finally:
        for path in paths.values():
            path.close()


def ratio(baseline: dict, ours: dict, key: str = "p50_us") -> float:
    return round(baseline[key] / ours[key], 2) if ours.get(key) else 0.0


def run(quick: bool) -> dict:
    n_in, n_proc = (5_000, 300) if quick else (50_000, 3_000)
    arb, mm, fair = bench_arbitrage(n_in), bench_market_making(n_in), bench_naive_tuples(n_in)
    batches, host = bench_batches(n_in // 50), bench_host(n_in // 5)
    process = bench_process(n_proc)
    proc, base = process["ring_strategy_process"], process["mp_queue_naive"]
    return {
        "in_process": {"arbitrage": arb, "market_making": mm, "naive_tolist_fire": fair, "batches": batches,
                       "host_duty_cycle_fire": host["duty_cycle"], "host_receipt_to_intent": host["receipt_to_intent"]},
        "process": process,
        "ratios": {
            "arb_fire_vs_naive_p50": ratio(arb["naive_fire"], arb["ours_fire"]),
            "arb_fire_vs_naive_tolist_p50": ratio(fair, arb["ours_fire"]),
            "arb_no_fire_vs_naive_p50": ratio(arb["naive_no_fire"], arb["ours_no_fire"]),
            "batch_throughput_vs_naive_tolist": round(batches["ours_rec_per_s"] / batches["naive_tolist_rec_per_s"], 2),
            "process_vs_mp_queue_p50": ratio(base["round_trip"], proc["round_trip"]),
            "process_vs_mp_queue_p99": ratio(base["round_trip"], proc["round_trip"], "p99_us"),
        },
    }


def main() -> int:
    quick = "--quick" in sys.argv
    result = run(quick)
    print(json.dumps(result, indent=None if "--json" in sys.argv else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
