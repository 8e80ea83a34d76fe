"""The pipeline benchmark's baseline: the engine's own feed, strategy and gate code in four processes
joined by ``multiprocessing.Queue`` instead of shared-memory rings. Only the transport differs.

    feed.binance ─┐  put(md bytes) ┌─► strategy ── put(intents) ──► gate ──┐
    feed.okx     ─┴────────────────┴──────────────────────────────────► gate (marks)
                                       strategy ◄── put(events) ─────────┘

- feed: `FeedAgent` + `AgentRunner` exactly as ``procs.feed`` runs them (WsSession, venue parser,
  publish once per duty cycle); its publisher puts the batch's bytes on the strategy's and the
  gate's queues (a broadcast, like the md ring's two consumers).
- strategy: `MarketView`, the registry's strategies and `IntentSink`, driven as `StrategyHost`
  drives them (update, on_market, clear, publish; events by strategy id; a 20 ms timer).
- gate: `Gate.build` (kairos/gate/build.py), exactly what `GateAgent` runs, with the same
  `OrderTrace` (its rows kept in a list); its events go to the strategy's queue. Each queue item
  is one ring batch's bytes.

Every process blocks in ``Queue.get`` when idle (no spinning), like the rings' blocking wait.
"""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Callable, Mapping
from multiprocessing.queues import Queue
from typing import Any, Final

import numpy as np

from kairos import config
from kairos.agent import AgentRunner
from kairos.feeds.agent import FeedAgent
from kairos.feeds.stats import FeedStats
from kairos.gate.build import Gate
from kairos.gate.metrics import GateMetrics, OrderTrace
from kairos.logs import setup_logging
from kairos.records import EXEC_EVENT, MARKET_DATA, ORDER_INTENT, ORDER_TRACE
from kairos.status import StatusBoard
from kairos.strategy import build_strategies
from kairos.strategy.api import IntentSink, LiveClock, MarketView, new_run_id

TIMER_NS: Final = 20_000_000
IDLE_S: Final = 0.05
INFLIGHT_S: Final = 0.0005
Item = tuple[str, Any]


class QueuePublisher:
    """The feed's md ring producer replaced: one ``put`` per consumer queue per batch."""

    __slots__ = ("_puts", "_tag", "published")

    def __init__(self, queues: list[Queue], tag: str) -> None:
        self._puts = [q.put for q in queues]
        self._tag = tag
        self.published = -1

    def publish(self, batch: np.ndarray) -> int:
        item = (self._tag, batch.tobytes())
        for put in self._puts:
            put(item)
        self.published += len(batch)
        return self.published


class ListProducer:
    """Where the baseline gate's OrderTrace publishes: a list the bench collects after a phase."""

    __slots__ = ("batches",)

    def __init__(self) -> None:
        self.batches: list[np.ndarray] = []

    def publish(self, batch: np.ndarray) -> int:
        self.batches.append(batch.copy())
        return len(self.batches)


def feed_main(venue: str, env: Mapping[str, str], queues: list[Queue]) -> int:
    """Process target: the real feed agent, publishing into queues."""
    settings = config.load(env=env)
    role = f"q.feed.{venue}"
    setup_logging(role, settings.logging)
    board = StatusBoard.attach(settings.shm_prefix)
    try:
        row = board.claim(role)
        agent = FeedAgent.build(settings, venue, QueuePublisher(queues, f"md.{venue}"), FeedStats(row))
        return AgentRunner(agent, agent.idle, row).run()
    finally:
        board.close()


class QueueStrategy:
    """The strategy host's duty, fed from one queue (md of both venues and events)."""

    def __init__(self, settings: config.Settings, out: Queue) -> None:
        self.clock = LiveClock()
        self.view = MarketView(len(settings.instruments))
        self.strategies = build_strategies(settings, self.view, self.clock, new_run_id(self.clock.now_ns()))
        self.sink = IntentSink(self.clock)
        self._on_market = [s.on_market for s in self.strategies]
        self._put = out.put

    def on_md(self, payload: bytes) -> None:
        batch, view, sink = np.frombuffer(payload, MARKET_DATA), self.view, self.sink
        view.update(batch)
        for on_market in self._on_market:
            on_market(batch, sink)
        view.clear_touched()
        if len(sink):
            self._put(("intents", sink.take().tobytes()))

    def on_events(self, payload: bytes) -> None:
        events = np.frombuffer(payload, EXEC_EVENT)
        owner = events["strategy"]
        for strategy in self.strategies:
            mine = events[owner == strategy.strategy_id]
            if len(mine):
                strategy.on_event(mine, self.sink)
        if len(self.sink):
            self._put(("intents", self.sink.take().tobytes()))

    def on_timer(self, now: int) -> None:
        for strategy in self.strategies:
            strategy.on_timer(now, self.sink)
        if len(self.sink):
            self._put(("intents", self.sink.take().tobytes()))

    def run(self, inq: Queue) -> None:
        handlers: dict[str, Callable[[bytes], None]] = {"md.binance": self.on_md, "md.okx": self.on_md,
                                                        "events": self.on_events}
        next_timer = 0
        while True:
            try:
                tag, payload = inq.get(timeout=TIMER_NS / 1e9)
            except queue.Empty:
                tag, payload = "", b""
            if tag == "stop":
                return
            if tag:
                handlers[tag](payload)
            now = self.clock.now_ns()
            if now >= next_timer:
                next_timer = now + TIMER_NS
                self.on_timer(now)


