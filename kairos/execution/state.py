"""Per-order state machine: turns the venue's cumulative views of an order into ExecReports.

Every response (place, query, open-orders listing, cancel) is parsed into an `OrderView`
(cumulative filled qty/notional/fee and status). The tracker diffs it against what it already
reported, so the same fill is never reported twice whatever path saw it first. Legal moves::

    NEW -> ACK | PARTIAL | FILLED | CANCELED | EXPIRED | REJECTED
    ACK -> PARTIAL | FILLED | CANCELED | EXPIRED
    PARTIAL -> PARTIAL (more filled) | FILLED | CANCELED | EXPIRED
    FILLED, CANCELED, REJECTED, EXPIRED: terminal

An ACK is always reported before the first fill. State only moves forward: a view behind the
order (filled quantity went backwards, a live state after a fill, anything after the end) is
counted ``stale`` and ignored; any other illegal move is counted ``illegal``. Thread-safe: HTTP
workers and the private stream thread call it.

Private streams (`apply_fill`) carry one fill per event with its trade id: a trade id seen before
is a duplicate (``duplicates``); when the venue tells only each fill's fee (Binance, Bybit's
``execution``), a fill whose predecessor has not arrived yet (reordered) is held until it has, so each
keeps its own fee and price; a fill already covered by a cumulative view (REST, Bybit's ``order``)
only records its trade id.

FILLED is reached only with fill reports totalling the order's quantity (the venue's ``qty`` when a
view carries it): a view saying FILLED short of it (a held fill, a view capped at the reconciled
trades) leaves the order live, counts ``short_filled`` and calls ``on_short`` so the executor fetches
the missing fills at once instead of losing them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from kairos.execution.base import ExecReport, OrderRequest
from kairos.records import ExecKind, OrderState, OrderType, RejectReason, Side

TERMINAL: Final = frozenset({OrderState.FILLED, OrderState.CANCELED, OrderState.REJECTED, OrderState.EXPIRED})
LIVE: Final = frozenset({OrderState.ACK, OrderState.PARTIAL})
ALLOWED: Final = {
    OrderState.NEW: frozenset(TERMINAL | LIVE),
    OrderState.ACK: frozenset({OrderState.PARTIAL, OrderState.FILLED, OrderState.CANCELED, OrderState.EXPIRED}),
    OrderState.PARTIAL: frozenset({OrderState.PARTIAL, OrderState.FILLED, OrderState.CANCELED,
                                   OrderState.EXPIRED}),
}
_END_KIND: Final = {OrderState.CANCELED: ExecKind.CANCELED, OrderState.EXPIRED: ExecKind.EXPIRED}
RANK: Final = {OrderState.NEW: 0, OrderState.ACK: 1, OrderState.PARTIAL: 2} | {s: 3 for s in TERMINAL}
_EPS: Final = 1e-12
DONE_KEPT: Final = 4096


@dataclass(slots=True)
class OrderView:
    """What one venue response says about one order. ``fee_cum`` None = the venue did not say."""

    client_order_id: str
    state: OrderState
    cum_qty: float = 0.0
    cum_quote: float = 0.0
    fee_cum: float | None = 0.0
    fee_asset: str = ""
    venue_order_id: int = 0
    symbol: str = ""
    side: Side = Side.NONE
    price: float = 0.0
    qty: float = 0.0
    ts_exchange_ns: int = 0


@dataclass(frozen=True, slots=True)
class TradeFill:
    """One venue fill as a private stream tells it; ``fee`` is a cost (positive) in ``fee_asset``."""

    trade_id: str
    qty: float
    price: float
    fee: float
    fee_asset: str


@dataclass(slots=True)
class Order:
    client_order_id: str
    instrument: int
    symbol: str
    side: Side
    order_type: OrderType
    price: float
    qty: float
    state: OrderState = OrderState.NEW
    cum_qty: float = 0.0
    cum_quote: float = 0.0
    fee_cum: float = 0.0
    venue_order_id: int = 0
    ts_sent_ns: int = 0
    unknown: bool = False       # outcome unknown: the venue may or may not have it
    expires_ns: int = 0         # monotonic time after which the request can no longer execute
    cause: tuple[str, str] = ("", "")   # venue code and message that made the outcome unknown
    trades: set[str] = field(default_factory=set)                              # trade ids seen
    held: list[tuple[OrderView, TradeFill]] = field(default_factory=list)      # fills waiting for a predecessor


FeeModel = Callable[[Order, float, float], tuple[float, str]]
"""(order, fill qty, fill notional) -> (fee, asset) when the venue's response carries no fee."""


