"""Idempotency for PlaceOrder: the first call with a client order id is the only one that sends.

A repeat (a client retrying after a timeout or a dropped connection) gets the first call's
outcome, waiting for it if it is still pending; a repeat with different parameters is refused.
Bounded LRU: the gate also rejects duplicate ids (DUPLICATE_ORDER) as the last line of defence.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from kairos.api.events import Outcome
from kairos.api.validation import OrderCommand


@dataclass(frozen=True, slots=True)
class Placement:
    cmd: OrderCommand
    outcome: Outcome


class Placements:
    __slots__ = ("_by_id", "_limit", "_lock")

    def __init__(self, limit: int = 65536) -> None:
        self._by_id: OrderedDict[str, Placement] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def begin(self, cmd: OrderCommand, outcome: Outcome) -> tuple[Placement, bool]:
        """(placement, True) if this call must send the order; (the first placement, False) if not."""
        with self._lock:
            first = self._by_id.get(cmd.client_order_id)
            if first is not None:
                self._by_id.move_to_end(cmd.client_order_id)
                return first, False
            placement = Placement(cmd, outcome)
            self._by_id[cmd.client_order_id] = placement
            if len(self._by_id) > self._limit:
                self._by_id.popitem(last=False)
            return placement, True

    def abandon(self, placement: Placement) -> None:
        """The order never reached the ring (RingFull): a retry with this id may send it."""
        with self._lock:
            if self._by_id.get(placement.cmd.client_order_id) is placement:
                del self._by_id[placement.cmd.client_order_id]
