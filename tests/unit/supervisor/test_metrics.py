"""The /metrics collector over a hand-built status board, rings, gate-state blob and ring totals,
read back through the real Prometheus text exposition."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kairos.config import InstrumentConfig
from kairos.feeds.stats import OTHER, FeedStats
from kairos.feeds.validate import CROSSED, FRAME_SIZE, JUMP, NOT_FINITE, VENUE_WIDE, Rejections
from kairos.gate.snapshot import GateStateReader, GateStateWriter
from kairos.gatestate import Balance, GateCounters, GateState, Pnl, Position
from kairos.instruments import InstrumentTable
from kairos.logs import ErrorTally
from kairos.records import EXEC_EVENT, MARKET_DATA, ORDER_TRACE, ChildState, ExecKind, Venue
from kairos.ring import Overflow
from kairos.status import StatusBoard
from kairos.supervisor.child import ChildInfo
from kairos.supervisor.metrics import EngineCollector, seconds_buckets
from kairos.supervisor.rings import RingSet, RingSpec
from kairos.supervisor.status import StatusView
from kairos.supervisor.tally import EventTally, TraceTotals
from kairos.supervisor.trace import STAGES

DASHBOARD = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "kairos.json"
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}
BLOB = asdict(GateState(
    trading_state="ACTIVE", trading_state_id=0, balances=[Balance("binance", 1, "USDT", 900.0, 100.0)],
    positions=[Position("okx", 2, "BTC-USDT", 1, -0.5, 60000.0, 0.0, 60000.0, 0.0)], pnl=Pnl(12.5, -3.0),
    counters=GateCounters(rejects_by_reason={"NO_MARK": 4, "PRICE_BAND": 1}),
    balance_pushes={"okx": {"applied": 7, "held": 1, "stale": 0, "foreign": 2, "bad": 0}}))


class Engine:
    """Everything the collector reads, under one test prefix."""

    def __init__(self, prefix: str) -> None:
        self.board = StatusBoard.create(prefix)
        specs = (RingSpec("md.binance", MARKET_DATA, 64, Overflow.OVERWRITE, ("strategy", "gate")),
                 RingSpec("trace", ORDER_TRACE, 64, Overflow.OVERWRITE, ("supervisor",)))
        self.rings = RingSet(specs, prefix)
        self.rings.create()
        self.writer = GateStateWriter(prefix)
        self.gate = GateStateReader(prefix)
        self.children: tuple[ChildInfo, ...] = ()
        view = StatusView("spawn", lambda: self.children, self.board, self.rings, self.gate, frozenset(), 10.0)
        self.trace, self.events = TraceTotals(STAGES), EventTally()
        instruments = InstrumentTable(tuple(InstrumentConfig(f"{b}-USDT", b, "USDT",
                                                             {"binance": f"{b}USDT", "okx": f"{b}-USDT"})
                                            for b in ("BTC", "ETH")))
        self.collector = EngineCollector(view, self.board, self.rings, self.gate, self.trace, self.events,
                                         instruments)

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self.collector)
        text = generate_latest(registry).decode()
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    def families(self) -> dict[str, str]:
        """Family name -> type, as Prometheus parses them."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self.collector)
        return {f.name: f.type for f in text_string_to_metric_families(generate_latest(registry).decode())}

    def close(self) -> None:
        self.writer.close()
        self.gate.close()
        self.rings.close()
        self.board.close()


@pytest.fixture
def engine(shm_prefix: str) -> Iterator[Engine]:
    eng = Engine(shm_prefix)
    try:
        yield eng
    finally:
        eng.close()
        eng.rings.unlink()
        StatusBoard.unlink(shm_prefix)
        GateStateReader.unlink(shm_prefix)


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


def child(role: str, state: ChildState, restarts: int) -> ChildInfo:
    return ChildInfo(role=role, state=state, pid=0, uptime_s=0.0, restarts=restarts, last_exit_code=None,
                     last_error="", next_attempt_s=-1.0, crash_loop=False)


def test_buckets_are_exact_log2_bounds_in_seconds() -> None:
    counts = np.zeros(64, np.uint64)
    for ns in (1023, 1024, 2047, 10**12):  # 2**10 - 1 is the first bound; 1e12 ns lies past the last
        counts[ns.bit_length()] += 1
    buckets = dict(seconds_buckets(counts))
    assert float(next(iter(buckets))) == (2**10 - 1) / 1e9
    assert buckets[str((2**10 - 1) / 1e9)] == 1  # 1023 ns <= le, 1024 ns is not
    assert buckets[str((2**11 - 1) / 1e9)] == 3
    assert buckets[str((2**39 - 1) / 1e9)] == 3
    assert buckets[str((2**40 - 1) / 1e9)] == 4  # 1e12 ns < 2**40 ns
    assert buckets["+Inf"] == 4
    assert list(buckets.values()) == sorted(buckets.values())