def strategy_main(env: Mapping[str, str], inq: Queue, gate_q: Queue, results: Queue) -> None:
    settings = config.load(env=env)
    setup_logging("q.strategy", settings.logging)
    strategy = QueueStrategy(settings, gate_q)
    results.put({"ready": "strategy"})
    strategy.run(inq)


class QueueProducer:
    """The events ring producer replaced: the gate's EventWriter puts each batch on the strategy's queue."""

    __slots__ = ("_put", "published")

    def __init__(self, out: Queue) -> None:
        self._put = out.put
        self.published = -1

    def publish(self, batch: np.ndarray) -> int:
        self._put(("events", batch.tobytes()))
        self.published += len(batch)
        return self.published


class QueueGate:
    """`Gate.build` (as `GateAgent` builds it) and the agent's duty cycle (marks, executor reports,
    intents, flush) on one input queue; every venue started and reconciled before the first input."""

    def __init__(self, settings: config.Settings, board: StatusBoard, events_out: Queue) -> None:
        self.traces = ListProducer()
        gate = self.gate = Gate.build(settings, QueueProducer(events_out),
                                      GateMetrics(board.claim("q.gate"), OrderTrace(self.traces)))
        self.state, self.desk, self.executors = gate.state, gate.desk, gate.executors
        self.changed: set[int] = set()
        self.marks = {f"md.{executor.venue.name.lower()}": gate.marks(venue, self.changed)
                      for venue, executor in enumerate(self.executors) if executor is not None}
        self.md_log: list[bytes] = []
        for venue, executor in enumerate(self.executors):
            if executor is not None:
                executor.start()
                gate.load_rules(venue)
                gate.reconcile(venue)
        self.desk.blotter.book.refresh_gross()

    def handle(self, tag: str, payload: bytes) -> None:
        if tag == "intents":
            self.desk.on_intents(np.frombuffer(payload, ORDER_INTENT))
            return
        self.marks[tag](np.frombuffer(payload, MARKET_DATA))
        self.md_log.append(payload)

    def cycle(self) -> int:
        """After an input: paper marks and post-trade scan, executor reports, events out."""
        desk, work = self.desk, 0
        if self.changed:
            s, stride = self.state, self.state.grid.stride
            for k in self.changed:
                self.executors[k // stride].on_mark(k % stride, s.bid[k], s.ask[k])  # type: ignore[union-attr]
            self.changed.clear()
            desk.blotter.book.refresh_gross()
            desk.scan(time.monotonic_ns())
        for executor in self.executors:
            if executor is not None:
                work += desk.on_reports(executor)
        desk.flush()
        return work

    def idle_s(self) -> float:
        inflight = self.desk.blotter.orders.awaiting() or any(e.pending() for e in self.executors if e is not None)
        return INFLIGHT_S if inflight else IDLE_S

    def dump(self) -> dict[str, bytes]:
        """The order traces and market data seen since the last dump (for the bench's join)."""
        traces = np.concatenate(self.traces.batches) if self.traces.batches else np.empty(0, ORDER_TRACE)
        out = {"trace": traces.tobytes(), "md": b"".join(self.md_log)}
        self.traces.batches.clear()
        self.md_log.clear()
        return out

    def run(self, inq: Queue, results: Queue) -> None:
        work = 0
        while True:
            try:
                tag, payload = inq.get_nowait() if work else inq.get(timeout=self.idle_s())
            except queue.Empty:
                tag, payload = "", b""
            if tag == "stop":
                return
            if tag == "dump":
                results.put(self.dump())
                continue
            if tag:
                self.handle(tag, payload)
            work = self.cycle() + (1 if tag else 0)


def gate_main(env: Mapping[str, str], inq: Queue, events_out: Queue, results: Queue) -> None:
    settings = config.load(env=env)
    setup_logging("q.gate", settings.logging)
    board = StatusBoard.attach(settings.shm_prefix)
    try:
        gate = QueueGate(settings, board, events_out)
        results.put({"ready": "gate"})
        try:
            gate.run(inq, results)
        finally:
            gate.gate.close()
    finally:
        board.close()


def logged(path: str, target: Callable[..., object], *args: object) -> None:
    """Child entry: stdout and stderr into ``path`` (as under the supervisor), then ``target(*args)``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    target(*args)
