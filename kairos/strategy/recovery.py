"""Restart recovery for the strategy host: settle what a previous run left before trading again.

A restarted host remembers nothing of its previous run's orders. The gate does: its state (the typed
contract of kairos/gatestate.py, read through `kairos.gate.snapshot.GateStateReader`) lists the open
orders (with strategy id and client order id) and each strategy's net filled quantity per instrument.
Before any strategy sees market data, the host:

1. waits for a fresh blob from a reconciled gate (the gate takes no intents before that anyway);
2. cancels every open order of its strategies that this run did not send (an arbitrage leg in
   flight, a market maker's resting quotes) and waits until the gate reports them gone, at most
   ``cancel_timeout_s`` (then an ERROR names what is still open, and recovery goes on);
3. hands each strategy its nets (`Strategy.recover`): arbitrage hedges a residual, market making
   takes it as inventory.

Left open: intents of the previous run still queued in the intents ring when the blob was read
are handled by the gate afterwards; their fills count in the nets of the next restart.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final, Protocol

from kairos.gatestate import GateState, OpenOrder
from kairos.records import CLIENT_ORDER_ID_LEN
from kairos.strategy.api import IntentSink, Strategy
from kairos.venues import BY_VENUE

log = logging.getLogger(__name__)
FRESH_S = 3.0
"""A blob older than this is not the live gate's (it republishes at least every 0.5 s)."""
_VENUE_IDS: Final = frozenset(int(v) for v in BY_VENUE)
_U32: Final = 1 << 32


class StateSource(Protocol):
    """The gate's state as the typed contract (`kairos.gate.snapshot.GateStateReader`): None while there is
    none, or while it has the wrong shape (the reader counts those reads in ``bad`` and logs them)."""

    bad: int

    def state(self) -> GateState | None: ...

    def close(self) -> None: ...


class Recovery:
    """Driven by the host's timer (``step``) until it returns True."""

    __slots__ = ("_cancel_deadline", "_cancelled", "_gate", "_prefixes", "_strategies", "_timeout_ns",
                 "_waiting_logged", "unusable")

    def __init__(self, gate: StateSource, strategies: Sequence[Strategy], run_prefixes: dict[int, str],
                 cancel_timeout_s: float) -> None:
        self._gate, self._strategies, self._prefixes = gate, strategies, run_prefixes
        self._timeout_ns = int(cancel_timeout_s * 1e9)
        self._cancelled: set[str] = set()
        self._cancel_deadline = 0  # set when the first previous-run order is seen
        self._waiting_logged = False
        self.unusable = 0  # previous-run orders whose ids no cancel intent can carry (never sent)

    def step(self, now_ns: int, out: IntentSink) -> bool:
        """One look at the gate's state; True once every strategy has recovered."""
        state = self._gate.state()
        if state is None or not state.reconciled or state.age_s >= FRESH_S:
            if not self._waiting_logged:
                self._waiting_logged = True
                log.info("recovery: waiting for a reconciled gate before trading")
            return False
        old = self._previous_run_orders(state)
        if old and not self._cancel_deadline:
            self._cancel_deadline = now_ns + self._timeout_ns
            log.warning("recovery: cancelling %d open order(s) of a previous run: %s", len(old),
                        ", ".join(o.client_order_id for o in old))
        if old and now_ns < self._cancel_deadline:
            for order in old:
                cid = order.client_order_id
                if cid not in self._cancelled:
                    self._cancelled.add(cid)
                    out.cancel(order.strategy, cid.encode("ascii"), order.venue_id, order.instrument_id, now_ns)
            return False
        if old:
            log.error("recovery: %d order(s) of a previous run still open after %.1f s, going on: %s", len(old),
                      self._timeout_ns / 1e9, ", ".join(o.client_order_id for o in old))
        self._recover(state, now_ns, out)
        self.close()
        return True

    def close(self) -> None:
        self._gate.close()

    def _previous_run_orders(self, state: GateState) -> list[OpenOrder]:
        """Our strategies' open orders not sent by this run; those no intent can carry are counted, logged once."""
        prefixes = self._prefixes
        old = [o for o in state.orders
               if o.strategy in prefixes and not o.client_order_id.startswith(prefixes[o.strategy])]
        usable = [o for o in old if _cancellable(o)]
        if len(usable) < len(old):
            if not self.unusable:
                log.error("recovery: open order(s) %s have ids no cancel intent can carry: not cancelled",
                          [o.client_order_id[:64] for o in old if not _cancellable(o)])
            self.unusable += len(old) - len(usable)
        return usable

    def _recover(self, state: GateState, now_ns: int, out: IntentSink) -> None:
        nets: dict[int, dict[int, float]] = {}
        for row in state.strategies:
            nets.setdefault(row.strategy, {})[row.instrument_id] = row.net_quantity
        for strategy in self._strategies:
            mine = nets.get(strategy.strategy_id, {})
            log.info("recovery: %s starts from net quantities %s", strategy.name,
                     {k: round(v, 12) for k, v in mine.items()} or "none")
            strategy.recover(mine, now_ns, out)


def _cancellable(order: OpenOrder) -> bool:
    """Whether a CANCEL intent can carry the order's ids (the contract checks their types, not their ranges)."""
    cid = order.client_order_id
    return (cid.isascii() and 0 < len(cid) <= CLIENT_ORDER_ID_LEN and order.venue_id in _VENUE_IDS
            and 0 <= order.instrument_id < _U32)
