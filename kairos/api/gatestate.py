"""The gate's published state blob (schema: kairos/gate/state.py, version 1) -> kairos.v1 messages.

Enum fields in the blob carry the wire numbers of kairos/records.py; venues and instruments come
with both their id and their name. ``age_s`` is added by the reader (GateStateReader).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, TypeVar

from kairos.api.convert import record_enum, to_pb
from kairos.api.pb import pb
from kairos.records import OrderState, OrderType, Side, TradingState, Venue

E = TypeVar("E", bound=IntEnum)


def _enum(kind: type[E], row: dict[str, Any], key: str, default: E) -> E:
    return record_enum(kind, int(row.get(key, default)), default)


def trading_state(blob: dict[str, Any] | None) -> TradingState | None:
    if not blob or "trading_state_id" not in blob:
        return None
    return _enum(TradingState, blob, "trading_state_id", TradingState.HALTED)


def refused(blob: dict[str, Any] | None) -> int:
    """State changes the gate refused so far (it could not journal them: DISK_FULL)."""
    return int(blob.get("trading_refused", 0)) if blob else 0


def reason(blob: dict[str, Any] | None) -> str:
    """Why the gate is in its trading state, e.g. "DISK_FULL: the journal cannot be written (...)"."""
    return str(blob.get("trading_reason", "")) if blob else ""


def age_s(blob: dict[str, Any]) -> float:
    return float(blob.get("age_s", -1.0))


def _venue_matches(row: dict[str, Any], venue: Venue) -> bool:
    return venue is Venue.NONE or row.get("venue_id") == int(venue)


def balances(blob: dict[str, Any], venue: Venue) -> list[Any]:
    return [
        pb.Balance(venue=to_pb(_enum(Venue, b, "venue_id", Venue.NONE)), asset=b["asset"],
                   free=float(b["free"]), locked=float(b["locked"]))
        for b in blob.get("balances", ()) if _venue_matches(b, venue)
    ]


def positions(blob: dict[str, Any]) -> list[Any]:
    return [
        pb.Position(venue=to_pb(_enum(Venue, p, "venue_id", Venue.NONE)), instrument=p["instrument"],
                    quantity=float(p["quantity"]), avg_price=float(p["avg_price"]),
                    realized_pnl=float(p["realized_pnl"]))
        for p in blob.get("positions", ())
    ]


def strategy_nets(blob: dict[str, Any]) -> list[Any]:
    return [pb.StrategyNet(strategy=int(n["strategy"]), instrument=n["instrument"],
                           net_quantity=float(n["net_quantity"])) for n in blob.get("strategies", ())]


def orders(blob: dict[str, Any], venue: Venue, instrument: str) -> list[Any]:
    return [
        pb.Order(
            client_order_id=o["client_order_id"], venue_order_id=int(o["venue_order_id"]),
            venue=to_pb(_enum(Venue, o, "venue_id", Venue.NONE)), instrument=o["instrument"],
            side=to_pb(_enum(Side, o, "side", Side.NONE)),
            order_type=to_pb(_enum(OrderType, o, "order_type", OrderType.LIMIT)),
            state=to_pb(_enum(OrderState, o, "state", OrderState.UNKNOWN)), price=float(o["price"]),
            quantity=float(o["quantity"]), cum_quantity=float(o["cum_quantity"]), strategy=int(o["strategy"]),
        )
        for o in blob.get("orders", ())
        if _venue_matches(o, venue) and (not instrument or o["instrument"] == instrument)
    ]
