"""Gate latency and risk-check cost, each against a baseline measured in the same run.

``python -m scripts.bench gate [--json] [--quick]``. Three measurements:

- ``check``: one pre-trade verdict on an order that passes every rule (all rules evaluated).
  Ours: `PreTrade.check` on the flat-list `RiskState`. Baseline: the same rules written the usual
  way, with Decimal arithmetic, dicts keyed by (venue, symbol) and a sliding-window rate limit.
- ``gate``: intent in -> request handed to the executor, in this process on real rings. Ours: one
  `GateAgent` duty cycle (ring poll, decode, dedupe, risk, journal write, OrderRequest, submit to
  the paper executor, timed at its ``submit``); then a buy and a sell in one batch (an arbitrage
  pair), timed to the second submit. Baseline: the same steps done naively (fields read
  one by one off the numpy record into a dict, Decimal checks, json journal line, submit).
- ``process``: a round trip through a real gate process: intent ring -> ``python -m procs.gate``
  (paper, latency 0) -> ACK on the events ring. Baseline: the naive gate in a child process fed and
  answered through ``multiprocessing.Queue``. Trips alternate, paced 1 ms, so noise hits both alike.
  The gate's own histogram (intent read -> submit, log2 buckets) is reported beside it.

Percentiles are in microseconds; ratios are baseline / ours (> 1: ours is faster).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from kairos import config
from kairos.execution.base import OrderRequest, SymbolFilters
from kairos.gate.agent import GateAgent
from kairos.gate.snapshot import GateStateReader
from kairos.instruments import InstrumentTable
from kairos.records import MARKET_DATA, ORDER_INTENT, ExecKind, Kind, OrderType, Side, Tif, Venue
from kairos.ring import Overflow, Ring, Waiter
from kairos.risk import Grid, PreTrade, RiskState
from kairos.sim.local import venue_sim
from kairos.status import StatusBoard
from kairos.supervisor.rings import RingSet, ring_specs

ROOT = Path(__file__).resolve().parent.parent
ENV = {"KAIROS__PERSISTER__ENABLED": "false", "KAIROS__LOGGING__JSON_FILES": "false",
       "KAIROS__LOGGING__LEVEL": "WARNING", "KAIROS__EXECUTION__PAPER_LATENCY_MS": "0",
       "KAIROS__RISK__MAX_ORDERS_PER_SEC": "100000"}


QTY = 0.05
RULES = {"tick": Decimal("0.01"), "step": Decimal("0.00001"), "min_qty": Decimal("0.0001"),
         "min_notional": Decimal("5")}
"""The simulator's BTCUSDT rules, applied by the baseline as by the gate."""


def pct(ns: list[int]) -> dict[str, float]:
    a = np.asarray(ns, dtype=np.float64) / 1000.0
    return {"n": int(a.size), "p50_us": round(float(np.percentile(a, 50)), 2),
            "p99_us": round(float(np.percentile(a, 99)), 2)}


def intent(i: int, buy: bool) -> np.ndarray:
    """A crossing IOC buy or sell of 0.05 BTC (the venue's 5 USDT minimum notional) on Binance; callers
    alternate sides to stay flat."""
    rec = np.zeros(1, ORDER_INTENT)
    rec["ts_created_ns"] = rec["ts_origin_ns"] = time.time_ns()
    rec["price"], rec["qty"], rec["client_order_id"] = (101.0 if buy else 100.0), QTY, f"b{i}x{os.getpid()}".encode()
    rec["instrument"], rec["venue"], rec["side"] = 1, Venue.BINANCE, Side.BUY if buy else Side.SELL
    rec["order_type"], rec["tif"], rec["action"] = OrderType.LIMIT, Tif.IOC, 1
    return rec


