"""Symbol filters (tick, lot, minimum size and notional), parsed once from the venue's own tables.

Rounding is Decimal-exact: a float from a strategy becomes ``Decimal(repr(x))`` (the shortest
string that round-trips), is snapped to the grid, and is sent as that exact string. A limit of 0
disables its check. Each venue's parser of its own tables lives in its module
(``binance_filters`` in kairos/execution/binance.py, ``okx_filters`` in okx.py, ``bybit_filters`` in bybit.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any, Final

from kairos.records import Side

ZERO: Final = Decimal(0)
GRID_TOLERANCE: Final = Decimal("1e-9")
_PRICE_ROUNDING: Final = {Side.BUY: ROUND_FLOOR, Side.SELL: ROUND_CEILING, Side.NONE: ROUND_HALF_EVEN}


def dec(value: float | str | Decimal) -> Decimal:
    """A float as the decimal a human would read (repr round-trips), or a venue string as-is."""
    if isinstance(value, Decimal):
        return value
    return Decimal(value if isinstance(value, str) else repr(float(value)))


def _snap(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    """Round to a multiple of ``step``; within 1e-9 step of a grid point counts as on it (float noise)."""
    if step == ZERO:
        return value
    ratio = value / step
    nearest = ratio.to_integral_value(ROUND_HALF_EVEN)
    ticks = nearest if abs(ratio - nearest) < GRID_TOLERANCE else ratio.to_integral_value(rounding)
    return (ticks * step).quantize(step)


def wire(value: Decimal) -> str:
    """Plain decimal notation (never exponent form), trailing zeros dropped."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True, slots=True)
class SymbolFilters:
    """One symbol's order rules. Decimal fields are the venue's exact values; 0 disables a rule."""

    tick: Decimal
    step: Decimal
    min_qty_d: Decimal = ZERO
    max_qty_d: Decimal = ZERO
    min_price_d: Decimal = ZERO
    max_price_d: Decimal = ZERO
    min_notional_d: Decimal = ZERO
    max_notional_d: Decimal = ZERO

    @property
    def tick_size(self) -> float:
        return float(self.tick)

    @property
    def lot_size(self) -> float:
        return float(self.step)

    @property
    def min_qty(self) -> float:
        return float(self.min_qty_d)

    @property
    def min_notional(self) -> float:
        return float(self.min_notional_d)

    def quantize_price(self, price: float | Decimal, side: Side = Side.NONE) -> Decimal:
        """Snap to the tick: a BUY rounds down and a SELL up (never more aggressive than asked)."""
        return _snap(dec(price), self.tick, _PRICE_ROUNDING[side])

    def quantize_qty(self, qty: float | Decimal) -> Decimal:
        """Snap down to the lot step: never trade more than asked."""
        return _snap(dec(qty), self.step, ROUND_FLOOR)

    def round_price(self, price: float, side: Side = Side.NONE) -> float:
        return float(self.quantize_price(price, side))

    def round_qty(self, qty: float) -> float:
        return float(self.quantize_qty(qty))

    def rounded(self, price: float | None, qty: float, side: Side) -> tuple[Decimal | None, Decimal, str]:
        """What an adapter sends (price None = market order), rounded to the grid, and the first rule it
        still breaks ('' if none): the exact check a venue applies to that request."""
        px = None if price is None else self.quantize_price(price, side)
        size = self.quantize_qty(qty)
        return px, size, self.violation(px, size)

    def violation(self, price: Decimal | None, qty: Decimal) -> str:
        """The first rule an order breaks ('' if none); ``price`` None = market order."""
        if qty <= ZERO or (self.step and qty % self.step) or qty < self.min_qty_d:
            return "LOT_SIZE"
        if self.max_qty_d and qty > self.max_qty_d:
            return "LOT_SIZE"
        if price is None:
            return ""
        if price <= ZERO or (self.tick and price % self.tick) or price < self.min_price_d:
            return "PRICE_FILTER"
        if self.max_price_d and price > self.max_price_d:
            return "PRICE_FILTER"
        notional = price * qty
        if notional < self.min_notional_d or (self.max_notional_d and notional > self.max_notional_d):
            return "NOTIONAL"
        return ""


def venue_decimal(raw: Any) -> Decimal:
    """A venue number field; empty string or missing means 0 (= rule disabled)."""
    return Decimal(str(raw)) if raw not in (None, "") else ZERO
