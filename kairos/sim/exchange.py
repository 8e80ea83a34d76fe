"""The simulator's matching engine and account for one venue, in exact Decimals, venue-neutral.

Orders match against the `SimMarket` book (the random walk is the rest of the market):

- Taker part: a marketable order consumes book liquidity through ``market.take`` at the book's
  prices (taker fee). MARKET and IOC expire their remainder; FOK fills completely or expires
  untouched; GTC rests. LIMIT_MAKER that would take is refused (Binance) or canceled (OKX),
  per ``post_only_rejects``.
- Maker part: after every book change, a resting order the book has crossed fills at its own
  price (maker fee) for as much as the crossing liquidity, which is consumed from the book, so a
  big order fills over several moves (partial fills).

Balances: a BUY locks quote (price x qty; market buys lock the book-walk cost + 2 %), a SELL
locks base. Fees are charged in the asset received. ``transfer`` is a deposit or withdrawal (out of
band: no order), told to the listeners as a `BalanceChange`. Thread-safe: one lock per exchange.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum

from kairos.records import Side, Venue
from kairos.sim.book import VenueSpec
from kairos.sim.market import SimMarket
from kairos.sim.router import now_ms

ZERO = Decimal(0)
MARKET_BUFFER = Decimal("1.02")


def plain(value: Decimal) -> str:
    """Full precision, no exponent: how the simulator tells the ledger exactly (private streams, myTrades)."""
    return f"{value.normalize():f}"


Fill = tuple[Decimal, Decimal, Decimal, int]
"""One fill of an order: price, qty, fee, trade id."""


class Status(Enum):
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"


OPEN = frozenset({Status.NEW, Status.PARTIALLY_FILLED})


class Refusal(Enum):
    """Why the engine refused a request; each dialect maps these to its own codes and texts."""

    PRICE_FILTER = "PRICE_FILTER"
    LOT_SIZE = "LOT_SIZE"
    NOTIONAL = "NOTIONAL"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
    DUPLICATE = "DUPLICATE"
    WOULD_TAKE = "WOULD_TAKE"
    UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"
    UNKNOWN_ORDER = "UNKNOWN_ORDER"
    ORDER_CLOSED = "ORDER_CLOSED"


class SimRefused(Exception):
    def __init__(self, refusal: Refusal, detail: str = "") -> None:
        super().__init__(f"{refusal.value}: {detail}")
        self.refusal = refusal


@dataclass(slots=True)
class SimOrder:
    client_order_id: str
    order_id: int
    symbol: str
    side: Side
    kind: str                   # LIMIT | MARKET | LIMIT_MAKER
    tif: str                    # GTC | IOC | FOK
    price: Decimal | None
    qty: Decimal
    created_ms: int
    status: Status = Status.NEW
    filled: Decimal = ZERO
    quote: Decimal = ZERO
    fee: Decimal = ZERO
    fee_asset: str = ""
    locked: Decimal = ZERO      # still reserved for the unfilled rest
    updated_ms: int = 0
    fills: list[Fill] = field(default_factory=list)

    def snapshot(self) -> SimOrder:
        """A copy without the fills list, safe to hand to another thread (direct: ``dataclasses.replace`` costs
        ~10 us per order on the hot path)."""
        return SimOrder(self.client_order_id, self.order_id, self.symbol, self.side, self.kind, self.tif,
                        self.price, self.qty, self.created_ms, self.status, self.filled, self.quote, self.fee,
                        self.fee_asset, self.locked, self.updated_ms, [])


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """One change of one order for the private streams: a copy, safe to hand to another thread.

    ``exec_type`` NEW | TRADE | CANCELED | EXPIRED; ``last`` (px, qty, fee, trade id) on TRADE;
    ``balances`` the (free, locked) of the order's two assets after the change.
    """

    exec_type: str
    order: SimOrder
    last: Fill | None
    balances: dict[str, tuple[Decimal, Decimal]]
    ts_ms: int


@dataclass(frozen=True, slots=True)
class BalanceChange:
    """A deposit (``delta`` > 0) or withdrawal of free funds; ``balances``: the asset's (free, locked) after."""

    asset: str
    delta: Decimal
    balances: dict[str, tuple[Decimal, Decimal]]
    ts_ms: int