def test_every_family_from_board_rings_blob_and_totals(engine: Engine) -> None:
    feed = engine.board.claim("feed.binance")
    feed.counter("msgs").set(120)
    feed.counter("resyncs").set(5)
    feed.counter("resyncs.BTCUSDT").set(2)  # the feed's per-book counters carry venue symbols
    feed.counter("resyncs.ETHUSDT").set(1)
    feed.counter("resyncs.DOGEUSDT").set(1)  # not in the table: counted under "other"
    latency = feed.histogram("latency_ns")
    for ns in (1500, 1500, 5000):
        latency.record(ns)
    persister = engine.board.claim("persister")
    for name, value in (("spooled_rows", 12), ("spool_bytes", 4096), ("pg_rows", 10), ("pg_failures", 1)):
        persister.counter(name).set(value)
    engine.children = (child("gate", ChildState.BACKOFF, 2),)
    engine.rings["md.binance"].producer().publish(np.zeros(5, MARKET_DATA))
    engine.writer.write(BLOB)
    trace = np.zeros(3, ORDER_TRACE)
    trace["ts_origin_ns"] = 10**18
    trace["ts_created_ns"] = 10**18 + 2_000
    trace["ts_read_ns"] = 10**18 + 5_000
    trace["ts_sent_ns"] = 10**18 + np.array([9_000, 9_000, 3_000_000])
    trace["venue"] = (Venue.BINANCE, Venue.BINANCE, Venue.OKX)
    engine.trace.add(trace)
    events = np.zeros(4, EXEC_EVENT)
    events["venue"] = (Venue.BINANCE, Venue.BINANCE, Venue.OKX, Venue.NONE)
    events["kind"] = (ExecKind.ACK, ExecKind.FILL, ExecKind.REJECT, ExecKind.STATE)
    engine.events.add(events)

    got = engine.scrape()
    assert got[key("kairos_process_up", role="gate")] == 0.0
    assert got[key("kairos_process_restarts_total", role="gate")] == 2.0
    assert got[key("kairos_process_up", role="feed.binance")] == 1.0  # this process holds the row: alive
    assert got[key("kairos_feed_messages_total", venue="binance")] == 120.0
    assert got[key("kairos_book_resyncs_total", venue="binance", instrument="BTC-USDT")] == 2.0
    assert got[key("kairos_book_resyncs_total", venue="binance", instrument="ETH-USDT")] == 1.0
    assert got[key("kairos_book_resyncs_total", venue="binance", instrument="other")] == 2.0
    assert got[key("kairos_persister_spool_bytes")] == 4096.0
    assert got[key("kairos_persister_rows_total", table="spooled")] == 12.0
    assert got[key("kairos_persister_rows_total", table="pg")] == 10.0
    assert key("kairos_persister_rows_total", table="pg_failures") not in got
    stage = {"role": "feed.binance", "stage": "latency"}
    assert got[key("kairos_stage_latency_seconds_bucket", **stage, le=str((2**11 - 1) / 1e9))] == 2.0
    assert got[key("kairos_stage_latency_seconds_bucket", **stage, le="+Inf")] == 3.0

    assert got[key("kairos_tick_to_order_seconds_count")] == 3.0
    assert math.isclose(got[key("kairos_tick_to_order_seconds_sum")], (9_000 + 9_000 + 3_000_000) / 1e9)
    assert got[key("kairos_tick_to_order_seconds_bucket", le=str((2**14 - 1) / 1e9))] == 2.0
    assert got[key("kairos_order_stage_seconds_count", stage="to_intent")] == 3.0
    assert math.isclose(got[key("kairos_order_stage_seconds_sum", stage="to_gate")], 9_000 / 1e9)
    assert got[key("kairos_orders_total", venue="binance", outcome="sent")] == 2.0
    assert got[key("kairos_orders_total", venue="okx", outcome="sent")] == 1.0
    assert got[key("kairos_orders_total", venue="binance", outcome="ack")] == 1.0
    assert got[key("kairos_orders_total", venue="binance", outcome="fill")] == 1.0
    assert got[key("kairos_orders_total", venue="okx", outcome="reject")] == 1.0
    assert not any(labels and dict(labels).get("outcome") == "state" for _, labels in got)

    assert got[key("kairos_ring_lag", ring="md.binance", consumer="gate")] == 5.0
    assert got[key("kairos_ring_overruns_total", ring="trace", consumer="supervisor")] == 0.0
    assert got[key("kairos_rejects_total", reason="NO_MARK")] == 4.0
    assert got[key("kairos_position", venue="okx", instrument="BTC-USDT")] == -0.5
    assert got[key("kairos_pnl", kind="realized_today")] == 12.5
    assert got[key("kairos_pnl", kind="unrealized")] == -3.0
    assert got[key("kairos_balance", venue="binance", asset="USDT")] == 1000.0
    assert got[key("kairos_balance_pushes_total", venue="okx", outcome="applied")] == 7.0
    assert got[key("kairos_balance_pushes_total", venue="okx", outcome="foreign")] == 2.0


