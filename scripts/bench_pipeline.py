"""Tick-to-order latency through the live processes, against the same code on ``multiprocessing.Queue``.

``python -m scripts.bench pipeline [--json] [--quick]``. One run starts, side by side:

- a tick source (scripts/pipeline_ticks.py): a lean WebSocket server speaking Binance bookTicker
  and OKX bbo-tbt over real sockets, paced to the phase's rate (ticks/s over both venues), with a
  known share of ticks opening a cross-venue arbitrage;
- a quiet simulator (kairos/sim/local.py) serving only the venues' order rules, which the paper
  gates load at start as in dev;
- ring pipeline: ``procs.feed`` x2, ``procs.strategy``, ``procs.gate`` (paper, latency 0) on the
  supervisor's rings (scripts/pipeline_run.py);
- queue pipeline: the same feed, strategy and gate code in four processes joined by
  ``multiprocessing.Queue`` (scripts/pipeline_queue.py).

Phases alternate ring / queue at each rate, so load from elsewhere on the box hits both alike; only
the phase's pipeline gets ticks. Exact samples: the gate writes one ORDER_TRACE per order it hands
to its executor (feed receipt of the triggering tick, intent created, intent read, handed over);
the md record with that receipt time gives the tick's send time (``venue_seq``). Orders are both
legs of an arbitrage (pairs sharing one origin); single orders (hedges after a missed leg) are left
out and counted. The feed stage (receipt -> published) comes from the feeds' log2 histograms.
Percentiles in microseconds; ratios are queue / ring (> 1: the rings are faster).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from kairos import status
from kairos.sim.local import quiet_sim
from scripts import pipeline_ticks
from scripts.pipeline_run import QueuePipeline, RingPipeline, board_histogram, cpu_ticks, pipeline_env

RATES: Final = (10_000, 50_000)
WARMUP_NS: Final = 300_000_000
SETTLE_S: Final = 0.3
START_TIMEOUT_S: Final = 60.0
STAGES: Final = (
    ("wire", "tick sent -> feed receipt (socket, wake-up, WS frame read)"),
    ("to_intent", "feed receipt -> intent created (feed, md ring, strategy)"),
    ("to_gate", "intent created -> read by the gate (intents ring, wake-up)"),
    ("gate", "gate read -> handed to the executor (decode, risk, journal, submit)"),
    ("total", "feed receipt -> handed to the executor (the target)"),
)
TARGETS: Final = {"p50_us": 60.0, "p99_us": 250.0, "ratio": 3.0}
Pipeline = RingPipeline | QueuePipeline


@dataclass(slots=True)
class Phase:
    pipeline: str
    rate: int
    ticks: dict[str, Any]
    trace: np.ndarray
    md: np.ndarray
    feed_buckets: np.ndarray
    cpu: dict[str, float] = field(default_factory=dict)
    overruns: int = 0


class Bench:
    """A prefix, a status board, the tick source and both pipelines; `close` always cleans up."""

    def __init__(self, tmp: Path, rest_urls: dict[str, str]) -> None:
        self.tmp = tmp
        self.rest_urls = rest_urls
        self.prefix = f"kairos-bp{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.board = status.StatusBoard.create(self.prefix)
        self.pipelines: list[Pipeline] = []
        ctx = mp.get_context("spawn")
        self.ctl, self._child = ctx.Pipe()
        self.source = ctx.Process(target=pipeline_ticks.main, args=(self._child, ("ring", "queue")), daemon=True)

    def start(self) -> None:
        """Start every process, then wait (bounded) until gates, strategies and feed sockets are up."""
        self.source.start()
        ports = self._ask("ports")
        for kind in (RingPipeline, QueuePipeline):
            self.pipelines.append(kind(pipeline_env(self.prefix, self.tmp, ports, kind.name, self.rest_urls), self.tmp))
            self.pipelines[-1].start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not all(p.ready(self.board) for p in self.pipelines) or len(self._ask("connected")) < 4:
            if time.monotonic() > deadline:
                raise RuntimeError(f"pipelines not ready after {START_TIMEOUT_S} s: see the logs in {self.tmp}")
            time.sleep(0.05)

    def _ask(self, *command: object) -> Any:
        self.ctl.send(command)
        if not self.ctl.poll(START_TIMEOUT_S):
            raise RuntimeError(f"the tick source did not answer {command[0]!r}")
        return self.ctl.recv()

    def phase(self, pipeline: Pipeline, rate: int, seconds: float) -> Phase:
        """Send ``rate`` ticks/s to one pipeline for ``seconds``; collect its traces and md."""
        roles = [f"{'q.' if pipeline.name == 'queue' else ''}feed.{v}" for v in ("binance", "okx")]
        buckets = sum(board_histogram(self.prefix, r, "latency_ns") for r in roles)
        pids = {**pipeline.pids(), "tick_source": self.source.pid or 0}
        cpu0, t0, overruns = {r: cpu_ticks(p) for r, p in pids.items()}, time.monotonic(), pipeline.md_overruns
        self.ctl.send(("run", pipeline.name, rate, seconds))
        deadline = time.monotonic() + seconds + START_TIMEOUT_S
        while not self.ctl.poll(0.005):
            if not self.source.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the tick source died or hung during a {seconds} s phase")
            pipeline.drain()
        ticks = self.ctl.recv()
        if "error" in ticks:
            raise RuntimeError(f"tick source: {ticks['error']}")
        settle = time.monotonic() + SETTLE_S
        while time.monotonic() < settle:
            pipeline.drain()
            time.sleep(0.005)
        hz, elapsed = os.sysconf("SC_CLK_TCK"), time.monotonic() - t0
        cpu = {r: round(100 * (cpu_ticks(p) - cpu0[r]) / hz / elapsed) for r, p in pids.items()}
        trace, md = pipeline.collect()
        feed = sum(board_histogram(self.prefix, r, "latency_ns") for r in roles) - buckets
        return Phase(pipeline.name, rate, ticks, trace, md, feed, cpu, pipeline.md_overruns - overruns)

    def close(self) -> None:
        """Stop every child and remove every segment; each step runs even if an earlier one raised."""
        with contextlib.ExitStack() as steps:  # callbacks run last-in first-out
            steps.callback(self._unlink)
            steps.callback(self.board.close)
            steps.callback(self._stop_source)
            for pipeline in self.pipelines:
                steps.callback(pipeline.close)

    def _stop_source(self) -> None:
        if self.source.is_alive():
            self.ctl.send(("stop",))
            self.source.join(5)
        if self.source.is_alive():
            self.source.kill()
            self.source.join(5)

    def _unlink(self) -> None:
        status.StatusBoard.unlink(self.prefix)
        for leftover in Path("/dev/shm").glob(f"*{self.prefix}*"):  # doorbells, gate state: belt and braces
            leftover.unlink(missing_ok=True)


def stage_samples(phase: Phase) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Per-order stage latencies (ns) after the warm-up, both legs of each arbitrage; and counts."""
    t, start, end = phase.trace, phase.ticks["start_ns"] + WARMUP_NS, phase.ticks["end_ns"]
    t = t[(t["ts_origin_ns"] >= start) & (t["ts_origin_ns"] <= end)]
    origins, counts = np.unique(t["ts_origin_ns"], return_counts=True)
    legs = t[np.isin(t["ts_origin_ns"], origins[counts == 2])]
    origin = legs["ts_origin_ns"]
    recv = phase.md[:, 0]
    order = np.argsort(recv, kind="stable")
    at = np.minimum(np.searchsorted(recv[order], origin), max(len(recv) - 1, 0))
    found = recv[order][at] == origin if len(recv) else np.zeros(len(origin), bool)
    sent_by_source = phase.md[order][at, 1] if len(recv) else np.zeros(len(origin), np.int64)
    stages = {"wire": (origin - sent_by_source)[found], "to_intent": legs["ts_created_ns"] - origin,
              "to_gate": legs["ts_read_ns"] - legs["ts_created_ns"], "gate": legs["ts_sent_ns"] - legs["ts_read_ns"],
              "total": legs["ts_sent_ns"] - origin}
    return stages, {"orders": len(legs), "trades": len(legs) // 2, "single_orders": int((counts == 1).sum()),
                    "unjoined": int((~found).sum())}


