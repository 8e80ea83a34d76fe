"""Venue order rules (tick, lot step, min/max quantity, price range, min notional) as one flat table.

The gate fills it from each venue's own tables when the venue starts (live: the executor's
exchangeInfo / instruments; paper: the same documents from the venue's public REST), so every mode
refuses what the venue would refuse, before anything is sent. Plain floats indexed by grid key:
the pre-trade check reads them on the hot path. A value of 0 disables its rule, as on the venues;
a key never loaded has no rules and its orders are refused (fail closed).

`fit` rounds like the executors always have: a limit price to the tick, BUY down and SELL up (never
more aggressive than asked), a quantity down to the lot step. Within 1e-9 of a grid point (a few
ulps more for large step counts) a value counts as on it and is kept as is, float noise included
(the hot path: one division and one modulo per number; the executor's Decimal rounding writes it
exactly); an off-grid one becomes the float nearest its rounded decimal value.
"""

from __future__ import annotations

import math
import sys
from decimal import Decimal
from typing import TYPE_CHECKING

from kairos.records import OrderType, RejectReason, Side

if TYPE_CHECKING:
    from kairos.execution.filters import SymbolFilters

MIN_NORMAL = sys.float_info.min
INF = math.inf
_BUY, _MARKET = int(Side.BUY), int(OrderType.MARKET)
OK = int(RejectReason.NONE)
INVALID_ORDER = int(RejectReason.INVALID_ORDER)
NON_NORMAL_NUMBER = int(RejectReason.NON_NORMAL_NUMBER)
TICK_SIZE = int(RejectReason.TICK_SIZE)
LOT_SIZE = int(RejectReason.LOT_SIZE)
VENUE_UNAVAILABLE = int(RejectReason.VENUE_UNAVAILABLE)
GRID_TOLERANCE = 1e-9
FLOAT_NOISE = 1e-15  # relative error of value / step, a few ulps


def _digits(step: Decimal) -> int:
    """Decimal places of a step (0.01 -> 2, 5 -> 0): what `round` needs to land on the grid."""
    return max(0, -int(step.normalize().as_tuple().exponent)) if step else 0


def _snap(value: float, step: float, digits: int, up: bool) -> float:
    """An off-grid value rounded down (up: ceiling) to a multiple of ``step``, as the nearest float."""
    n = value / step
    return round((math.ceil(n) if up else math.floor(n)) * step, digits)


class VenueRules:
    """Per grid key: the venue's rules as floats (``max_*`` = inf when the venue sets none)."""

    __slots__ = ("loaded", "max_price", "max_qty", "min_notional", "min_price", "min_qty", "price", "qty",
                 "step", "step_digits", "tick", "tick_digits")

    def __init__(self, size: int) -> None:
        self.loaded = [False] * size
        self.tick, self.step = [0.0] * size, [0.0] * size
        self.tick_digits, self.step_digits = [0] * size, [0] * size
        self.min_price, self.max_price = [0.0] * size, [INF] * size
        self.min_qty, self.max_qty = [0.0] * size, [INF] * size
        self.min_notional = [0.0] * size
        self.price = self.qty = 0.0
        """The last order `fit` passed, rounded: what the gate books and sends."""

    def load(self, k: int, f: SymbolFilters) -> None:
        """One instrument's rules on one venue, from the venue's own (Decimal) filters."""
        self.tick[k], self.step[k] = float(f.tick), float(f.step)
        self.tick_digits[k], self.step_digits[k] = _digits(f.tick), _digits(f.step)
        self.min_price[k], self.max_price[k] = float(f.min_price_d), float(f.max_price_d) or INF
        self.min_qty[k], self.max_qty[k] = float(f.min_qty_d), float(f.max_qty_d) or INF
        self.min_notional[k] = float(f.min_notional_d)
        self.loaded[k] = True

    def fit(self, k: int, side: int, order_type: int, price: float, qty: float) -> int:
        """Verdict on the numbers of one order; on OK, ``price``/``qty`` hold it rounded (MARKET price 0)."""
        if not MIN_NORMAL <= qty < INF:  # NaN fails every comparison
            return INVALID_ORDER if qty <= 0.0 else NON_NORMAL_NUMBER
        if not self.loaded[k]:
            return VENUE_UNAVAILABLE
        if order_type == _MARKET:
            price = 0.0
        else:
            if not MIN_NORMAL <= price < INF:
                return TICK_SIZE if price <= 0.0 else NON_NORMAL_NUMBER
            tick = self.tick[k]
            if tick:
                n = price / tick
                off, tol = n % 1.0, GRID_TOLERANCE + n * FLOAT_NOISE
                if tol < off < 1.0 - tol:
                    price = _snap(price, tick, self.tick_digits[k], side != _BUY)
            if not 0.0 < price >= self.min_price[k] or price > self.max_price[k]:
                return TICK_SIZE
        step = self.step[k]
        if step:
            n = qty / step
            off, tol = n % 1.0, GRID_TOLERANCE + n * FLOAT_NOISE
            if tol < off < 1.0 - tol:
                qty = _snap(qty, step, self.step_digits[k], False)
        if not 0.0 < qty >= self.min_qty[k] or qty > self.max_qty[k]:
            return LOT_SIZE
        self.price, self.qty = price, qty
        return OK
