"""Commands for the gate, written as ORDER_INTENT records into the `manual` ring.

The manual ring has exactly one producer: this object, shared by the gRPC threads and the
arbiter (CANCEL_ALL at shutdown, HALTED when the gate goes FATAL), so publishing is serialised by
a lock. A full ring raises RingFull after the ring's bounded wait; the caller maps it to
RESOURCE_EXHAUSTED. Nothing here waits for the gate: outcomes arrive on the events ring.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import numpy as np

from kairos.api.validation import CancelCommand, OrderCommand
from kairos.records import ORDER_INTENT, Action, IntentFlag, TradingState, Venue

MANUAL_STRATEGY = 0  # strategy id of every intent that comes from the API


class ManualOrders:
    """The producer side of the `manual` ring."""

    __slots__ = ("_lock", "_producer")

    def __init__(self, producer: Any) -> None:
        self._producer = producer
        self._lock = threading.Lock()

    def place(self, cmd: OrderCommand) -> None:
        flags = IntentFlag.MANUAL | (IntentFlag.REDUCE_ONLY if cmd.reduce_only else 0)
        self._publish(Action.NEW, cmd.client_order_id, cmd.venue, cmd.instrument, flags=int(flags),
                      side=int(cmd.side), order_type=int(cmd.order_type), tif=int(cmd.tif),
                      price=cmd.price, qty=cmd.qty)

    def cancel(self, cmd: CancelCommand) -> None:
        self._publish(Action.CANCEL, cmd.client_order_id, cmd.venue, cmd.instrument, flags=int(IntentFlag.MANUAL))

    def cancel_all(self, venue: Venue = Venue.NONE) -> str:
        """Cancel every open order (on one venue, or all); returns the command's id."""
        return self._publish(Action.CANCEL_ALL, _command_id("ca"), venue, 0, flags=int(IntentFlag.MANUAL))

    def set_state(self, state: TradingState) -> str:
        """SET_STATE carries the TradingState in ``flags`` (records.Action)."""
        return self._publish(Action.SET_STATE, _command_id("st"), Venue.NONE, 0, flags=int(state))

    def _publish(self, action: Action, client_order_id: str, venue: Venue, instrument: int, **fields: Any) -> str:
        rec = np.zeros(1, ORDER_INTENT)  # not the hot path: a fresh record per command
        rec["client_order_id"] = client_order_id.encode("ascii")
        rec["action"] = int(action)
        rec["venue"] = int(venue)
        rec["instrument"] = instrument
        rec["strategy"] = MANUAL_STRATEGY
        for name, value in fields.items():
            rec[name] = value
        with self._lock:
            rec["ts_created_ns"] = rec["ts_origin_ns"] = time.time_ns()
            self._producer.publish(rec)
        return client_order_id


def _command_id(kind: str) -> str:
    return kind + uuid.uuid4().hex[:30]