class NaiveGate:
    """The baseline: the gate's rules as they are usually first written (Decimal, dicts, per-field reads)."""

    def __init__(self, journal: Path) -> None:
        self.limits = {k: Decimal(str(v)) for k, v in {"qty": 1.0, "notional": 50000.0, "position": 2.0,
                                                        "gross": 200000.0, "band": 200.0, "fee": 10.0}.items()}
        self.marks = {("binance", "BTCUSDT"): {"bid": Decimal("100"), "ask": Decimal("101")}}
        self.positions: dict[tuple[str, str], Decimal] = {}
        self.orders: dict[str, dict[str, Any]] = {}   # open orders (IOC ones close at once: none stay)
        self.seen: set[str] = set()
        self.balances = {"binance": {"USDT": Decimal("100000"), "BTC": Decimal("1")}}
        self.sent: deque[float] = deque()
        self.journal = open(journal, "a")  # noqa: SIM115 - kept open like the real journal
        self.submitted: list[OrderRequest] = []

    def check(self, o: dict[str, Any]) -> str:
        key = (o["venue"], o["symbol"])
        price, qty = Decimal(str(o["price"])), Decimal(str(o["qty"]))
        book = self.marks.get(key)
        if book is None:
            return "NO_MARK"
        mark = (book["bid"] + book["ask"]) / 2
        if price % RULES["tick"] or qty % RULES["step"] or qty < RULES["min_qty"]:
            return "FILTER"
        if price * qty < RULES["min_notional"] or qty > self.limits["qty"] or price * qty > self.limits["notional"]:
            return "SIZE"
        if abs(price - mark) / mark * 10000 > self.limits["band"]:
            return "PRICE_BAND"
        pos = self.positions.get(key, Decimal(0))
        pending = sum((x["qty"] for x in self.orders.values() if x["side"] == o["side"]), Decimal(0))
        worst = pos + pending + qty if o["side"] == "BUY" else pos - pending - qty
        gross = sum(abs(p) * (self.marks[k]["bid"] + self.marks[k]["ask"]) / 2 for k, p in self.positions.items())
        if abs(worst) > self.limits["position"] or gross + abs(worst) * mark > self.limits["gross"]:
            return "EXPOSURE"
        if len(self.orders) >= 50:
            return "MAX_OPEN_ORDERS"
        need = price * qty * (1 + self.limits["fee"] / 10000) if o["side"] == "BUY" else qty
        if self.balances[o["venue"]]["USDT" if o["side"] == "BUY" else "BTC"] < need:
            return "INSUFFICIENT_BALANCE"
        now = time.monotonic()
        while self.sent and self.sent[0] < now - 1.0:
            self.sent.popleft()
        return "ORDER_RATE" if len(self.sent) >= 100000 else ""

    def handle(self, rec: np.void) -> str:
        """Decode field by field, check, journal, submit; returns '' when sent (else the reason)."""
        o = {"coid": rec["client_order_id"].decode(), "venue": "binance", "symbol": "BTCUSDT",
             "side": "BUY" if int(rec["side"]) == 1 else "SELL", "price": float(rec["price"]),
             "qty": float(rec["qty"]), "ts_origin": int(rec["ts_origin_ns"])}
        if o["coid"] in self.seen:
            return "DUPLICATE_ORDER"
        reason = self.check(o)
        if reason:
            return reason
        self.seen.add(o["coid"])
        self.journal.write(json.dumps(o) + "\n")
        self.journal.flush()
        self.sent.append(time.monotonic())
        self.submitted.append(OrderRequest(o["coid"], 1, o["symbol"], Side.BUY if o["side"] == "BUY" else Side.SELL,
                                           OrderType.LIMIT, Tif.IOC, o["price"], o["qty"], o["ts_origin"]))
        return ""


def bench_check(n: int) -> dict[str, Any]:
    settings = config.load(env=ENV)
    grid = Grid(InstrumentTable(settings.instruments))
    s = RiskState.empty(grid, 100000)
    k = grid.key(Venue.BINANCE, 1)
    s.bid[k], s.ask[k], s.balance[grid.quote_slot[k]], s.balance[grid.base_slot[k]] = 100.0, 101.0, 1e5, 1.0
    check, now = PreTrade(settings.risk, [0.0, 10.0, 10.0]).check, time.monotonic_ns()
    s.mark_ns[k] = now
    s.rules.load(k, SymbolFilters(RULES["tick"], RULES["step"], RULES["min_qty"],
                                  min_notional_d=RULES["min_notional"]))
    t0 = time.perf_counter_ns()
    for i in range(n):
        assert not check(s, 1, k, 1 + (i & 1), 1, 100.5, QTY, False, now)
    ours = (time.perf_counter_ns() - t0) / n
    with tempfile.TemporaryDirectory() as tmp:
        naive = NaiveGate(Path(tmp) / "j")
        o = {"venue": "binance", "symbol": "BTCUSDT", "side": "BUY", "price": 100.5, "qty": QTY}
        t0 = time.perf_counter_ns()
        for i in range(n):
            o["side"] = "BUY" if i & 1 else "SELL"
            assert not naive.check(o)
        base = (time.perf_counter_ns() - t0) / n
        naive.journal.close()
    return {"ours_ns": round(ours), "naive_decimal_ns": round(base), "ratio": round(base / ours, 1)}


