"""The gate's published state (the contract: kairos/gatestate.py) -> kairos.v1 messages.

Enum fields carry the wire numbers of kairos/records.py; an id outside the enum (only a gate bug
could write one) maps to the default given here. ``age_s`` is set by the reader (GateStateReader).
"""

from __future__ import annotations

from typing import Any

from kairos.api.convert import record_enum, to_pb
from kairos.api.pb import pb
from kairos.gatestate import GateState
from kairos.records import OrderState, OrderType, Side, TradingState, Venue


def trading_state(state: GateState | None) -> TradingState | None:
    return None if state is None else record_enum(TradingState, state.trading_state_id, TradingState.HALTED)


def refused(state: GateState | None) -> int:
    """State changes the gate refused so far (it could not journal them: DISK_FULL)."""
    return state.trading_refused if state else 0


def reason(state: GateState | None) -> str:
    """Why the gate is in its trading state, e.g. "DISK_FULL: the journal cannot be written (...)"."""
    return state.trading_reason if state else ""


def _venue(venue_id: int) -> Any:
    return to_pb(record_enum(Venue, venue_id, Venue.NONE))


def _matches(venue_id: int, venue: Venue) -> bool:
    return venue is Venue.NONE or venue_id == int(venue)


def balances(state: GateState, venue: Venue) -> list[Any]:
    return [pb.Balance(venue=_venue(b.venue_id), asset=b.asset, free=b.free, locked=b.locked)
            for b in state.balances if _matches(b.venue_id, venue)]


def positions(state: GateState) -> list[Any]:
    return [pb.Position(venue=_venue(p.venue_id), instrument=p.instrument, quantity=p.quantity,
                        avg_price=p.avg_price, realized_pnl=p.realized_pnl) for p in state.positions]


def strategy_nets(state: GateState) -> list[Any]:
    return [pb.StrategyNet(strategy=n.strategy, instrument=n.instrument, net_quantity=n.net_quantity)
            for n in state.strategies]


def orders(state: GateState, venue: Venue, instrument: str) -> list[Any]:
    return [
        pb.Order(
            client_order_id=o.client_order_id, venue_order_id=o.venue_order_id, venue=_venue(o.venue_id),
            instrument=o.instrument, side=to_pb(record_enum(Side, o.side, Side.NONE)),
            order_type=to_pb(record_enum(OrderType, o.order_type, OrderType.LIMIT)),
            state=to_pb(record_enum(OrderState, o.state, OrderState.UNKNOWN)), price=o.price,
            quantity=o.quantity, cum_quantity=o.cum_quantity, strategy=o.strategy,
        )
        for o in state.orders
        if _matches(o.venue_id, venue) and (not instrument or o.instrument == instrument)
    ]
