"""The gate's published state blob (kairos.gate.snapshot) -> kairos.v1 messages.

Expected keys (values may be enum names or numbers, venues names or ids, instruments symbols or
ids, so the gate can publish whichever it holds)::

    trading_state: "ACTIVE"
    balances:      {"binance": {"USDT": [free, locked], ...}, ...}
    positions:     [{"venue", "instrument", "qty", "avg_price", "realized_pnl"}, ...]
    open_orders:   [{"client_order_id", "venue", "instrument", "side", "order_type", "state",
                     "price", "qty", "cum_qty", "venue_order_id", "strategy"}, ...]

A missing key reads as empty; ``age_s`` is added by the reader.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, TypeVar

from kairos.api.convert import symbol_of, to_pb
from kairos.api.pb import pb
from kairos.instruments import InstrumentTable
from kairos.records import OrderState, OrderType, Side, TradingState, Venue

E = TypeVar("E", bound=IntEnum)


def _enum(kind: type[E], value: Any, default: E) -> E:
    try:
        return kind[value.upper()] if isinstance(value, str) else kind(int(value))
    except (KeyError, ValueError, TypeError):
        return default


def _venue(value: Any) -> Venue:
    return _enum(Venue, value, Venue.NONE)


def _symbol(instruments: InstrumentTable, value: Any) -> str:
    return symbol_of(instruments, value) if isinstance(value, int) else str(value or "")


def trading_state(blob: dict[str, Any] | None) -> TradingState | None:
    if not blob or "trading_state" not in blob:
        return None
    return _enum(TradingState, blob["trading_state"], TradingState.HALTED)


def age_s(blob: dict[str, Any]) -> float:
    return float(blob.get("age_s", -1.0))


def balances(blob: dict[str, Any], venue: Venue) -> list[Any]:
    out = []
    for venue_key, assets in sorted((blob.get("balances") or {}).items()):
        v = _venue(venue_key)
        if venue is not Venue.NONE and v is not venue:
            continue
        for asset, (free, locked) in sorted(assets.items()):
            out.append(pb.Balance(venue=to_pb(v), asset=asset, free=float(free), locked=float(locked)))
    return out


def positions(blob: dict[str, Any], instruments: InstrumentTable) -> list[Any]:
    return [
        pb.Position(venue=to_pb(_venue(p.get("venue"))), instrument=_symbol(instruments, p.get("instrument")),
                    quantity=float(p.get("qty", 0.0)), avg_price=float(p.get("avg_price", 0.0)),
                    realized_pnl=float(p.get("realized_pnl", 0.0)))
        for p in blob.get("positions") or ()
    ]


def orders(blob: dict[str, Any], instruments: InstrumentTable, venue: Venue, instrument: str) -> list[Any]:
    out = []
    for o in blob.get("open_orders") or ():
        v, symbol = _venue(o.get("venue")), _symbol(instruments, o.get("instrument"))
        if (venue is not Venue.NONE and v is not venue) or (instrument and symbol != instrument):
            continue
        out.append(pb.Order(
            client_order_id=str(o.get("client_order_id", "")), venue_order_id=int(o.get("venue_order_id", 0)),
            venue=to_pb(v), instrument=symbol,
            side=to_pb(_enum(Side, o.get("side"), Side.NONE)),
            order_type=to_pb(_enum(OrderType, o.get("order_type"), OrderType.LIMIT)),
            state=to_pb(_enum(OrderState, o.get("state"), OrderState.UNKNOWN)),
            price=float(o.get("price", 0.0)), quantity=float(o.get("qty", 0.0)),
            cum_quantity=float(o.get("cum_qty", 0.0)), strategy=int(o.get("strategy", 0)),
        ))
    return out
