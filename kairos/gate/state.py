"""The gate-state blob (published through `kairos.gate.snapshot`): what GetBalance, GetPositions and
ListOrders answer from. Enum fields carry the wire numbers of kairos/records.py; names are added
for venues, instruments and the trading state. Schema (version 1)::

    {"version", "ts_ns", "pid", "mode", "reconciled", "trading_state", "trading_state_id",
     "venues_reconciled": [venue],        reconciled since start ("reconciled": all of them; the others
                                          are closed: their intents are rejected NOT_RECONCILED)
     "trading_reason",                    why the state was set, e.g. "DISK_FULL: the journal cannot be written ..."
     "trading_refused",                   state changes refused because the journal could not be written
     "balances":  [{"venue", "venue_id", "asset", "free", "locked"}],          free = total - locked
     "positions": [{"venue", "venue_id", "instrument", "instrument_id", "quantity", "avg_price",
                    "realized_pnl", "mark", "unrealized_pnl"}],
     "orders":    [{"client_order_id", "venue_order_id", "venue", "venue_id", "instrument",
                    "instrument_id", "side", "order_type", "tif", "state", "price", "quantity",
                    "cum_quantity", "strategy", "flags"}],                      open orders only
     "strategies": [{"strategy", "instrument", "instrument_id", "net_quantity"}]   signed fills per strategy
     "pnl": {"realized_today", "unrealized"},
     "counters": {"intents", "orders_sent", "fills", "rejects", "replayed", "events",
                  "rejects_by_reason": {REASON: n}},
     "executors": {venue: Executor.stats()}}                                  retries, rate limits ...
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection
from typing import Any

from kairos.execution.base import Executor
from kairos.gate.blotter import Blotter
from kairos.gate.metrics import GateMetrics
from kairos.gate.orders import Order
from kairos.instruments import VENUE_NAMES, InstrumentTable
from kairos.records import TradingState

_NAMES = {int(v): name for name, v in VENUE_NAMES.items()}


def describe(blotter: Blotter, instruments: InstrumentTable, executors: dict[int, Executor], metrics: GateMetrics,
             mode: str, reconciled: Collection[int]) -> dict[str, Any]:
    book, s = blotter.book, blotter.book.s
    names = {i.id: i.symbol for i in instruments}
    return {
        "version": 1, "ts_ns": time.time_ns(), "pid": os.getpid(), "mode": mode,
        "reconciled": all(v in reconciled for v in executors),
        "venues_reconciled": [_NAMES[v] for v in sorted(reconciled)],
        "trading_state": TradingState(s.trading).name, "trading_state_id": int(s.trading),
        "trading_reason": blotter.why, "trading_refused": blotter.refused,
        "balances": _balances(blotter, list(executors)),
        "positions": _positions(blotter, names),
        "orders": [_order(o, names) for o in blotter.orders.open.values()],
        "strategies": [{"strategy": st, "instrument": names[inst], "instrument_id": inst, "net_quantity": net}
                       for (st, inst), net in sorted(book.nets.items())],
        "pnl": {"realized_today": book.realised_day, "unrealized": book.unrealised()},
        "counters": {"intents": metrics.intents.value, "orders_sent": metrics.orders.value,
                     "fills": metrics.fills.value, "rejects": metrics.rejects.value,
                     "replayed": metrics.replayed.value, "events": metrics.events.value,
                     "rejects_by_reason": metrics.rejects_by_reason()},
        "executors": {_NAMES[v]: e.stats() for v, e in executors.items()},
    }


def _balances(blotter: Blotter, venues: list[int]) -> list[dict[str, Any]]:
    s, grid = blotter.book.s, blotter.book.grid
    out = []
    for venue in venues:
        for index, asset in enumerate(grid.assets):
            slot = grid.slot(venue, index)
            out.append({"venue": _NAMES[venue], "venue_id": venue, "asset": asset,
                        "free": s.free(slot), "locked": s.reserved[slot]})
    return out


def _positions(blotter: Blotter, names: dict[int, str]) -> list[dict[str, Any]]:
    book, s, grid = blotter.book, blotter.book.s, blotter.book.grid
    out = []
    for k, qty in enumerate(s.position):
        if qty or book.realised[k]:
            venue, inst = grid.split(k)
            out.append({"venue": _NAMES[venue], "venue_id": venue, "instrument": names[inst],
                        "instrument_id": inst, "quantity": qty, "avg_price": book.entry[k],
                        "realized_pnl": book.realised[k], "mark": s.mark(k), "unrealized_pnl": book.unrealised_at(k)})
    return out


def _order(o: Order, names: dict[int, str]) -> dict[str, Any]:
    return {"client_order_id": o.coid.decode("latin-1"), "venue_order_id": o.venue_order_id,
            "venue": _NAMES[o.venue], "venue_id": o.venue, "instrument": names[o.instrument],
            "instrument_id": o.instrument, "side": o.side, "order_type": o.order_type, "tif": o.tif,
            "state": o.state, "price": o.price, "quantity": o.qty, "cum_quantity": o.cum_qty,
            "strategy": o.strategy, "flags": o.flags}
