"""The gate assembled one way: `Gate.build` is what `GateAgent` runs and what the pipeline bench's
queue baseline (scripts/pipeline_queue.py) runs, so the two differ only in their transport.

Build order: the risk state, the journal replayed (compacted when long) into the blotter, one
executor per enabled venue (paper or live by ``execution.mode``: the only place the mode is read),
the pre-trade check with each venue's taker fee, then the desk writing events to ``events``.
Executors are built, not started: starting and reconciling are the caller's (the agent retries a
venue that is down; the bench starts them all at once).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from kairos.config import Settings
from kairos.execution import live_executor, venue_rules
from kairos.execution.base import Executor
from kairos.execution.paper import PaperExecutor
from kairos.gate.blotter import Blotter
from kairos.gate.book import Book
from kairos.gate.compact import compact
from kairos.gate.desk import Desk
from kairos.gate.events import EventWriter, Producer
from kairos.gate.marks import Marks
from kairos.gate.metrics import GateMetrics
from kairos.gate.orders import Orders
from kairos.gate.reconcile import reconcile
from kairos.instruments import VENUE_NAMES, InstrumentTable
from kairos.journal import AppendLog
from kairos.records import OrderType, TradingState
from kairos.risk import Grid, PostTrade, PreTrade, RiskState
from kairos.risk.state import N_VENUES


@dataclass(slots=True)
class Gate:
    """The gate's parts; ``replayed`` is how many journal entries the build read back."""

    settings: Settings
    instruments: InstrumentTable
    state: RiskState
    journal: AppendLog
    executors: list[Executor | None]
    pre: PreTrade
    desk: Desk
    replayed: int

    @classmethod
    def build(cls, settings: Settings, events: Producer, metrics: GateMetrics) -> Gate:
        """Every part from ``settings``; the journal is ``{risk.journal_dir}/{shm_prefix}.gate.jsonl``."""
        risk = settings.risk
        instruments = InstrumentTable(settings.instruments)
        state = RiskState.empty(Grid(instruments), risk.max_orders_per_sec, TradingState[risk.initial_state])
        journal = AppendLog(Path(risk.journal_dir) / f"{settings.shm_prefix}.gate.jsonl")
        blotter = Blotter(Orders(), Book(state), journal)
        replayed = blotter.replay()
        if risk.journal_compact_entries and replayed > risk.journal_compact_entries:
            compact(blotter, time.time_ns())
        executors = build_executors(settings, instruments)
        fees = [0.0] * N_VENUES
        for name, cfg in settings.venues.items():
            fees[VENUE_NAMES[name]] = cfg.taker_fee_bps
        pre = PreTrade(risk, fees)
        desk = Desk(blotter, pre, PostTrade(risk), executors, EventWriter(events), metrics)
        metrics.trading_state.set(state.trading)
        return cls(settings, instruments, state, journal, executors, pre, desk, replayed)

    def marks(self, venue: int, changed: set[int]) -> Marks:
        """The mark keeper for one venue's market data (changed keys collected in ``changed``)."""
        return Marks(self.state, venue, changed, self.settings.risk)

    def load_rules(self, venue: int) -> None:
        """The started executor's order rules into the table the pre-trade check applies (every mode)."""
        rules, grid, executor = self.state.rules, self.state.grid, self.executors[venue]
        for inst in self.instruments:
            if grid.valid(venue, inst.id):
                rules.load(grid.key(venue, inst.id), executor.filters(inst.id))

    def reconcile(self, venue: int) -> None:
        """Blocking: the started venue's orders and balances reconciled into the blotter, and every
        change it made reported (published at the next flush). Raises ExecutionError."""
        executor, desk = self.executors[venue], self.desk
        for order, report in reconcile(desk.blotter, executor, self.state.grid, self._reserve_unit,
                                       executor.reach_window_ns()):
            desk.report(order, report)

    def _reserve_unit(self, venue: int, side: int, price: float) -> float:
        return self.pre.reserve(venue, side, int(OrderType.LIMIT), price, 1.0, price)

    def close(self) -> None:
        """Executors and the journal (the caller flushes the desk first)."""
        for executor in self.executors:
            if executor is not None:
                executor.close()
        self.journal.close()


def build_executors(settings: Settings, instruments: InstrumentTable) -> list[Executor | None]:
    """One executor per enabled venue, indexed by venue id: paper (ledger under risk.journal_dir, the venue's
    order rules from its public REST) or live."""
    out: list[Executor | None] = [None] * N_VENUES
    ledgers = Path(settings.risk.journal_dir)
    for name, cfg in settings.venues.items():
        if cfg.enabled:
            venue = VENUE_NAMES[name]
            out[venue] = (PaperExecutor(venue, instruments, settings.execution, cfg,
                                        partial(venue_rules, name, settings, instruments),
                                        ledgers / f"{settings.shm_prefix}.paper.{name}.jsonl",
                                        compact_entries=settings.risk.journal_compact_entries)
                          if settings.execution.mode == "paper" else live_executor(name, settings, instruments))
    return out