def test_feed_rejections_by_venue_instrument_and_reason(engine: Engine) -> None:
    """Named exactly as the feed names its board counters (the real FeedStats and Rejections)."""
    row = engine.board.claim("feed.okx")
    stats = FeedStats(row)
    rejections = Rejections(ErrorTally(logging.getLogger("test")), {1: "BTC-USDT", 2: "ETH-USDT", 9: "DOGE-USDT"})
    for instrument, reason, times in ((1, CROSSED, 3), (1, JUMP, 1), (2, NOT_FINITE, 2), (VENUE_WIDE, FRAME_SIZE, 1),
                                      (9, CROSSED, 4)):  # DOGE: not in the collector's table
        for _ in range(times):
            rejections(instrument, reason, "test")
    for name, n in stats.rejection_counters(rejections).items():
        row.counter(name).set(n)
    row.counter("rejected").set(rejections.total + 5)  # 5 more that found no room on the row (rej.other)
    row.counter(OTHER).set(5)
    got = engine.scrape()
    rejects = {(labels["instrument"], labels["reason"]): n for name, labels, n in
               ((name, dict(labels), n) for (name, labels), n in got.items()) if name == "kairos_feed_rejects_total"}
    assert rejects == {("BTC-USDT", "crossed"): 3.0, ("BTC-USDT", "jump"): 1.0, ("ETH-USDT", "not_finite"): 2.0,
                       ("*", "frame_size"): 1.0, ("other", "other"): 9.0}
    assert got[key("kairos_feed_rejects_total", venue="okx", instrument="BTC-USDT", reason="crossed")] == 3.0
    assert sum(rejects.values()) == rejections.total + 5


def test_families_exist_before_any_data(engine: Engine) -> None:
    assert set(engine.families()) >= {
        "kairos_process_up", "kairos_process_restarts", "kairos_tick_to_order_seconds", "kairos_order_stage_seconds",
        "kairos_stage_latency_seconds", "kairos_orders", "kairos_rejects", "kairos_feed_messages",
        "kairos_book_resyncs", "kairos_feed_rejects", "kairos_ring_lag", "kairos_ring_overruns", "kairos_position",
        "kairos_pnl", "kairos_balance", "kairos_balance_pushes",
        "kairos_persister_spool_bytes", "kairos_persister_rows", "kairos_metrics_errors"}


@pytest.mark.parametrize("blob", [{"counters": {}}, {**BLOB, "positions": [{"venue": "okx"}]},
                                  {**BLOB, "pnl": {"realized_today": "lots", "unrealized": 0}}])
def test_a_malformed_gate_blob_is_counted_and_skipped(engine: Engine, blob: dict[str, Any]) -> None:
    engine.writer.write(blob)
    got = engine.scrape()
    assert got[key("kairos_metrics_errors_total", kind="gate_state_shape")] == 1.0
    assert not [name for name, _ in got if name in ("kairos_rejects_total", "kairos_position", "kairos_pnl")]
    assert got[key("kairos_ring_lag", ring="trace", consumer="supervisor")] == 0.0  # the rest is still served


def test_the_grafana_dashboard_shows_every_family_and_only_exported_names(engine: Engine) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    families = engine.families()
    exported = {family + suffix for family, kind in families.items() for suffix in SUFFIXES[kind]}
    shown: dict[str, set[str]] = {}
    for panel in dashboard["panels"]:
        exprs = [target["expr"] for target in panel["targets"]]
        names = {name for expr in exprs for name in re.findall(r"\bkairos_\w+", expr)}
        assert names, f"panel {panel['title']!r} queries no kairos metric"
        assert names <= exported, f"panel {panel['title']!r}: {sorted(names - exported)} are not exported"
        shown[panel["title"]] = {f for f in families if any(n.removeprefix(f) in SUFFIXES[families[f]] for n in names)}
    assert set().union(*shown.values()) == set(families)
    assert all(len(f) == 1 for f in shown.values()), "one family per panel"
