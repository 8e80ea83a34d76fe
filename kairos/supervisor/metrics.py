"""Prometheus /metrics, served by the supervisor (docs/METRICS.md lists every family).

`EngineCollector` builds every sample at scrape time from what the supervisor already maps: the
status board (process counters and log2 latency histograms), the supervisor's child view, the
gate-state blob (positions, PnL, balances, balance pushes, rejects), ring headers (lag, overruns) and the totals
it keeps while draining the ``trace`` and ``events`` rings (kairos/supervisor/tally.py). Nothing
here runs on any process's hot path. Units are base units: seconds, bytes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any, Final

import numpy as np
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from kairos.errors import SupervisorError
from kairos.gate.snapshot import GateStateReader
from kairos.gatestate import GateState
from kairos.instruments import VENUE_NAMES, InstrumentTable
from kairos.logs import ErrorTally
from kairos.records import ExecKind, Venue
from kairos.status import BoardRow, StatusBoard
from kairos.supervisor.rings import RingSet
from kairos.supervisor.status import StatusView
from kairos.supervisor.tally import EventTally, TraceTotals

log = logging.getLogger(__name__)
FIRST_BUCKET: Final = 10  # exported bounds 2**10 - 1 ns (~1 µs) ...
LAST_BUCKET: Final = 40  # ... 2**40 - 1 ns (~18 min); anything slower is only in +Inf
BOUNDS: Final = tuple(floatToGoString((2**b - 1) / 1e9) for b in range(FIRST_BUCKET, LAST_BUCKET + 1))
FEED_PREFIX: Final = "feed."
RESYNCS_PREFIX: Final = "resyncs."  # feed counter per book: resyncs.<venue symbol>
UNATTRIBUTED: Final = "other"  # resyncs/rejections that found no counter on the feed's row
REJECTS_PREFIX: Final = "rej."  # feed counter per book and reason: rej.<reason>.<venue symbol>
VENUE_WIDE: Final = "*"  # the feed's symbol (and our instrument label) for a rejection of no book: an oversized frame
RATE_PREFIX: Final = "rl."  # the supervisor's counters per venue budget: rl.<venue>.ban_s, .ban_status, ...
BAN_S: Final = ".ban_s"
ORDER_OUTCOMES: Final = tuple(k for k in ExecKind if k is not ExecKind.STATE)


def seconds_buckets(counts: np.ndarray) -> list[tuple[str, float]]:
    """Cumulative ``le`` buckets in seconds from log2 ns counts. Bucket b holds integer ns values of
    bit length b, so buckets 0..b hold exactly the values <= 2**b - 1 ns: the bounds are exact."""
    cumulative = np.cumsum(counts, dtype=np.uint64)
    return [*zip(BOUNDS, map(float, cumulative[FIRST_BUCKET : LAST_BUCKET + 1]), strict=True),
            ("+Inf", float(cumulative[-1]))]


class EngineCollector:
    """A prometheus_client custom collector over the supervisor's views (safe from any thread)."""

    def __init__(self, status: StatusView, board: StatusBoard, rings: RingSet, gate: GateStateReader,
                 trace: TraceTotals | None, events: EventTally, instruments: InstrumentTable) -> None:
        self._status, self._board, self._rings, self._gate = status, board, rings, gate
        self._instruments = instruments
        self._trace, self._events = trace, events
        self._tally = ErrorTally(log)
        self._bad_blobs = 0  # scrapes that found a gate state of the wrong shape
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        yield from self._processes()
        rows = self._board.snapshot()
        yield from self._board_rows(rows)
        yield from self._rate_bans(rows)
        yield from self._orders()
        yield from self._ring_cursors()
        state = self._gate.state()
        if state is None and self._gate.bad:
            with self._lock:
                self._bad_blobs += 1  # the reader logged it
        yield from self._gate_state(state)
        errors = CounterMetricFamily("kairos_metrics_errors", "Bad inputs met while building /metrics", labels=["kind"])
        with self._lock:
            for kind, n in self._tally.counts.items():
                errors.add_metric([kind], n)
            if self._bad_blobs:
                errors.add_metric(["gate_state_shape"], self._bad_blobs)
        yield errors

    def _processes(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("kairos_process_up", "1 while the role is RUNNING (supervisor's view)", labels=["role"])
        restarts = CounterMetricFamily("kairos_process_restarts", "Restarts by the supervisor", labels=["role"])
        for proc in self._status.system_status().processes:
            up.add_metric([proc.role], 1.0 if proc.state_name == "RUNNING" else 0.0)
            restarts.add_metric([proc.role], proc.restarts)
        yield from (up, restarts)

    def _board_rows(self, rows: list[BoardRow]) -> Iterator[Metric]:
        feeds = CounterMetricFamily("kairos_feed_messages", "WebSocket frames received", labels=["venue"])
        resyncs = CounterMetricFamily("kairos_book_resyncs", "Order books invalidated and rebuilt from a snapshot",
                                      labels=["venue", "instrument"])
        rejects = CounterMetricFamily("kairos_feed_rejects", "Market data the feed refused to publish, by reason",
                                      labels=["venue", "instrument", "reason"])
        spool = GaugeMetricFamily("kairos_persister_spool_bytes", "Persister spool backlog", unit="bytes")
        persisted = CounterMetricFamily("kairos_persister_rows", "Rows spooled, written per sink, or shed",
                                        labels=["table"])
        stages = HistogramMetricFamily("kairos_stage_latency_seconds", "Per-process stage latencies (log2 buckets)",
                                       labels=["role", "stage"])
        for row in rows:
            role, counters = row.role, row.counters
            if role.startswith(FEED_PREFIX):
                venue = role[len(FEED_PREFIX):]
                feeds.add_metric([venue], counters.get("msgs", 0))
                for instrument, n in self._resyncs(venue, counters).items():
                    resyncs.add_metric([venue, instrument], n)
                for (instrument, reason), n in self._feed_rejects(venue, counters).items():
                    rejects.add_metric([venue, instrument, reason], n)
            elif role == "persister":
                spool.add_metric([], counters.get("spool_bytes", 0))
                for name, n in counters.items():
                    if name.endswith("_rows"):
                        persisted.add_metric([name.removesuffix("_rows")], n)
            for name, hist in row.histograms.items():
                stages.add_metric([role, name.removesuffix("_ns")], seconds_buckets(hist.buckets), None)
        yield from (feeds, resyncs, rejects, spool, persisted, stages)

    def _rate_bans(self, rows: list[BoardRow]) -> Iterator[Metric]:
        """Each venue's shared rate budget, from the supervisor's ``rl.<venue>.*`` counters: seconds left of a
        429/418 ban (every process has stopped calling that venue meanwhile), labelled with its HTTP status."""
        left = GaugeMetricFamily("kairos_rate_ban_seconds", "Seconds left of a venue's 429/418 ban (0: none)",
                                 labels=["venue", "status"])
        for row in rows:
            if row.role != "supervisor":
                continue
            for name, n in row.counters.items():
                if name.startswith(RATE_PREFIX) and name.endswith(BAN_S):
                    venue = name[len(RATE_PREFIX):-len(BAN_S)]
                    status = row.counters.get(f"{RATE_PREFIX}{venue}.ban_status", 0) if n else 0
                    left.add_metric([venue, str(status or "none")], n)
        yield left

    def _resyncs(self, venue: str, counters: dict[str, int]) -> dict[str, int]:
        """Per instrument name from the feed's ``resyncs.<venue symbol>`` counters; what the venue's total
        has beyond them (books that found no room on the row, or a symbol not in the table) is ``other``."""
        out: dict[str, int] = {}
        for name, n in counters.items():
            if name.startswith(RESYNCS_PREFIX):
                instrument = self._instrument(venue, name.removeprefix(RESYNCS_PREFIX))
                if instrument is not None:
                    out[instrument] = n
        rest = counters.get("resyncs", 0) - sum(out.values())
        if rest > 0:
            out[UNATTRIBUTED] = rest
        return out

    def _feed_rejects(self, venue: str, counters: dict[str, int]) -> dict[tuple[str, str], int]:
        """Per (instrument name, reason) from the feed's ``rej.<reason>.<venue symbol>`` counters; what the
        feed's ``rejected`` total has beyond them (``rej.other``: no room on the row, or a symbol not in
        the table) is (``other``, ``other``). A rejection of no book (oversized frame) has instrument ``*``."""
        out: dict[tuple[str, str], int] = {}
        for name, n in counters.items():
            reason, _, symbol = name.removeprefix(REJECTS_PREFIX).partition(".")
            if name.startswith(REJECTS_PREFIX) and symbol:
                instrument = VENUE_WIDE if symbol == VENUE_WIDE else self._instrument(venue, symbol)
                if instrument is not None:
                    out[instrument, reason] = n
        rest = counters.get("rejected", 0) - sum(out.values())
        if rest > 0:
            out[UNATTRIBUTED, UNATTRIBUTED] = rest
        return out

    def _instrument(self, venue: str, symbol: str) -> str | None:
        """The configured instrument a feed's venue symbol names (None: not in the table)."""
        found = self._instruments.by_venue_symbol(VENUE_NAMES.get(venue, Venue.NONE), symbol)
        return None if found is None else found.symbol

    def _orders(self) -> Iterator[Metric]:
        tick = HistogramMetricFamily("kairos_tick_to_order_seconds",
                                     "Feed receipt of the tick -> order handed to the executor (exact stamps)")
        stages = HistogramMetricFamily("kairos_order_stage_seconds", "One stage of the tick-to-order path",
                                       labels=["stage"])
        orders = CounterMetricFamily("kairos_orders", "Orders handed to a venue (sent) and execution events by kind",
                                     labels=["venue", "outcome"])
        for name, counts, sum_ns in self._trace.stages() if self._trace is not None else ():
            if name == "tick_to_order":
                tick.add_metric([], seconds_buckets(counts), sum_ns / 1e9)
            else:
                stages.add_metric([name], seconds_buckets(counts), sum_ns / 1e9)
        for venue, n in (self._trace.sent() if self._trace is not None else {}).items():
            orders.add_metric([venue.name.lower(), "sent"], n)
        for (venue, kind), n in self._events.counts().items():
            if kind in ORDER_OUTCOMES:
                orders.add_metric([venue.name.lower(), kind.name.lower()], n)
        yield from (tick, stages, orders)

    def _ring_cursors(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily("kairos_ring_lag", "Records published that the consumer has not read",
                                labels=["ring", "consumer"])
        overruns = CounterMetricFamily("kairos_ring_overruns", "Records lost by falling a lap behind (overwrite)",
                                       labels=["ring", "consumer"])
        for c in self._rings.cursors():
            lag.add_metric([c.ring, c.consumer], c.depth)
            overruns.add_metric([c.ring, c.consumer], c.overruns)
        yield from (lag, overruns)

    def _gate_state(self, state: GateState | None) -> Iterator[Metric]:
        rejects = CounterMetricFamily("kairos_rejects", "Orders the gate or a venue rejected", labels=["reason"])
        position = GaugeMetricFamily("kairos_position", "Net position (base units)", labels=["venue", "instrument"])
        pnl = GaugeMetricFamily("kairos_pnl", "PnL in quote currency: realized_today, unrealized", labels=["kind"])
        balance = GaugeMetricFamily("kairos_balance", "Balance, free + locked", labels=["venue", "asset"])
        pushes = CounterMetricFamily("kairos_balance_pushes", "Venue balance pushes by what the gate made of them: "
                                     "applied, held, stale, foreign, bad", labels=["venue", "outcome"])
        samples = _gate_samples(state) if state else ()
        families = {"rejects": rejects, "position": position, "pnl": pnl, "balance": balance, "pushes": pushes}
        for family, labels, value in samples:
            families[family].add_metric(labels, value)
        yield from families.values()


def _gate_samples(state: GateState) -> list[tuple[str, list[str], float]]:
    """Samples from the typed gate state (kairos/gatestate.py: a blob of the wrong shape never gets here)."""
    out = [("rejects", [reason], float(n)) for reason, n in state.counters.rejects_by_reason.items()]
    out += [("position", [p.venue, p.instrument], p.quantity) for p in state.positions]
    out += [("pnl", ["realized_today"], state.pnl.realized_today), ("pnl", ["unrealized"], state.pnl.unrealized)]
    out += [("balance", [b.venue, b.asset], b.free + b.locked) for b in state.balances]
    out += [("pushes", [venue, outcome], float(n)) for venue, counts in state.balance_pushes.items()
            for outcome, n in counts.items()]
    return out


class MetricsServer:
    """/metrics over HTTP on a daemon thread; port 0 (``supervisor.metrics_port``) disables it."""

    def __init__(self, collector: EngineCollector, host: str, port: int) -> None:
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(collector)
        self.host, self.port = host, port
        self._httpd: Any = None

    def start(self) -> None:
        if not self.port:
            log.info("metrics disabled (supervisor.metrics_port: 0)")
            return
        try:
            self._httpd, _ = start_http_server(self.port, self.host, self._registry)
        except OSError as exc:
            raise SupervisorError(f"cannot serve metrics on {self.host}:{self.port}: {exc.strerror or exc} "
                                  "(supervisor.metrics_host/metrics_port; metrics_port 0 disables)") from exc
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