class OrderTracker:
    __slots__ = ("_done", "_emit", "_fee_model", "_lock", "_on_short", "_orders", "duplicates", "foreign", "held",
                 "illegal", "short_filled", "stale")

    def __init__(self, emit: Callable[[ExecReport], None], fee_model: FeeModel,
                 on_short: Callable[[], None] = lambda: None) -> None:
        self._emit = emit
        self._fee_model = fee_model
        self._on_short = on_short
        self._lock = threading.Lock()
        self._orders: dict[str, Order] = {}
        self._done: OrderedDict[str, Order] = OrderedDict()
        self.illegal = 0
        self.stale = 0
        self.foreign = 0
        self.duplicates = 0
        self.held = 0
        self.short_filled = 0

    def open(self, req: OrderRequest) -> bool:
        """Register a new order in state NEW; False if that client order id is already known."""
        with self._lock:
            coid = req.client_order_id
            if coid in self._orders or coid in self._done:
                return False
            self._orders[coid] = Order(coid, req.instrument, req.symbol, req.side, req.order_type,
                                       req.price, req.qty)
            return True

    def adopt(self, order: Order) -> None:
        """Track an order found open on the venue (placed by an earlier run)."""
        with self._lock:
            self._orders.setdefault(order.client_order_id, order)

    def sent(self, coid: str, ts_ns: int) -> None:
        with self._lock:
            order = self._orders.get(coid)
            if order is not None:
                order.ts_sent_ns = ts_ns

    def mark_unknown(self, coid: str, expires_ns: int, code: str, message: str) -> None:
        """The venue may or may not have this order; it stays live (polled) until a view or a reject."""
        with self._lock:
            order = self._orders.get(coid)
            if order is not None and order.state is OrderState.NEW:
                order.unknown, order.expires_ns, order.cause = True, expires_ns, (code, message)

    def get(self, coid: str) -> Order | None:
        with self._lock:
            return self._orders.get(coid) or self._done.get(coid)

    def live(self) -> list[Order]:
        """Orders the venue may still change: acknowledged, partly filled, or of unknown outcome."""
        with self._lock:
            return [o for o in self._orders.values() if o.state in LIVE or o.unknown]

    def reject(self, coid: str, reason: RejectReason, code: str, message: str) -> bool:
        """NEW -> REJECTED (a definite refusal: local filter, venue error, rate limit); False if illegal."""
        with self._lock:
            order = self._orders.get(coid)
            if order is None or order.state is not OrderState.NEW:
                self.illegal += order is not None or coid not in self._done
                return False
            self._report(order, ExecKind.REJECT, OrderState.REJECTED, reason=reason, code=code, message=message)
            self._finish(order)
            return True

    def cancel_reject(self, coid: str, reason: RejectReason, code: str, message: str) -> None:
        """The cancel failed; the order keeps its state (UNKNOWN for an order this executor never saw)."""
        with self._lock:
            order = self._orders.get(coid) or self._done.get(coid)
            if order is None:
                order = Order(coid, 0, "", Side.NONE, OrderType.LIMIT, 0.0, 0.0, OrderState.UNKNOWN)
            self._report(order, ExecKind.CANCEL_REJECT, order.state, reason=reason, code=code, message=message)

    def apply(self, view: OrderView) -> int:
        """Report what changed since the last view of this order; returns the number of reports."""
        with self._lock:
            order = self._orders.get(view.client_order_id)
            if order is None:
                return self._unknown_view(view)
            if view.cum_qty < order.cum_qty - _EPS:
                return self._stale()
            return self._advance(order, view) + self._release(order)

    def apply_fill(self, view: OrderView, fill: TradeFill) -> int:
        """A stream event carrying one fill: idempotent by trade id, each fill with its own fee."""
        with self._lock:
            order = self._orders.get(view.client_order_id)
            if order is None or view.cum_qty < order.cum_qty - _EPS:
                return self._unknown_view(view) if order is None else self._stale()
            if fill.trade_id in order.trades:
                self.duplicates += 1
                return 0
            before = view.cum_qty - fill.qty
            if view.fee_cum is None and before > order.cum_qty + _tolerance(view.cum_qty):
                order.held.append((view, fill))
                self.held += 1
                return 0
            count = self._apply_trade(order, view, fill)
            return count + self._release(order)

    def _apply_trade(self, order: Order, view: OrderView, fill: TradeFill) -> int:
        order.trades.add(fill.trade_id)
        if view.cum_qty - order.cum_qty <= _tolerance(view.cum_qty):
            return self._advance(order, view)  # a cumulative view (REST) already reported this fill
        if view.fee_cum is None:  # the venue tells this fill's fee only (Binance, Bybit): reported as it is
            return self._advance(order, view, fill)
        return self._advance(order, view)

    def _release(self, order: Order) -> int:
        """Apply held fills whose predecessor has now arrived (or that a later view covered)."""
        count = 0
        while order.state not in TERMINAL:
            ready = next((item for item in order.held
                          if item[0].cum_qty - item[1].qty <= order.cum_qty + _tolerance(item[0].cum_qty)), None)
            if ready is None:
                break
            order.held.remove(ready)
            count += self._apply_trade(order, *ready)
        return count

    def _unknown_view(self, view: OrderView) -> int:
        if view.client_order_id in self._done:
            self.stale += view.state is not self._done[view.client_order_id].state
        else:
            self.foreign += 1
        return 0

    def _stale(self) -> int:
        self.stale += 1
        return 0

    def _advance(self, order: Order, view: OrderView, trade: TradeFill | None = None) -> int:
        order.qty = view.qty or order.qty  # the venue's (rounded) quantity is what a fill must total
        target, filled = view.state, view.cum_qty - order.cum_qty > _EPS
        if target is OrderState.FILLED and view.cum_qty < order.qty - _tolerance(order.qty):
            target = self._short(order, view)
        if target is order.state and not filled:
            return 0
        if not filled and RANK[target] < RANK[order.state]:
            return self._stale()  # a late event: the order has moved on
        if target not in ALLOWED.get(order.state, ()) and not (filled and order.state in LIVE):
            self.illegal += 1
            return 0
        order.unknown = False
        order.venue_order_id = view.venue_order_id or order.venue_order_id
        count = 0
        if order.state is OrderState.NEW and target is not OrderState.REJECTED:
            count += self._report(order, ExecKind.ACK, OrderState.ACK, view=view)
        if target is OrderState.REJECTED:
            count += self._report(order, ExecKind.REJECT, target, reason=RejectReason.VENUE_REJECTED, view=view)
        if filled:
            count += self._fill(order, view, trade, target)
        if target in _END_KIND:
            count += self._report(order, _END_KIND[target], target, view=view)
        order.state = OrderState.PARTIAL if target is OrderState.ACK and order.cum_qty > _EPS else target
        if order.state in TERMINAL:
            self._finish(order)
        return count

    def _short(self, order: Order, view: OrderView) -> OrderState:
        """FILLED short of the order's quantity: what the view does prove (live), and fetch the rest now."""
        self.short_filled += 1
        self._on_short()
        return OrderState.PARTIAL if view.cum_qty > _EPS or order.cum_qty > _EPS else OrderState.ACK

    def _fill(self, order: Order, view: OrderView, trade: TradeFill | None, target: OrderState) -> int:
        """One FILL for what the view adds; a venue trade brings its own price and fee (a Bybit
        ``execution`` view carries no cumulative value, so the order's value is summed here)."""
        qty = view.cum_qty - order.cum_qty
        if trade is not None:
            px, quote, fee, asset = trade.price, trade.price * qty, trade.fee, trade.fee_asset
        else:
            quote = view.cum_quote - order.cum_quote
            px = quote / qty if quote > _EPS else (view.price or order.price)
            if view.fee_cum is None:
                fee, asset = self._fee_model(order, qty, quote if quote > _EPS else px * qty)
            else:
                fee, asset = view.fee_cum - order.fee_cum, view.fee_asset
        order.cum_qty, order.cum_quote = view.cum_qty, order.cum_quote + quote
        order.fee_cum += fee
        state = OrderState.FILLED if target is OrderState.FILLED else OrderState.PARTIAL
        return self._report(order, ExecKind.FILL, state, view=view, last=(px, qty, fee, asset))

    def _report(self, order: Order, kind: ExecKind, state: OrderState, *, reason: RejectReason = RejectReason.NONE,
                code: str = "", message: str = "", view: OrderView | None = None,
                last: tuple[float, float, float, str] = (0.0, 0.0, 0.0, "")) -> int:
        order.state = state if kind is not ExecKind.CANCEL_REJECT else order.state
        self._emit(ExecReport(
            order.client_order_id, kind, state, last[0], last[1], order.cum_qty, last[2], order.venue_order_id,
            reason, code, message, view.ts_exchange_ns if view else 0, order.ts_sent_ns, order.instrument,
            order.side, order.price, order.qty, last[3]))
        return 1

    def _finish(self, order: Order) -> None:
        order.held.clear()
        self._orders.pop(order.client_order_id, None)
        self._done[order.client_order_id] = order
        while len(self._done) > DONE_KEPT:
            self._done.popitem(last=False)


def _tolerance(qty: float) -> float:
    """Float slack when comparing cumulative quantities parsed from decimal strings."""
    return _EPS + 1e-12 * qty
