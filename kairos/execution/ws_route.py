"""Orders over the venue's WebSocket, REST as the fallback: the route half of `RestExecution` (a mixin).

A place goes out on the order socket from the gate's own thread and is completed on the socket's reader thread
(two thread hand-offs fewer than a pool job); a cancel, and a place that could not go at once, go through a pool
worker, over the socket when it is connected and the venue can route the symbol there, else over REST. Both are
paid from the venue's shared budget at their REST twin's weight, and the venue's own count (Binance
``rateLimits``) is fed back. A reply lost after sending is UNKNOWN: the order is queried, never sent again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from kairos.config import ExecutionConfig, VenueConfig
from kairos.execution.base import OrderRequest
from kairos.execution.state import OrderTracker
from kairos.execution.stream import PrivateStream
from kairos.execution.venue import Call, Outcome, Reply, VenueDialect
from kairos.execution.ws_orders import OrderSocket, ReplyLost, SocketDown, Tolls, no_toll
from kairos.logs import ErrorTally
from kairos.ratelimit import Budget, Cost
from kairos.records import RejectReason


class WsOrderRoute(VenueDialect):
    """What `RestExecution` provides this half (its budget, tracker, pool, counters, REST send and job guard)."""

    orders: OrderSocket | None
    budget: Budget
    _ws_place_cost: Cost  # the place's REST twin's cost, looked up once (venues that take WebSocket places)
    _cfg: ExecutionConfig
    _venue_cfg: VenueConfig
    _tracker: OrderTracker
    _pool: ThreadPoolExecutor
    _stop: threading.Event
    _resync_clock: threading.Event
    _tally: ErrorTally
    _count: Callable[[str], None]
    _guard: Callable[..., None]
    _send: Callable[..., Reply]
    _no_budget: Callable[[Cost, float], Reply]
    _apply_placed: Callable[[OrderRequest, Reply], bool]
    _ask_placed: Callable[[OrderRequest, Reply], None]

    def open_order_socket(self, stream: type[PrivateStream]) -> OrderSocket | None:
        """The started order socket, or None when the venue takes no WebSocket orders (REST only). It connects
        where the venue's private stream does (or its order URL) and pays the budget as that stream: each
        connect (the stream's first open route, e.g. Binance's WS API connection weight) with its login where the
        venue counts one (Binance ``session.logon``), and each counted keep-alive."""
        url = self.ws_orders_url()
        if not self.ws_place_route or not url:
            return None
        limits, budget = self.budget.limits, self.budget
        routes = [route for route in (*stream.open_routes[:1], self.ws_login_route()) if route]
        beat = limits.cost(*stream.heartbeat_route) if stream.heartbeat_route else None
        tolls = Tolls(partial(self._pay_all, [limits.cost(*route) for route in routes]) if routes else no_toll,
                      no_toll if beat is None else partial(budget.try_spend, beat))
        socket = OrderSocket(self.name, url, self._cfg.http_timeout_s, self._cfg.stream_backoff_max_s,
                             self.ws_login, self.ws_logged_in, stream.heartbeat, tolls)
        socket.start()
        return socket

    def _pay_all(self, costs: list[Cost]) -> float:
        """Each cost in turn, waiting as a background call does; the seconds still short at the first unpaid."""
        for cost in costs:
            short_s = self.budget.acquire(cost, None, self._stop)
            if short_s:
                return short_s
        return 0.0

    def ws_orders_url(self) -> str:
        """Where the order socket connects: the private stream's URL, unless the venue takes WebSocket orders
        elsewhere (its module overrides this, e.g. Bybit's /v5/trade)."""
        return self._venue_cfg.urls.private_url

    def _place_on_socket(self, req: OrderRequest, price: str | None, qty: str) -> bool:
        """Gate thread: send the place on the order socket now, to be completed on its reader thread (two thread
        hand-offs fewer than a pool job). False, nothing sent, when it cannot go at once (no socket, not routable,
        no budget without waiting, the socket just went down): the pool's `_place` then decides, as for REST."""
        socket = self.orders  # unroutable: not counted here, the pool's `_place` meets it and counts it once
        if socket is None or not socket.ready or not self.ws_place_route or not self.ws_routable(req.symbol):
            return False
        cost = self._ws_place_cost
        if self.budget.try_spend(cost):
            return False
        rid = socket.next_id()
        try:
            frame = self.ws_place(rid, req, price, qty)
        except Exception:  # a bug must not reach the gate's loop: the pool's _place meets it again, and _guard logs it
            return False
        self._tracker.sent(req.client_order_id, time.time_ns())
        try:
            socket.send(rid, frame, lambda answer: self._guard(self._on_placed, req, cost, answer))
        except SocketDown:
            self._count("ws_fallback")  # nothing was sent: the pool sends it over REST
            return False
        return True

    def _on_placed(self, req: OrderRequest, cost: Cost, answer: dict[str, Any] | Exception) -> None:
        """Reader thread: the place's answer applied at once (its ACK reaches ``drain`` without a thread hand-off);
        what needs the venue again (a query) goes to the pool."""
        reply, used = self._ws_answer(cost, answer)
        ask = self._apply_placed(req, reply)
        self._report_count(used)  # after the ACK is out: a shared-memory lock on the way to drain() otherwise
        if ask:
            self._pool.submit(self._guard, self._ask_placed, req, reply)

    def _send_order(self, ws_build: Callable[..., str], route: tuple[str, str] | tuple[()],
                    rest_build: Callable[..., Call], symbol: str, *args: Any, wait_s: float | None = None) -> Reply:
        """A place or cancel over the order socket when it is connected and the venue can route ``symbol`` there
        (paid from the same budget as its REST twin, the venue's ``rateLimits`` count fed back), else over REST.
        A reply lost after sending is UNKNOWN: `_resolve` queries the order, it is never sent again."""
        socket = self._ws_socket(route, symbol)
        if socket is None:
            return self._send(rest_build, *args, wait_s=wait_s)
        cost = self.budget.limits.cost(*route)
        short_s = self.budget.acquire(cost, wait_s, self._stop)
        if short_s:
            return self._no_budget(cost, short_s)
        rid = socket.next_id()
        try:
            answer: dict[str, Any] | Exception = socket.request(rid, ws_build(rid, *args))
        except SocketDown:
            self._count("ws_fallback")  # nothing was sent: REST instead
            return self._send(rest_build, *args, wait_s=wait_s)
        except ReplyLost as exc:
            answer = exc
        reply, used = self._ws_answer(cost, answer)
        self._report_count(used)
        return reply

    def _ws_socket(self, route: tuple[str, str] | tuple[()], symbol: str) -> OrderSocket | None:
        """The order socket if an order for ``symbol`` can go over it now, else None (REST)."""
        socket = self.orders
        if socket is None or not socket.ready or not route:
            return None
        if not self.ws_routable(symbol):
            self._count("ws_unroutable")  # e.g. OKX published no instIdCode for it: never guessed
            return None
        return socket

    def _ws_answer(self, cost: Cost, answer: dict[str, Any] | Exception) -> tuple[Reply, int]:
        """A WS order's answer classified like REST's (a rate refusal recorded in the budget at once), and the
        venue's count of its weight window for `_report_count` (-1: none). Lost or unreadable: UNKNOWN (it may
        have acted; `_resolve` queries, never resends)."""
        if isinstance(answer, Exception):
            self._count("ws_lost")
            return Reply(Outcome.UNKNOWN, None, "WS", str(answer)[:200], RejectReason.VENUE_UNAVAILABLE), -1
        try:
            reply, used = self.ws_reply(answer)
        except (KeyError, TypeError, ValueError) as exc:
            self._count("ws_bad_reply")
            self._tally("bad order reply", f"{type(exc).__name__}: {exc}")
            return Reply(Outcome.UNKNOWN, None, "WS", f"unreadable reply: {exc}", RejectReason.VENUE_UNAVAILABLE), -1
        if reply.outcome is Outcome.RATE_LIMITED:
            self.budget.penalise(cost, int(answer.get("status") or 429), reply.retry_after_s)
        if reply.clock_skew:
            self._resync_clock.set()
        return reply, used

    def _report_count(self, used: int) -> None:
        """The venue's own count (Binance ``rateLimits``) into the shared budget; -1: the reply had none."""
        if used >= 0:
            self.budget.report_venue_count(used)