class Engine:
    """Supervisor-style rings + status board under a fresh prefix, a quiet simulator (the paper venues'
    order rules come from its REST) and the env for a gate child."""

    def __init__(self) -> None:
        self.prefix = f"kairos-b{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.tmp = tempfile.TemporaryDirectory()
        self.sim = ExitStack()
        self.env = {**os.environ, **ENV, "KAIROS__SHM_PREFIX": self.prefix, "KAIROS__RISK__JOURNAL_DIR": self.tmp.name,
                    **self.sim.enter_context(venue_sim())}
        self.settings = config.load(env=self.env)
        self.rings = RingSet(ring_specs(self.settings), self.prefix)
        self.rings.create()
        self.board = StatusBoard.create(self.prefix)
        self.intents = self.rings["intents"].producer()
        self.readers = [self.rings["events"].consumer(c) for c in ("strategy", "supervisor")]
        md = np.zeros(1, MARKET_DATA)
        md["kind"], md["instrument"], md["venue"], md["price"], md["price2"] = Kind.BBO, 1, Venue.BINANCE, 100.0, 101.0
        self.rings["md.binance"].producer().publish(md)

    def events(self) -> np.ndarray:
        got = self.readers[0].read(256)
        self.readers[1].read(256)
        return got

    def close(self) -> None:
        self.rings.close()
        self.rings.unlink()
        self.board.close()
        StatusBoard.unlink(self.prefix)
        GateStateReader.unlink(self.prefix)
        self.tmp.cleanup()
        self.sim.close()


def compare(ours: list[int], base: list[int]) -> dict[str, Any]:
    a, b = pct(ours), pct(base)
    return {"ours": a, "baseline": b, "ratio_p50": round(b["p50_us"] / a["p50_us"], 2),
            "ratio_p99": round(b["p99_us"] / a["p99_us"], 2)}


