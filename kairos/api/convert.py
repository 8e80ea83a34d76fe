"""Conversions between wire records/enums (kairos.records) and kairos.v1 messages.

Enums map by name: ``Side.BUY`` <-> ``SIDE_BUY``. A record enum member the proto lacks (the
``NONE`` placeholders) maps to the proto's zero value.
"""

from __future__ import annotations

import functools
from enum import IntEnum
from typing import Any, TypeVar

import numpy as np

from kairos.api.pb import pb
from kairos.errors import InvalidRequest
from kairos.instruments import InstrumentTable
from kairos.records import ChildState, ExecKind, OrderState, OrderType, RejectReason, Side, Tif, TradingState, Venue

E = TypeVar("E", bound=IntEnum)

_PB: dict[type[IntEnum], tuple[Any, str]] = {
    Venue: (pb.Venue, "VENUE"),
    Side: (pb.Side, "SIDE"),
    OrderType: (pb.OrderType, "ORDER_TYPE"),
    Tif: (pb.TimeInForce, "TIME_IN_FORCE"),
    ExecKind: (pb.ExecKind, "EXEC_KIND"),
    OrderState: (pb.OrderState, "ORDER_STATE"),
    TradingState: (pb.TradingState, "TRADING_STATE"),
    RejectReason: (pb.RejectReason, "REJECT_REASON"),
    ChildState: (pb.ChildState, "CHILD_STATE"),
}


@functools.lru_cache(maxsize=None, typed=True)  # typed: Side.BUY == Venue.BINANCE == 1
def to_pb(member: IntEnum) -> int:
    enum, prefix = _PB[type(member)]
    name = f"{prefix}_{member.name}"
    return enum.Value(name) if name in enum.DESCRIPTOR.values_by_name else 0


def from_pb(kind: type[E], value: int, field: str) -> E:
    """A proto enum number -> the record enum; UNSPECIFIED or an unknown number is InvalidRequest."""
    enum, prefix = _PB[kind]
    try:
        name = enum.Name(value)
    except ValueError:
        raise InvalidRequest(f"{field}: unknown value {value}; expected one of {_choices(kind)}") from None
    member = kind.__members__.get(name.removeprefix(prefix + "_"))
    if member is None:
        raise InvalidRequest(f"{field} is required: one of {_choices(kind)}")
    return member


def _choices(kind: type[IntEnum]) -> str:
    enum, prefix = _PB[kind]
    return ", ".join(n for n in enum.DESCRIPTOR.values_by_name if n.removeprefix(prefix + "_") in kind.__members__)


def record_enum(kind: type[E], value: int, default: E) -> E:
    """A number read from shared memory -> enum, tolerating values a newer writer may add."""
    try:
        return kind(value)
    except ValueError:
        return default


def exec_event(rec: np.void, instruments: InstrumentTable) -> Any:
    """One EXEC_EVENT record -> kairos.v1.ExecutionEvent."""
    kind = record_enum(ExecKind, int(rec["kind"]), ExecKind.ACK)
    instrument = int(rec["instrument"])
    return pb.ExecutionEvent(
        event_seq=int(rec["event_seq"]), kind=to_pb(kind),
        client_order_id=bytes(rec["client_order_id"]).decode("ascii", "replace"),
        venue_order_id=int(rec["venue_order_id"]),
        venue=to_pb(record_enum(Venue, int(rec["venue"]), Venue.NONE)),
        instrument=symbol_of(instruments, instrument),
        side=to_pb(record_enum(Side, int(rec["side"]), Side.NONE)),
        state=to_pb(record_enum(OrderState, int(rec["state"]), OrderState.UNKNOWN)),
        price=float(rec["price"]), quantity=float(rec["qty"]), cum_quantity=float(rec["cum_qty"]),
        order_quantity=float(rec["order_qty"]), fee=float(rec["fee"]),
        reason=to_pb(record_enum(RejectReason, int(rec["reason"]), RejectReason.NONE)),
        strategy=int(rec["strategy"]), ts_event_ns=int(rec["ts_event_ns"]),
        ts_exchange_ns=int(rec["ts_exchange_ns"]), ts_origin_ns=int(rec["ts_origin_ns"]),
        trading_state=to_pb(TradingState(int(rec["flags"]))) if kind is ExecKind.STATE
        and int(rec["flags"]) in TradingState._value2member_map_ else 0,
    )


def symbol_of(instruments: InstrumentTable, instrument_id: int) -> str:
    try:
        return instruments.by_id(instrument_id).symbol
    except KeyError:
        return f"#{instrument_id}" if instrument_id else ""
