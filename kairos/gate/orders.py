"""The gate's orders and the decisions it made on intents, keyed by client order id (bytes).

Legal state moves are the executors' (`kairos.execution.state.ALLOWED`); the gate applies the
same table to what executors report, so a stale or out-of-order report cannot move an order back.
A decision is remembered for every intent (accepted or rejected) with the intent's creation time:
the same id with the same time is the ring redelivering an intent after a crash (a replay); the
same id with another time is a real duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice

from kairos.execution.state import ALLOWED, LIVE, TERMINAL
from kairos.journal import KEEP_DECISIONS
from kairos.records import OrderState

_LIVE_STATES = frozenset(int(s) for s in LIVE)
_TERMINAL_STATES = frozenset(int(s) for s in TERMINAL)
_ALLOWED = {int(k): frozenset(int(s) for s in v) for k, v in ALLOWED.items()}


@dataclass(slots=True)
class Order:
    """One accepted order. ``k`` is the risk grid key; ``reserved`` what it still locks."""

    coid: bytes
    venue: int
    instrument: int
    k: int
    strategy: int
    side: int
    order_type: int
    tif: int
    price: float
    qty: float
    reserve_per_qty: float
    ts_origin_ns: int
    ts_created_ns: int
    flags: int = 0
    state: int = OrderState.NEW
    cum_qty: float = 0.0
    reserved: float = 0.0
    venue_order_id: int = 0
    cancel_pending: bool = False
    accepted_ns: int = 0

    @property
    def leaves(self) -> float:
        return max(self.qty - self.cum_qty, 0.0)


@dataclass(frozen=True, slots=True)
class Rejected:
    """What a rejected intent needs to have its REJECT event sent again."""

    venue: int
    instrument: int
    strategy: int
    side: int
    price: float
    qty: float
    ts_origin_ns: int
    reason: int


def can_move(order: Order, state: int, filled: bool) -> bool:
    """True if ``state`` is a legal next state (a fill may repeat PARTIAL while live)."""
    if state == order.state:
        return filled or state not in _TERMINAL_STATES
    return state in _ALLOWED.get(order.state, ()) or (filled and order.state in _LIVE_STATES)


def is_terminal(state: int) -> bool:
    return state in _TERMINAL_STATES


class Orders:
    """The newest ``limit`` order and intent decisions (and every open order); ``open`` holds the
    non-terminal orders. Older closed decisions are forgotten one by one as new ones come, so a
    gate that runs for months stays bounded; the journal keeps them until the next compaction."""

    __slots__ = ("_limit", "all", "decided", "open", "rejected")

    def __init__(self, limit: int = 2 * KEEP_DECISIONS) -> None:
        self._limit = limit
        self.all: dict[bytes, Order] = {}
        self.open: dict[bytes, Order] = {}
        self.decided: dict[bytes, int] = {}
        self.rejected: dict[bytes, Rejected] = {}

    def add(self, order: Order) -> None:
        self.all[order.coid] = order
        self.open[order.coid] = order
        self.decided[order.coid] = order.ts_created_ns
        self._trim()

    def restore(self, order: Order) -> bool:
        """An order from a compacted journal, as it stood; True if it is still open."""
        self.all[order.coid] = order
        self.decided[order.coid] = order.ts_created_ns
        is_open = not is_terminal(order.state)
        if is_open:
            self.open[order.coid] = order
        self._trim()
        return is_open

    def reject(self, coid: bytes, ts_created_ns: int, rejected: Rejected) -> None:
        self.decided[coid] = ts_created_ns
        self.rejected[coid] = rejected
        self._trim()

    def _trim(self) -> None:
        """Forget the oldest closed decisions beyond the limit (the oldest open orders are skipped)."""
        over = len(self.decided) - self._limit
        if over <= 0:
            return
        for coid in list(islice(self.decided, over + len(self.open))):
            if coid not in self.open:
                del self.decided[coid]
                self.all.pop(coid, None)
                self.rejected.pop(coid, None)
                over -= 1
                if not over:
                    return

    def close(self, order: Order) -> None:
        self.open.pop(order.coid, None)

    def awaiting(self) -> int:
        """Orders sent but not acknowledged, plus cancels not yet answered (the gate polls faster)."""
        return sum(1 for o in self.open.values() if o.state == OrderState.NEW or o.cancel_pending)

    def matching(self, venue: int, instrument: int) -> list[Order]:
        """Open orders on a venue/instrument (0 = any), for CANCEL_ALL."""
        return [o for o in self.open.values()
                if venue in (0, o.venue) and instrument in (0, o.instrument)]