def bench_gate(n: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """In-process: ring -> GateAgent duty cycle -> paper submit, against the naive path on a ring too;
    one intent per batch, then an arbitrage-like pair (a buy and a sell) in one batch, timed to the
    second leg's submit (the pair's ``first`` submit is reported beside it)."""
    eng = Engine()
    agent = GateAgent(eng.settings, eng.board.claim("gate"))
    side = Ring.create("bench", ORDER_INTENT, 1024, Overflow.BLOCK, ("naive",), eng.prefix)
    naive = NaiveGate(Path(eng.tmp.name) / "naive.jsonl")
    try:
        agent.on_start()
        stamps = _stamp_submits(agent)
        ours, base, pair, pair_first, pair_base = [], [], [], [], []
        reader, producer = side.consumer("naive"), side.producer()
        for i in range(n):
            _ours(agent, eng, stamps, [intent(6 * i, i % 2 == 0)], ours)
            base.append(_naive(naive, reader, producer, [intent(6 * i + 1, i % 2 == 0)]))
            _ours(agent, eng, stamps, [intent(6 * i + 2, True), intent(6 * i + 3, False)], pair, pair_first)
            pair_base.append(_naive(naive, reader, producer, [intent(6 * i + 4, True), intent(6 * i + 5, False)]))
    finally:
        naive.journal.close()
        side.close()
        Ring.unlink("bench", eng.prefix)
        agent.on_close()
        eng.close()
    return compare(ours, base), compare(pair, pair_base) | {"first_leg": pct(pair_first)}


def _ours(agent: GateAgent, eng: Engine, stamps: list[int], recs: list[np.ndarray], out: list[int],
          first: list[int] | None = None) -> None:
    """One batch through a duty cycle (three where it straddles the ring's wrap: the first leg's reports
    hold the second back for a cycle): ns from its start to the last submit (and to the first)."""
    before = len(stamps)
    eng.intents.publish(np.concatenate(recs))
    t0 = time.perf_counter_ns()
    for _ in range(3):
        agent.do_work()
        if len(stamps) == before + len(recs):
            break
    else:
        raise RuntimeError(f"{before + len(recs) - len(stamps)} intent(s) not submitted (rejected?)")
    out.append(stamps[-1] - t0)
    if first is not None:
        first.append(stamps[before] - t0)
    agent.do_work()
    eng.events()


def _naive(naive: NaiveGate, reader: Any, producer: Any, recs: list[np.ndarray]) -> int:
    producer.publish(np.concatenate(recs))
    t0 = time.perf_counter_ns()
    for rec in reader.read(len(recs)):
        if naive.handle(rec):
            raise RuntimeError("the baseline refused an intent")
    return time.perf_counter_ns() - t0


def _stamp_submits(agent: GateAgent) -> list[int]:
    """Timing hook on the Binance paper executor's submit; runs the agent until it takes intents."""
    stamps: list[int] = []
    paper = agent._executors[Venue.BINANCE]
    submit = paper.submit
    paper.submit = lambda req: (stamps.append(time.perf_counter_ns()), submit(req))
    while not agent._ready:
        agent.do_work()
    return stamps


def _queue_gate(inq: mp.Queue, outq: mp.Queue, journal: str) -> None:
    gate = NaiveGate(Path(journal))
    while True:
        item = inq.get()
        if item is None:
            return
        rec = np.frombuffer(item, ORDER_INTENT)[0]
        outq.put((rec["client_order_id"], gate.handle(rec)))


def bench_process(n: int) -> dict[str, Any]:
    """Round trips through procs.gate (rings) and through the mp.Queue-fed naive gate, alternating."""
    eng = Engine()
    child = subprocess.Popen([sys.executable, "-m", "procs.gate"], cwd=ROOT, env=eng.env)
    inq, outq = mp.Queue(), mp.Queue()
    qproc = mp.Process(target=_queue_gate, args=(inq, outq, str(Path(eng.tmp.name) / "q.jsonl")), daemon=True)
    qproc.start()
    waiter = Waiter(eng.readers[:1], timeout_s=0.05)
    try:
        _wait_reconciled(eng.prefix)
        ours, base = [], []
        for i in range(n):
            ours.append(_ring_trip(eng, waiter, intent(2 * i, i % 2 == 0)))
            base.append(_queue_trip(inq, outq, intent(2 * i + 1, i % 2 == 0)))
            time.sleep(0.001)
        own = next(r for r in eng.board.snapshot() if r.role == "gate").histograms["gate_latency_ns"]
    finally:
        inq.put(None)
        qproc.join(5)
        child.terminate()
        child.wait(10)
        waiter.close()
        eng.close()
    return compare(ours, base) | {"gate_own_read_to_submit_us": {
        "p50": round(own.p50 / 1000, 1), "p99": round(own.p99 / 1000, 1), "n": own.count}}


def _wait_reconciled(prefix: str) -> None:
    reader = GateStateReader(prefix)
    try:
        deadline = time.monotonic() + 30
        while not (reader.read() or {}).get("reconciled"):
            if time.monotonic() > deadline:
                raise RuntimeError("the gate did not reconcile within 30 s")
            time.sleep(0.01)
    finally:
        reader.close()


def _queue_trip(inq: mp.Queue, outq: mp.Queue, rec: np.ndarray) -> int:
    t0 = time.perf_counter_ns()
    inq.put(rec.tobytes())
    _, refused = outq.get(timeout=5)
    if refused:
        raise RuntimeError(f"the baseline gate refused an intent: {refused}")
    return time.perf_counter_ns() - t0


def _ring_trip(eng: Engine, waiter: Waiter, rec: np.ndarray) -> int:
    """ns from publishing an intent to reading its ACK on the events ring."""
    t0 = time.perf_counter_ns()
    eng.intents.publish(rec)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        got = eng.events()
        if any(e["kind"] == ExecKind.ACK for e in got):
            return time.perf_counter_ns() - t0
        if not len(got):
            waiter.idle(0)
    raise RuntimeError("no ACK from the gate within 5 s")


def run(quick: bool) -> dict[str, Any]:
    n_check, n_gate, n_proc = (20_000, 500, 200) if quick else (200_000, 5_000, 2_000)
    check, (gate, pair), proc = bench_check(n_check), bench_gate(n_gate), bench_process(n_proc)
    rows = [{"what": "risk check (ns)", "ours": check["ours_ns"], "baseline": check["naive_decimal_ns"],
             "ratio": check["ratio"]}]
    for label, result in (("gate in-process", gate), ("gate pair, 2nd leg", pair), ("RTT via process", proc)):
        for q in ("p50", "p99"):
            rows.append({"what": f"{label} {q} (us)", "ours": result["ours"][f"{q}_us"],
                         "baseline": result["baseline"][f"{q}_us"], "ratio": result[f"ratio_{q}"]})
    return {"rows": rows, "gate_pair_first_leg_us": pair["first_leg"],
            "gate_own_histogram_us": proc["gate_own_read_to_submit_us"],
            "notes": ["ratios = baseline / ours (> 1: ours is faster)",
                      "gate in-process = intent ring poll -> executor.submit (naive: ring read -> per-field "
                      "decode, Decimal rules, json journal, OrderRequest)",
                      "gate pair = a buy and a sell in one ring batch -> the second submit",
                      "RTT = intent published -> ACK read; ours: rings + procs.gate (paper, latency 0); "
                      "baseline: naive gate in a child fed and answered by mp.Queue"]}


if __name__ == "__main__":
    from scripts.bench import render

    print(render("gate", run("--quick" in sys.argv)))
