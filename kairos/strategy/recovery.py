"""Restart recovery for the strategy host: settle what a previous run left before trading again.

A restarted host remembers nothing of its previous run's orders. The gate does: its state blob
lists the open orders (with strategy id and client order id) and each strategy's net filled
quantity per instrument (`kairos.gate.state`). Before any strategy sees market data, the host:

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
from typing import Any, Protocol

from kairos.strategy.api import IntentSink, Strategy

log = logging.getLogger(__name__)
FRESH_S = 3.0
"""A blob older than this is not the live gate's (it republishes at least every 0.5 s)."""


class StateSource(Protocol):
    def read(self) -> dict[str, Any] | None: ...

    def close(self) -> None: ...


class Recovery:
    """Driven by the host's timer (``step``) until it returns True."""

    __slots__ = ("_cancel_deadline", "_cancelled", "_gate", "_prefixes", "_strategies", "_timeout_ns",
                 "_unreadable", "_waiting_logged")

    def __init__(self, gate: StateSource, strategies: Sequence[Strategy], run_prefixes: dict[int, str],
                 cancel_timeout_s: float) -> None:
        self._gate, self._strategies, self._prefixes = gate, strategies, run_prefixes
        self._timeout_ns = int(cancel_timeout_s * 1e9)
        self._cancelled: set[str] = set()
        self._cancel_deadline = 0  # set when the first previous-run order is seen
        self._waiting_logged = False
        self._unreadable = 0

    def step(self, now_ns: int, out: IntentSink) -> bool:
        """One look at the gate's state; True once every strategy has recovered."""
        blob = self._gate.read()
        if blob is None or not blob.get("reconciled") or blob.get("age_s", FRESH_S) >= FRESH_S:
            if not self._waiting_logged:
                self._waiting_logged = True
                log.info("recovery: waiting for a reconciled gate before trading")
            return False
        try:
            return self._settle(blob, now_ns, out)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self._unreadable += 1
            if self._unreadable == 1:  # logged once; retried every tick: the gate rewrites the blob
                log.error("recovery: the gate's state does not have the expected shape (%r); still waiting", exc)
            return False

    def _settle(self, blob: dict[str, Any], now_ns: int, out: IntentSink) -> bool:
        old = self._previous_run_orders(blob)
        if old and not self._cancel_deadline:
            self._cancel_deadline = now_ns + self._timeout_ns
            log.warning("recovery: cancelling %d open order(s) of a previous run: %s", len(old),
                        ", ".join(o["client_order_id"] for o in old))
        if old and now_ns < self._cancel_deadline:
            for order in old:
                cid = order["client_order_id"]
                if cid not in self._cancelled:
                    self._cancelled.add(cid)
                    out.cancel(order["strategy"], cid.encode("latin-1"), order["venue_id"], order["instrument_id"],
                               now_ns)
            return False
        if old:
            log.error("recovery: %d order(s) of a previous run still open after %.1f s, going on: %s", len(old),
                      self._timeout_ns / 1e9, ", ".join(o["client_order_id"] for o in old))
        self._recover(blob, now_ns, out)
        self.close()
        return True

    def close(self) -> None:
        self._gate.close()

    def _previous_run_orders(self, blob: dict[str, Any]) -> list[dict[str, Any]]:
        prefixes = self._prefixes
        return [o for o in blob.get("orders", ()) if o["strategy"] in prefixes
                and not o["client_order_id"].startswith(prefixes[o["strategy"]])]

    def _recover(self, blob: dict[str, Any], now_ns: int, out: IntentSink) -> None:
        nets: dict[int, dict[int, float]] = {}
        for row in blob.get("strategies", ()):  # all parsed before any strategy acts: a bad row changes nothing
            nets.setdefault(int(row["strategy"]), {})[int(row["instrument_id"])] = float(row["net_quantity"])
        for strategy in self._strategies:
            mine = nets.get(strategy.strategy_id, {})
            log.info("recovery: %s starts from net quantities %s", strategy.name,
                     {k: round(v, 12) for k, v in mine.items()} or "none")
            strategy.recover(mine, now_ns, out)
