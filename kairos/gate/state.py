"""The gate-state blob's content (published through `kairos.gate.snapshot`): what GetBalance, GetPositions
and ListOrders answer from. The contract (fields, types, version) is `kairos.gatestate.GateState`;
``executors`` holds each venue's `Executor.stats()` (retries, rate limits ...), ``balance_pushes`` what
the book made of each venue's balance pushes (`kairos.gate.pushes`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection

from kairos.execution.base import Executor
from kairos.gate.blotter import Blotter
from kairos.gate.metrics import GateMetrics
from kairos.gate.orders import Order
from kairos.gatestate import Balance, GateCounters, GateState, OpenOrder, Pnl, Position, StrategyNet
from kairos.instruments import VENUE_NAMES, InstrumentTable
from kairos.records import TradingState

_NAMES = {int(v): name for name, v in VENUE_NAMES.items()}


def describe(blotter: Blotter, instruments: InstrumentTable, executors: dict[int, Executor], metrics: GateMetrics,
             mode: str, reconciled: Collection[int]) -> GateState:
    """The blob; the gate's balance-push totals go onto its status-board row at the same time (the two agree)."""
    book, s = blotter.book, blotter.book.s
    names = {i.id: i.symbol for i in instruments}
    metrics.balance_pushes(book.pushes.totals())
    return GateState(
        ts_ns=time.time_ns(), pid=os.getpid(), mode=mode,
        reconciled=all(v in reconciled for v in executors),
        venues_reconciled=[_NAMES[v] for v in sorted(reconciled)],
        trading_state=TradingState(s.trading).name, trading_state_id=int(s.trading),
        trading_reason=blotter.why, trading_refused=blotter.refused,
        balances=_balances(blotter, list(executors)),
        positions=_positions(blotter, names),
        orders=[_order(o, names) for o in blotter.orders.open.values()],
        strategies=[StrategyNet(st, names[inst], inst, net) for (st, inst), net in sorted(book.nets.items())],
        pnl=Pnl(book.realised_day, book.unrealised()),
        counters=GateCounters(metrics.intents.value, metrics.orders.value, metrics.fills.value,
                              metrics.rejects.value, metrics.replayed.value, metrics.events.value,
                              metrics.rejects_by_reason()),
        executors={_NAMES[v]: e.stats() for v, e in executors.items()},
        balance_pushes={_NAMES[v]: book.pushes.of(v) for v in executors},
    )


def _balances(blotter: Blotter, venues: list[int]) -> list[Balance]:
    s, grid = blotter.book.s, blotter.book.grid
    out = []
    for venue in venues:
        for index, asset in enumerate(grid.assets):
            slot = grid.slot(venue, index)
            out.append(Balance(_NAMES[venue], venue, asset, s.free(slot), s.reserved[slot]))
    return out


def _positions(blotter: Blotter, names: dict[int, str]) -> list[Position]:
    book, s, grid = blotter.book, blotter.book.s, blotter.book.grid
    out = []
    for k, qty in enumerate(s.position):
        if qty or book.realised[k]:
            venue, inst = grid.split(k)
            out.append(Position(_NAMES[venue], venue, names[inst], inst, qty, book.entry[k], book.realised[k],
                                s.mark(k), book.unrealised_at(k)))
    return out


def _order(o: Order, names: dict[int, str]) -> OpenOrder:
    return OpenOrder(o.coid.decode("latin-1"), o.venue_order_id, _NAMES[o.venue], o.venue, names[o.instrument],
                     o.instrument, o.side, o.order_type, o.tif, o.state, o.price, o.qty, o.cum_qty, o.strategy,
                     o.flags)
