"""Reconciliation with the venue, and orders of unknown outcome: the polling half of `RestExecution` (a mixin).

While the private stream is healthy the open orders are reconciled over REST every ``execution.reconcile_s``
(and on every (re)subscription, so a gap in the stream never loses a fill); while it is down they are polled
every ``execution.sync_interval_ms``. An unknown outcome (5xx, timeout, connection lost after sending, -1007,
50004) is never guessed: the order is queried at once; if the venue does not know it, it is queried once more
after the request's own validity window (recvWindow / expTime) has passed, when it can no longer appear. Only
then is it rejected. If the venue cannot be asked, the order stays "unknown" and every sync tick asks again.

On every (re)subscription the balances are read over REST too and fed to the stream sink as a push at the
venue's time of the answer: a push sent while the stream was down (a deposit's) is not missed until the asset
moves again, and the gate's rule (`kairos.gate.pushes`) keeps the double count out, since the answer includes
every fill made by its time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kairos.config import ExecutionConfig
from kairos.errors import ExecutionError
from kairos.execution.limits import ServerClock
from kairos.execution.state import OrderTracker, OrderView
from kairos.execution.stream import PrivateStream, TrackerSink
from kairos.execution.venue import Reply, VenueDialect
from kairos.logs import ErrorTally
from kairos.ratelimit import Budget
from kairos.ratelimit.budget import RateDeferred
from kairos.records import RejectReason

EXPIRY_MARGIN_MS = 50  # after recvWindow/expTime, allow for clock error before "it cannot appear any more"


class Reconciliation(VenueDialect):
    """What `RestExecution` provides this half (its tracker, pool, budget, clock, stream, REST calls, counters)."""

    stream: PrivateStream | None
    stream_sink: TrackerSink
    budget: Budget
    clock: ServerClock
    _cfg: ExecutionConfig
    _tracker: OrderTracker
    _pool: ThreadPoolExecutor
    _stop: threading.Event
    _sync_busy: threading.Event
    _resync_clock: threading.Event
    _balances_due: threading.Event
    _last_sync_ns: int
    _tally: ErrorTally
    _count: Callable[[str], None]
    _guard: Callable[..., None]
    _checked: Callable[..., Any]
    _query_view: Callable[[str, str], OrderView | None]
    sync_clock: Callable[[], None]

    def _resolve(self, coid: str, symbol: str, cause: Reply) -> None:
        """Unknown outcome: ask the venue; conclude "not placed" only once the request has expired."""
        self._count("unknown_outcome")
        self._tracker.mark_unknown(coid, self._expiry_ns(), cause.code, cause.message)
        for attempt in range(self._cfg.max_retries + 2):
            wait_s = self._settle(coid, symbol)
            if wait_s is None or self._stop.wait(wait_s or min(0.1 * 2**attempt, 2.0)):
                return

    def _settle(self, coid: str, symbol: str) -> float | None:
        """One query about an order of unknown outcome. None: settled (or nothing to do); else the
        seconds worth waiting before asking again (0.0: the query itself failed)."""
        order = self._tracker.get(coid)
        if order is None or not order.unknown:
            return None
        try:
            view = self._query_view(coid, symbol)
        except ExecutionError:
            return 0.0
        if view is not None:
            self._tracker.apply(view)
            return None
        left_s = (order.expires_ns - time.monotonic_ns()) / 1e9
        if left_s > 0:
            return left_s
        message = f"outcome unknown ({order.cause[1]}); venue has no such order"
        if self._tracker.reject(coid, RejectReason.VENUE_UNAVAILABLE, order.cause[0], message):
            self._count("unknown_not_placed")  # a concurrent sync tick may have concluded first
        return None

    def _refresh(self, coid: str, symbol: str) -> None:
        try:
            view = self._query_view(coid, symbol)
        except ExecutionError as exc:
            self._tally("query failed", str(exc))
            return
        if view is not None:
            self._apply_view(view)

    def _sync(self) -> None:
        """Poll open orders of the symbols we have live orders in; query the ones that left."""
        try:
            if self._resync_clock.is_set():
                self.sync_clock()
            if self._balances_due.is_set():
                self._push_balances()
            live = self._tracker.live()
            for symbol in {o.symbol for o in live}:
                if self.budget.banned_s() > 0:
                    return
                listed = {v.client_order_id for v in self._sync_symbol(symbol)}
                for order in live:
                    if order.symbol != symbol or order.client_order_id in listed:
                        continue
                    if order.unknown:
                        self._settle(order.client_order_id, symbol)
                    else:
                        self._refresh(order.client_order_id, symbol)
        except RateDeferred:
            pass  # counted rate_deferred: the next tick asks again, no error
        except ExecutionError as exc:
            self._count("sync_error")
            self._tally("sync failed", str(exc))
        finally:
            self._sync_busy.clear()

    def _push_balances(self) -> None:
        """The venue's balances as a push stamped with its time of the answer (module docstring). A failed call is
        due again at the next sync tick; an answer with no time is not pushed: the gate could not tell what it
        includes."""
        self._balances_due.clear()
        try:
            data = self._checked("balances", self.balances_call)
        except RateDeferred:
            self._balances_due.set()
            return
        except ExecutionError as exc:
            self._balances_due.set()
            self._count("balances_failed")
            self._tally("balances failed", str(exc))
            return
        ts_ms = self.balances_ms(data)
        if ts_ms <= 0:
            self._tally("balances not pushed: the answer carries no time", self.name)
            return
        self.stream_sink.on_balances(self.parse_balances(data), {}, ts_ms)
        self._count("balances_pushed")

    def _sync_symbol(self, symbol: str) -> list[OrderView]:
        views = self.parse_open_orders(self._checked("open orders", self.open_orders_call, symbol))
        for view in views:
            self._apply_view(view)
        return views

    def _apply_view(self, view: OrderView) -> None:
        """A polled or reconciled view. Fills it reveals that no stream reported, on a venue whose views carry
        no fee (Binance), are first fetched one by one with their own commissions (``trades_call``)."""
        order = self._tracker.get(view.client_order_id)
        if (view.fee_cum is None and order is not None and view.venue_order_id and view.cum_qty > order.cum_qty
                and self.trades_call(view.symbol, view.venue_order_id) is not None):
            try:
                data = self._checked("trades", self.trades_call, view.symbol, view.venue_order_id)
                for trade_view, fill in self.parse_trades(data, view):
                    self._tracker.apply_fill(trade_view, fill)
                self._count("trades_fetched")
            except ExecutionError as exc:  # the view still reports the fills, with the estimated fee
                self._tally("trades failed", str(exc))
        self._tracker.apply(view)

    def _tick(self) -> None:
        now = time.monotonic_ns()
        if now - self._last_sync_ns < self._sync_period_ns() or self._sync_busy.is_set():
            return
        self._last_sync_ns = now
        if now - self.clock.synced_ns > self._cfg.clock_sync_s * 1e9:
            self._resync_clock.set()
        if self._resync_clock.is_set() or self._balances_due.is_set() or self._tracker.live():
            self._sync_busy.set()
            self._count("syncs")
            self._pool.submit(self._guard, self._sync)

    def _sync_period_ns(self) -> int:
        """Private stream healthy: REST reconciliation every ``reconcile_s``; else polling at ``sync_interval_ms``."""
        if self.stream is not None and self.stream.healthy:
            return int(self._cfg.reconcile_s * 1e9)
        return self._cfg.sync_interval_ms * 1_000_000

    def _reconcile_now(self) -> None:
        """The next tick reconciles (a stream gap, or a fill whose predecessor is missing, never loses a fill)."""
        self._last_sync_ns = -(2**62)

    def _stream_up(self) -> None:
        """Stream thread, on every (re)subscription: the balances read at once, the open orders at the next tick."""
        self._reconcile_now()
        self._pool.submit(self._guard, self._push_balances)

    def _expiry_ns(self) -> int:
        """Monotonic time after which a request sent now can no longer execute at the venue."""
        return time.monotonic_ns() + (self.recv_window_ms + EXPIRY_MARGIN_MS) * 1_000_000
