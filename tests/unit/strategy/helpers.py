"""Crafted MARKET_DATA and EXEC_EVENT records and gate states for strategy tests (pure builders, no I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from kairos.gatestate import GateState, OpenOrder, StrategyNet
from kairos.records import EXEC_EVENT, MARKET_DATA, BookStatus, ExecKind, Kind, OrderState, RejectReason

T0 = 1_700_000_000_000_000_000


def bbo(venue: int, instrument: int, bid: float, ask: float, bid_qty: float = 1.0, ask_qty: float = 1.0,
        ts: int = T0, kind: Kind = Kind.BBO, level: int = 0) -> np.ndarray:
    rec = np.zeros(1, MARKET_DATA)
    rec["venue"], rec["instrument"], rec["kind"], rec["flags"] = venue, instrument, kind, level
    rec["price"], rec["qty"], rec["price2"], rec["qty2"] = bid, bid_qty, ask, ask_qty
    rec["ts_recv_ns"] = rec["ts_exchange_ns"] = ts
    return rec


def status(venue: int, instrument: int, book: BookStatus, ts: int = T0) -> np.ndarray:
    rec = np.zeros(1, MARKET_DATA)
    rec["venue"], rec["instrument"], rec["kind"], rec["flags"], rec["ts_recv_ns"] = venue, instrument, \
        Kind.STATUS, book, ts
    return rec


def batch(*parts: np.ndarray) -> np.ndarray:
    return np.concatenate(parts)


def event(intent: np.void, kind: ExecKind, state: OrderState, qty: float = 0.0, cum: float = 0.0,
          price: float = 0.0, reason: RejectReason = RejectReason.NONE) -> np.ndarray:
    """The gate's answer to one ORDER_INTENT row."""
    ev = np.zeros(1, EXEC_EVENT)
    for name in ("client_order_id", "instrument", "venue", "strategy", "side"):
        ev[name] = intent[name]
    ev["kind"], ev["state"], ev["qty"], ev["cum_qty"], ev["reason"] = kind, state, qty, cum, reason
    ev["price"], ev["order_qty"] = price or intent["price"], intent["qty"]
    return ev


def fill(intent: np.void, qty: float, cum: float | None = None, final: bool = True) -> np.ndarray:
    done = final and (cum if cum is not None else qty) >= intent["qty"] - 1e-12
    return event(intent, ExecKind.FILL, OrderState.FILLED if done else OrderState.PARTIAL, qty,
                 qty if cum is None else cum)


def reject(intent: np.void, reason: RejectReason = RejectReason.VENUE_REJECTED) -> np.ndarray:
    return event(intent, ExecKind.REJECT, OrderState.REJECTED, reason=reason)


def expired(intent: np.void, cum: float = 0.0) -> np.ndarray:
    return event(intent, ExecKind.EXPIRED, OrderState.EXPIRED, cum=cum)


def gate_state(reconciled: bool = True, venues: Iterable[str] = ("binance", "okx"),
               orders: Iterable[Mapping[str, Any]] = (), strategies: Iterable[Mapping[str, Any]] = (),
               age_s: float = 0.01) -> GateState:
    """A typed gate state; ``orders`` rows give at least client_order_id, strategy, venue_id and
    instrument_id, ``strategies`` rows strategy, instrument_id and net_quantity (the rest defaults)."""
    order = {"venue_order_id": 0, "venue": "", "instrument": "", "side": 1, "order_type": 2, "tif": 1, "state": 1,
             "price": 0.0, "quantity": 0.0, "cum_quantity": 0.0, "flags": 0}
    return GateState(reconciled=reconciled, venues_reconciled=list(venues), age_s=age_s,
                     orders=[OpenOrder(**(order | dict(o))) for o in orders],
                     strategies=[StrategyNet(**({"instrument": ""} | dict(s))) for s in strategies])