def percentiles(ns: np.ndarray) -> dict[str, float]:
    if not len(ns):
        return {"n": 0, "p50": float("nan"), "p99": float("nan"), "p999": float("nan")}
    us = np.percentile(ns.astype(np.float64) / 1000.0, (50, 99, 99.9))
    return {"n": len(ns), "p50": round(float(us[0]), 1), "p99": round(float(us[1]), 1),
            "p999": round(float(us[2]), 1)}


def feed_estimate(buckets: np.ndarray) -> dict[str, float]:
    """The feeds' own receipt -> published histogram (log2 buckets: within a factor of two)."""
    return {"n": int(buckets.sum()), **{k: round(status.quantile(buckets, q) / 1000, 1)
                                        for k, q in (("p50", 0.5), ("p99", 0.99), ("p999", 0.999))}}


def summarise(phases: list[Phase]) -> dict[tuple[str, int], dict[str, Any]]:
    """Per (pipeline, rate): every repetition's samples pooled."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for key in dict.fromkeys((p.pipeline, p.rate) for p in phases):
        mine = [p for p in phases if (p.pipeline, p.rate) == key]
        pooled = [stage_samples(p) for p in mine]
        stages = {name: percentiles(np.concatenate([s[name] for s, _ in pooled])) for name, _ in STAGES}
        stages["feed"] = feed_estimate(sum(p.feed_buckets for p in mine))
        counts = {k: sum(c[k] for _, c in pooled) for k in pooled[0][1]} | {
            "bench_md_overruns": sum(p.overruns for p in mine)}
        ticks = sum(p.ticks["ticks"] for p in mine)
        secs = sum(p.ticks["seconds"] for p in mine)
        cpu = {r: round(float(np.mean([p.cpu[r] for p in mine]))) for r in mine[0].cpu}
        out[key] = {"stages": stages, "counts": counts, "ticks": ticks, "rate": round(ticks / secs),
                    "cpu_pct": cpu, "source": {k: mine[-1].ticks[k] for k in ("frames_per_send", "max_late_us",
                                                                               "open_fraction")}}
    return out


def report(summary: dict[tuple[str, int], dict[str, Any]], seconds: float, reps: int) -> dict[str, Any]:
    rows, ratios, targets = [], {}, {}
    for rate in RATES:
        ring, queue = summary[("ring", rate)]["stages"], summary[("queue", rate)]["stages"]
        for name in ("feed", *(n for n, _ in STAGES)):
            r, q = ring[name], queue[name]
            rows.append({"rate": rate, "stage": name + (" (log2 est.)" if name == "feed" else ""),
                         "n_ring": r["n"], "ring_p50": r["p50"], "ring_p99": r["p99"], "ring_p999": r["p999"],
                         "queue_p50": q["p50"], "queue_p99": q["p99"], "queue_p999": q["p999"],
                         "x_p50": _ratio(q["p50"], r["p50"]), "x_p99": _ratio(q["p99"], r["p99"])})
        total_r, total_q = ring["total"], queue["total"]
        for k in ("p50", "p99", "p999"):
            ratios[f"{rate // 1000}k total {k} queue/ring"] = _ratio(total_q[k], total_r[k])
        targets[f"{rate // 1000}k total p50 <= {TARGETS['p50_us']:g} us"] = _verdict(total_r["p50"], TARGETS["p50_us"])
        targets[f"{rate // 1000}k total p99 <= {TARGETS['p99_us']:g} us"] = _verdict(total_r["p99"], TARGETS["p99_us"])
        for k in ("p50", "p99"):
            x = _ratio(total_q[k], total_r[k])
            targets[f"{rate // 1000}k total {k} >= {TARGETS['ratio']:g}x queue"] = \
                f"{'met' if x >= TARGETS['ratio'] else 'MISSED'} ({x}x)"
    load = {f"{name} {rate // 1000}k": {k: v for k, v in s.items() if k != "stages"}
            for (name, rate), s in summary.items()}
    samples = {name: {str(rate): s["counts"]["orders"] for (n, rate), s in summary.items() if n == name}
               for name in ("ring", "queue")}
    notes = [f"{label}: {text}" for label, text in STAGES] + [
        "feed (log2 est.): each feed's own histogram, frame read -> batch published; estimates within 2x",
        f"{reps} phase(s) of {seconds:g} s per pipeline and rate, alternating ring/queue; first "
        f"{WARMUP_NS / 1e9:g} s of each dropped; percentiles in us; x_* = queue / ring"]
    return {"rows": rows, "ratios": ratios, "targets": targets, "load": load, "samples": samples, "notes": notes}


def _ratio(base: float, ours: float) -> float:
    return round(base / ours, 2) if ours and ours == ours and base == base else float("nan")


def _verdict(value: float, limit: float) -> str:
    return f"{'met' if value <= limit else 'MISSED'} ({value} us)"


def run(quick: bool) -> dict[str, Any]:
    seconds, reps = (1.2, 1) if quick else (5.0, 2)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="kairos-bench-pipeline-") as tmp, quiet_sim() as sim:
        bench = Bench(Path(tmp), {venue.name.lower(): sim.urls(venue).rest_url for venue in sim.hubs})
        try:
            bench.start()
            phases = [bench.phase(pipeline, rate, seconds)
                      for rate in RATES for _ in range(reps) for pipeline in bench.pipelines]
        finally:
            bench.close()
    result = report(summarise(phases), seconds, reps)
    result["box"] = {"cpus": os.cpu_count(), "load_1m_before": round(load_before, 2),
                     "load_1m_after": round(os.getloadavg()[0], 2)}
    return result


if __name__ == "__main__":
    from scripts.bench import render

    print(render("pipeline", run("--quick" in sys.argv)))
