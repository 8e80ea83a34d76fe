"""Request validation: a kairos.v1 request in, a checked command out, or InvalidRequest saying why.

Everything the API can know without the gate is checked here (ids, enums, numbers, instruments
and venues from config). Risk limits are the gate's job and come back as REJECT events.
"""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass
from typing import Any

from kairos.api.convert import from_pb
from kairos.errors import InvalidRequest
from kairos.instruments import VENUE_NAMES, InstrumentTable
from kairos.records import CLIENT_ORDER_ID_LEN, OrderType, Side, Tif, TradingState, Venue

_DEFAULT_TIF = {OrderType.LIMIT: Tif.GTC, OrderType.LIMIT_MAKER: Tif.GTC, OrderType.MARKET: Tif.IOC}
_ALLOWED_TIF = {OrderType.LIMIT: set(Tif), OrderType.LIMIT_MAKER: {Tif.GTC}, OrderType.MARKET: {Tif.IOC, Tif.FOK}}
GENERATED_ID_PREFIX = "api"


@dataclass(frozen=True, slots=True)
class OrderCommand:
    client_order_id: str
    venue: Venue
    instrument: int
    side: Side
    order_type: OrderType
    tif: Tif
    price: float
    qty: float
    reduce_only: bool


@dataclass(frozen=True, slots=True)
class CancelCommand:
    client_order_id: str
    venue: Venue
    instrument: int


class Validator:
    """Built once from config; every method raises InvalidRequest with a message for the client."""

    __slots__ = ("_instruments", "_venues")

    def __init__(self, instruments: InstrumentTable, enabled_venues: frozenset[Venue]) -> None:
        self._instruments = instruments
        self._venues = enabled_venues

    @classmethod
    def from_settings(cls, instruments: InstrumentTable, venues: dict[str, Any]) -> Validator:
        return cls(instruments, frozenset(VENUE_NAMES[n] for n, v in venues.items() if v.enabled))

    def place(self, req: Any) -> OrderCommand:
        venue = self.venue(req.venue, required=True)
        instrument = self.instrument(req.instrument, venue, required=True)
        order_type = from_pb(OrderType, req.order_type, "order_type")
        tif = _DEFAULT_TIF[order_type] if req.time_in_force == 0 else from_pb(Tif, req.time_in_force, "time_in_force")
        if tif not in _ALLOWED_TIF[order_type]:
            raise InvalidRequest(f"time_in_force {tif.name} is not allowed for {order_type.name} orders")
        return OrderCommand(
            client_order_id=client_order_id(req.client_order_id, allow_empty=True),
            venue=venue, instrument=instrument, side=from_pb(Side, req.side, "side"),
            order_type=order_type, tif=tif, price=_price(req.price, order_type),
            qty=_positive("quantity", req.quantity), reduce_only=bool(req.reduce_only),
        )

    def cancel(self, req: Any) -> CancelCommand:
        venue = self.venue(req.venue, required=False)
        instrument = self.instrument(req.instrument, venue, required=False)
        return CancelCommand(client_order_id(req.client_order_id, allow_empty=False), venue, instrument)

    def venue(self, value: int, required: bool) -> Venue:
        if value == 0 and not required:
            return Venue.NONE
        venue = from_pb(Venue, value, "venue")
        if venue not in self._venues:
            raise InvalidRequest(f"venue {venue.name} is not enabled in this engine's config")
        return venue

    def instrument(self, symbol: str, venue: Venue, required: bool) -> int:
        """A configured symbol -> instrument id (0 when optional and empty)."""
        if not symbol and not required:
            return 0
        try:
            inst = self._instruments.by_symbol(symbol)
        except KeyError:
            known = ", ".join(i.symbol for i in self._instruments)
            raise InvalidRequest(f"unknown instrument {symbol[:40]!r}; configured: {known}") from None
        if venue is not Venue.NONE and venue not in inst.venue_symbols:
            raise InvalidRequest(f"instrument {symbol} is not listed on {venue.name}")
        return inst.id


def trading_state(value: int) -> TradingState:
    return from_pb(TradingState, value, "state")


def client_order_id(value: str, allow_empty: bool) -> str:
    """<= 32 ASCII letters and digits (what both venues accept); empty -> a fresh server id."""
    if not value:
        if not allow_empty:
            raise InvalidRequest("client_order_id is required")
        return GENERATED_ID_PREFIX + uuid.uuid4().hex[: CLIENT_ORDER_ID_LEN - len(GENERATED_ID_PREFIX)]
    if len(value) > CLIENT_ORDER_ID_LEN:
        raise InvalidRequest(f"client_order_id is {len(value)} characters; at most {CLIENT_ORDER_ID_LEN}")
    if not (value.isascii() and value.isalnum()):
        raise InvalidRequest(f"client_order_id {value!r} must be ASCII letters and digits only")
    return value


def _positive(name: str, value: float) -> float:
    """A finite, normal number > 0: NaN, infinities, 0, negatives and subnormals (5e-324) are refused."""
    if not sys.float_info.min <= value < float("inf"):
        raise InvalidRequest(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _price(value: float, order_type: OrderType) -> float:
    if order_type is OrderType.MARKET:
        if value != 0.0:
            raise InvalidRequest(f"price must be 0 (unset) for MARKET orders, got {value!r}")
        return 0.0
    return _positive("price", value)