Listener = Callable[[OrderUpdate | BalanceChange], None]


@dataclass(slots=True)
class Account:
    free: dict[str, Decimal] = field(default_factory=dict)
    locked: dict[str, Decimal] = field(default_factory=dict)

    def lock(self, asset: str, amount: Decimal) -> None:
        if self.free.get(asset, ZERO) < amount:
            raise SimRefused(Refusal.INSUFFICIENT_BALANCE, f"{asset} free {self.free.get(asset, ZERO)} < {amount}")
        self.free[asset] -= amount
        self.locked[asset] = self.locked.get(asset, ZERO) + amount

    def release(self, asset: str, amount: Decimal) -> None:
        self.locked[asset] -= amount
        self.free[asset] += amount

    def move(self, asset: str, locked_out: Decimal, received_asset: str, received: Decimal) -> None:
        self.locked[asset] -= locked_out
        self.free[received_asset] = self.free.get(received_asset, ZERO) + received


class SimExchange:
    """Orders and balances of one account on one simulated venue."""

    def __init__(self, venue: Venue, market: SimMarket, assets: dict[str, tuple[str, str]],
                 balances: dict[str, float], fees_bps: tuple[float, float], post_only_rejects: bool,
                 first_order_id: int) -> None:
        self.venue = venue
        self._market = market
        self._assets = assets                     # venue symbol -> (base, quote)
        self._maker, self._taker = (Decimal(str(bps)) / 10000 for bps in fees_bps)
        self._post_only_rejects = post_only_rejects
        self._lock = threading.RLock()
        self._local = threading.local()
        self._next_id = first_order_id
        self._trade_id = first_order_id
        self.account = Account({a: Decimal(str(v)) for a, v in balances.items()})
        self._orders: dict[str, SimOrder] = {}
        self._listeners: list[Listener] = []
        market.add_listener(self._on_market)

    def add_listener(self, listener: Listener) -> None:
        """Called with every order change, in order, under the exchange lock (it must only enqueue)."""
        self._listeners.append(listener)

    # -- requests ---------------------------------------------------------------------------------

    def place(self, coid: str, symbol: str, side: Side, kind: str, tif: str, price: Decimal | None,
              qty: Decimal) -> SimOrder:
        spec = self._spec(symbol)
        with self._lock:
            existing = self._orders.get(coid)
            if existing is not None and existing.status in OPEN:
                raise SimRefused(Refusal.DUPLICATE, coid)
            self._check_filters(spec, side, price, qty)
            order = SimOrder(coid, self._next_id, symbol, side, kind, tif, price, qty, now_ms())
            self._reserve(order, spec)
            self._next_id += 1
            self._orders[coid] = order
            self._notify(order, "NEW")
            self._local.busy = True
            try:
                self._take(order, spec)
            finally:
                self._local.busy = False
            return order

    def cancel(self, symbol: str, coid: str) -> SimOrder:
        with self._lock:
            order = self._orders.get(coid)
            if order is None or order.symbol != symbol:
                raise SimRefused(Refusal.UNKNOWN_ORDER, coid)
            if order.status not in OPEN:
                raise SimRefused(Refusal.ORDER_CLOSED, coid)
            self._close(order, Status.CANCELED)
            return order

    def get(self, symbol: str, coid: str) -> SimOrder | None:
        with self._lock:
            order = self._orders.get(coid)
            return order if order is not None and order.symbol == symbol else None

    def open_orders(self, symbol: str | None = None) -> list[SimOrder]:
        with self._lock:
            return [o for o in self._orders.values() if o.status in OPEN and symbol in (None, o.symbol)]

    def trades(self, symbol: str, order_id: int | None = None) -> list[tuple[SimOrder, Fill]]:
        """Every fill (px, qty, fee, trade id) of ``symbol`` (of one order if ``order_id``), oldest first."""
        with self._lock:
            fills = [(o.snapshot(), f) for o in self._orders.values()
                     if o.symbol == symbol and order_id in (None, o.order_id) for f in o.fills]
        return sorted(fills, key=lambda item: item[1][3])

    def balances(self) -> dict[str, tuple[Decimal, Decimal]]:
        with self._lock:
            acct = self.account
            return {a: (acct.free.get(a, ZERO), acct.locked.get(a, ZERO)) for a in acct.free.keys() | acct.locked}

    def transfer(self, asset: str, delta: Decimal) -> tuple[Decimal, Decimal]:
        """Deposit (> 0) or withdraw (< 0) free funds, as the venue's wallet would; SimRefused if free is short.
        Returns the asset's (free, locked) after; the listeners hear it (private streams push it)."""
        with self._lock:
            acct = self.account
            free = acct.free.get(asset, ZERO) + delta
            if free < ZERO:
                raise SimRefused(Refusal.INSUFFICIENT_BALANCE, f"{asset} free {free - delta} < {-delta}")
            acct.free[asset] = free
            after = (free, acct.locked.get(asset, ZERO))
            change = BalanceChange(asset, delta, {asset: after}, now_ms())
            for listener in self._listeners:
                listener(change)
        return after

    def assets(self, symbol: str) -> tuple[str, str]:
        """(base, quote) of a venue symbol."""
        return self._assets[symbol]

    # -- matching ---------------------------------------------------------------------------------

    def _check_filters(self, spec: VenueSpec, side: Side, price: Decimal | None, qty: Decimal) -> None:
        if qty <= ZERO or qty % spec.lot or qty < spec.min_qty:
            raise SimRefused(Refusal.LOT_SIZE, f"qty {qty} step {spec.lot} min {spec.min_qty}")
        if price is not None and (price <= ZERO or price % spec.tick):
            raise SimRefused(Refusal.PRICE_FILTER, f"price {price} tick {spec.tick}")
        reference = price if price is not None else self._touch(spec.symbol, side)
        if reference * qty < spec.min_notional:
            raise SimRefused(Refusal.NOTIONAL, f"notional {reference * qty} < {spec.min_notional}")

    def _reserve(self, order: SimOrder, spec: VenueSpec) -> None:
        base, quote = self._assets[order.symbol]
        if order.kind == "LIMIT_MAKER" and self._post_only_rejects and self._crosses(order):
            raise SimRefused(Refusal.WOULD_TAKE, order.client_order_id)
        if order.side is Side.SELL:
            order.locked = order.qty
            self.account.lock(base, order.locked)
        elif order.price is not None:
            order.locked = order.price * order.qty
            self.account.lock(quote, order.locked)
        else:
            order.locked = self._cost(order.symbol, order.qty) * MARKET_BUFFER
            self.account.lock(quote, order.locked)

    def _take(self, order: SimOrder, spec: VenueSpec) -> None:
        if order.kind == "LIMIT_MAKER" and self._crosses(order):
            self._close(order, Status.CANCELED)
            return
        if order.tif == "FOK" and self._available(order) < order.qty:
            self._close(order, Status.EXPIRED)
            return
        if order.kind == "MARKET" or self._crosses(order):
            fills = self._market.take(self.venue, order.symbol, order.side, order.qty, order.price)
            for level in fills:
                self._fill(order, level.price, level.qty, self._taker)
        if order.status in OPEN and (order.kind == "MARKET" or order.tif in ("IOC", "FOK")):
            self._close(order, Status.EXPIRED)

    def _on_market(self, venue: Venue, symbol: str) -> None:
        """A book moved: fill resting orders it crossed, at their own price (maker)."""
        if venue is not self.venue or getattr(self._local, "busy", False):
            return
        with self._lock:
            self._local.busy = True
            try:
                for order in [o for o in self._orders.values() if o.symbol == symbol and o.status in OPEN]:
                    if self._crosses(order):
                        fills = self._market.take(venue, symbol, order.side, order.qty - order.filled, order.price)
                        self._fill(order, order.price, sum((f.qty for f in fills), ZERO), self._maker)
            finally:
                self._local.busy = False

    def _fill(self, order: SimOrder, price: Decimal, qty: Decimal, fee_rate: Decimal) -> None:
        if qty <= ZERO:
            return
        base, quote = self._assets[order.symbol]
        notional = price * qty
        if order.side is Side.BUY:
            reserved = notional if order.price is None else order.price * qty
            fee, order.fee_asset = qty * fee_rate, base
            self.account.move(quote, notional, base, qty - fee)
            self.account.release(quote, reserved - notional)
        else:
            fee, order.fee_asset = notional * fee_rate, quote
            reserved = qty
            self.account.move(base, qty, quote, notional - fee)
        order.locked -= reserved
        order.filled += qty
        order.quote += notional
        order.fee += fee
        self._trade_id += 1
        order.fills.append((price, qty, fee, self._trade_id))
        order.updated_ms = now_ms()
        order.status = Status.FILLED if order.filled >= order.qty else Status.PARTIALLY_FILLED
        if order.status is Status.FILLED:
            self._close(order, Status.FILLED)
        self._notify(order, "TRADE", order.fills[-1])

    def _close(self, order: SimOrder, status: Status) -> None:
        base, quote = self._assets[order.symbol]
        if order.locked > ZERO:
            self.account.release(base if order.side is Side.SELL else quote, order.locked)
        order.locked = ZERO
        order.status = status
        order.updated_ms = now_ms()
        if status is not Status.FILLED:  # a fill that completes the order is told by its TRADE
            self._notify(order, status.value)

    def _notify(self, order: SimOrder, exec_type: str,
                last: Fill | None = None) -> None:
        if not self._listeners:
            return
        acct = self.account
        balances = {a: (acct.free.get(a, ZERO), acct.locked.get(a, ZERO)) for a in self._assets[order.symbol]}
        update = OrderUpdate(exec_type, order.snapshot(), last, balances, now_ms())
        for listener in self._listeners:
            listener(update)

    # -- book reads -------------------------------------------------------------------------------

    def _crosses(self, order: SimOrder) -> bool:
        if order.price is None:
            return True
        touch = self._touch(order.symbol, order.side)
        return touch > ZERO and (order.price >= touch if order.side is Side.BUY else order.price <= touch)

    def _touch(self, symbol: str, side: Side) -> Decimal:
        """The price an aggressor on ``side`` would meet first (0 if that side is empty)."""
        price = self._market.touch(self.venue, symbol, side)
        return ZERO if price is None else price

    def _available(self, order: SimOrder) -> Decimal:
        view = self._market.book(self.venue, order.symbol, depth=1000)
        levels = view.asks if order.side is Side.BUY else view.bids
        price = order.price
        return sum((lv.qty for lv in levels if price is None or
                    (lv.price <= price if order.side is Side.BUY else lv.price >= price)), ZERO)

    def _cost(self, symbol: str, qty: Decimal) -> Decimal:
        """Quote needed to buy ``qty`` at market now, walking the asks."""
        cost, left = ZERO, qty
        for level in self._market.book(self.venue, symbol, depth=1000).asks:
            take = min(left, level.qty)
            cost, left = cost + take * level.price, left - take
            if left <= ZERO:
                break
        return cost

    def _spec(self, symbol: str) -> VenueSpec:
        if symbol not in self._assets:
            raise SimRefused(Refusal.UNKNOWN_SYMBOL, symbol)
        return self._market.spec(self.venue, symbol)
