"""What every signed-REST venue adapter shares: worker threads, sessions, limits, clock, outcomes.

A venue module (binance.py, okx.py) supplies request builders and pure response parsers; this base
owns all I/O and never asks which venue it is. ``submit``/``cancel`` only enqueue a job on a small
thread pool whose threads each keep one keep-alive ``requests.Session``. Jobs turn responses into
`OrderView`s and feed the `OrderTracker`, whose reports ``drain`` hands to the gate.

An unknown outcome (5xx, timeout, connection lost after sending, -1007, 50004) is never guessed:
the order is queried at once; if the venue does not know it, it is queried once more after the
request's own validity window (recvWindow / expTime) has passed, when it can no longer appear.
Only then is it rejected. If the venue cannot be asked, the order stays "unknown" and every sync
tick asks again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from kairos.config import ExecutionConfig, VenueConfig
from kairos.errors import ExecutionError
from kairos.execution.base import ExecReport, Executor, OrderRequest, SymbolFilters, VenueSnapshot
from kairos.execution.filters import wire
from kairos.execution.limits import ServerClock
from kairos.execution.state import Order, OrderTracker, OrderView
from kairos.execution.stream import PrivateStream, TrackerSink
from kairos.execution.venue import Call, Outcome, Reply, VenueDialect
from kairos.execution.ws_orders import OrderSocket, ReplyLost, SocketDown
from kairos.instruments import InstrumentTable
from kairos.logs import ErrorTally
from kairos.ratelimit import Budget, Cost, Priority, venue_limits
from kairos.ratelimit.budget import RateDeferred
from kairos.records import ExecKind, OrderType, RejectReason, Side

log = logging.getLogger(__name__)
LOCAL = "LOCAL"  # venue_code of a refusal decided here, nothing sent
WAITED_NS = 1_000_000  # a call that waited longer than this for budget is signed again
EXPIRY_MARGIN_MS = 50  # after recvWindow/expTime, allow for clock error before "it cannot appear any more"


class RestExecution(Executor, VenueDialect):
    """Signed REST executor; subclasses are the venue dialects (data + pure parsers)."""

    def __init__(self, venue_cfg: VenueConfig, exec_cfg: ExecutionConfig, instruments: InstrumentTable,
                 budget: Budget | None = None, stream: type[PrivateStream] | None = None) -> None:
        VenueDialect.__init__(self, venue_cfg)
        self._cfg = exec_cfg
        self._venue_cfg = venue_cfg
        self._stream_type = stream
        self.stream: PrivateStream | None = None
        self.orders: OrderSocket | None = None
        self._base_url = venue_cfg.urls.rest_url.rstrip("/")
        self._maker_fee = venue_cfg.maker_fee_bps / 1e4
        self._instruments = instruments
        self._symbols = {i.id: i.venue_symbols[self.venue] for i in instruments if self.venue in i.venue_symbols}
        self._filters: dict[int, SymbolFilters] = {}
        self._reports: deque[ExecReport] = deque()
        self._tracker = OrderTracker(self._report, self._estimate_fee, self._reconcile_now)
        self.budget = budget or Budget.local(venue_limits(self.name).scaled(exec_cfg.rate_limit_scale),
                                             exec_cfg.rate_reserve_pct, exec_cfg.rate_wait_s)
        self.clock = ServerClock()
        self._pool = ThreadPoolExecutor(max_workers=exec_cfg.workers, thread_name_prefix=f"exec.{self.name}")
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sync_busy = threading.Event()
        self._last_sync_ns = 0
        self.stream_sink = TrackerSink(self._tracker, self._reconcile_now, self.budget.report_venue_count)
        self._resync_clock = threading.Event()
        self._tally = ErrorTally(log)
        self._stop = threading.Event()
        self._count_lock = threading.Lock()
        self.counts: dict[str, int] = {}

    # -- Executor API (gate thread) -------------------------------------------------------------

    def start(self) -> None:
        self.sync_clock()
        self._filters = self.load_filters()
        if self._stream_type is not None and self._venue_cfg.urls.private_url:
            self.stream = self._stream_type(self._venue_cfg, self._cfg, self.stream_sink, self.clock.now_ms)
            self.stream.start()
        url = self.ws_orders_url()
        if self._cfg.ws_orders and self._stream_type is not None and self.ws_place_route and url:
            self.orders = OrderSocket(self.name, url, self._cfg.http_timeout_s, self._cfg.stream_backoff_max_s,
                                      self.ws_login, self.ws_logged_in, self._stream_type.heartbeat)
            self.orders.start()

    def ws_orders_url(self) -> str:
        """Where the order socket connects: the private stream's URL, unless the venue takes WebSocket orders
        elsewhere (its module overrides this, e.g. Bybit's /v5/trade)."""
        return self._venue_cfg.urls.private_url

    def load_filters(self) -> dict[int, SymbolFilters]:
        """Every configured instrument's rules from the venue's public table; ExecutionError if any is missing."""
        by_symbol = self.parse_filters(self._checked("filters", self.filters_call, sorted(self._symbols.values())))
        missing = [s for s in self._symbols.values() if s not in by_symbol]
        if missing:
            raise ExecutionError(f"{self.name}: venue does not list {', '.join(missing)}")
        return {iid: by_symbol[sym] for iid, sym in self._symbols.items()}

    def submit(self, req: OrderRequest) -> None:
        if not self._tracker.open(req):
            self._count("duplicate_submit")
            self._tally("duplicate client order id", req.client_order_id)
            return
        rules = self._filters.get(req.instrument)
        if rules is None:
            self._tracker.reject(req.client_order_id, RejectReason.UNKNOWN_INSTRUMENT, "LOCAL", "no filters")
            return
        price, qty, broken = rules.rounded(None if req.order_type is OrderType.MARKET else req.price, req.qty,
                                           req.side)
        if broken:
            self._tracker.reject(req.client_order_id, RejectReason.VENUE_FILTER, "LOCAL", f"Filter failure: {broken}")
        elif self.budget.banned_s() > 0:
            self._count("rate_limited_local")
            self._tracker.reject(req.client_order_id, RejectReason.VENUE_RATE_LIMIT, "LOCAL",
                                 f"rate limited for {self.budget.banned_s():.1f}s more")
        else:
            args = (req, None if price is None else wire(price), wire(qty))
            if not self._place_on_socket(*args):
                self._pool.submit(self._guard, self._place, *args)

    def cancel(self, client_order_id: str, instrument: int, symbol: str) -> None:
        self._pool.submit(self._guard, self._cancel, client_order_id, symbol)

    def drain(self) -> list[ExecReport]:
        self._tick()
        reports = self._reports
        return [reports.popleft() for _ in range(len(reports))]

    def query(self, client_order_id: str, symbol: str) -> ExecReport | None:
        view = self._query_view(client_order_id, symbol)
        if view is None:
            return None
        self._tracker.apply(view)
        return self._state_report(view)

    def snapshot(self) -> VenueSnapshot:
        orders = self._checked("open orders", self.open_orders_call, None)
        balances = self._checked("balances", self.balances_call)
        snap = VenueSnapshot(balances=self.parse_balances(balances))
        for view in self.parse_open_orders(orders):
            report = self._state_report(view)
            snap.open_orders.append(report)
            self._tracker.adopt(Order(view.client_order_id, report.instrument, view.symbol, view.side,
                                      OrderType.LIMIT, view.price, view.qty, view.state, view.cum_qty,
                                      view.cum_quote, view.fee_cum or 0.0, view.venue_order_id))
        return snap

    def filters(self, instrument: int) -> SymbolFilters:
        return self._filters[instrument]

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
        if self.orders is not None:
            self.orders.close()
        self._stop.set()  # wakes jobs waiting out a ban or a validity window; they leave the order as is
        self._pool.shutdown(wait=True, cancel_futures=True)
        for session in self._sessions:
            session.close()
        self.budget.close()

    def stats(self) -> dict[str, int]:
        base = {"illegal_transitions": self._tracker.illegal, "stale_views": self._tracker.stale,
                "foreign_views": self._tracker.foreign, "duplicate_fills": self._tracker.duplicates,
                "held_fills": self._tracker.held, "short_filled": self._tracker.short_filled}
        base |= {f"budget_{k}": v for k, v in self.budget.stats().items()}
        if self.stream is not None:
            base |= {f"stream_{k}": v for k, v in self.stream.counts.items()}
            base["stream_healthy"] = int(self.stream.healthy)
        if self.orders is not None:
            base |= {f"ws_{k}": v for k, v in self.orders.counts.items()}
            base["ws_ready"] = int(self.orders.ready)
        with self._count_lock:
            return base | self.counts

    # -- jobs (worker threads) ------------------------------------------------------------------

    def _place_on_socket(self, req: OrderRequest, price: str | None, qty: str) -> bool:
        """Gate thread: send the place on the order socket now, to be completed on its reader thread (two thread
        hand-offs fewer than a pool job). False, nothing sent, when it cannot go at once (no socket, not routable,
        no budget without waiting, the socket just went down): the pool's `_place` then decides, as for REST."""
        socket = self._ws_socket(self.ws_place_route, req.symbol) if self.ws_routable(req.symbol) else None
        if socket is None:
            return False
        cost = self.budget.limits.cost(*self.ws_place_route)
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

    def _place(self, req: OrderRequest, price: str | None, qty: str) -> None:
        self._tracker.sent(req.client_order_id, time.time_ns())
        reply = self._send_order(self.ws_place, self.ws_place_route, self.place_call, req.symbol, req, price, qty)
        if self._apply_placed(req, reply):
            self._ask_placed(req, reply)

    def _apply_placed(self, req: OrderRequest, reply: Reply) -> bool:
        """A place's reply into the tracker; True when the venue must be asked next (`_ask_placed`)."""
        if reply.outcome is Outcome.OK:
            self._tracker.apply(self.parse_placed(reply.data, req))
            return self._queries_placed(req)
        if reply.outcome is Outcome.UNKNOWN:
            return True
        self._tracker.reject(req.client_order_id, reply.reason, reply.code, reply.message)
        return False

    def _ask_placed(self, req: OrderRequest, reply: Reply) -> None:
        """Worker thread: query a place of unknown outcome until settled, or an acknowledged one for its fills."""
        if reply.outcome is Outcome.UNKNOWN:
            self._resolve(req.client_order_id, req.symbol, reply)
        else:
            self._refresh(req.client_order_id, req.symbol)

    def _queries_placed(self, req: OrderRequest) -> bool:
        """An acknowledgement without fills (OKX) of an order that ends at once: its fills come from a query."""
        return self.ack_only and (req.order_type is OrderType.MARKET or req.tif.name != "GTC")

    def _cancel(self, coid: str, symbol: str) -> None:
        reply = self._send_order(self.ws_cancel, self.ws_cancel_route, self.cancel_call, symbol, coid, symbol,
                                 wait_s=self._cfg.max_cancel_delay_s)  # waits out a short ban
        if reply.outcome is Outcome.OK and self.cancel_confirmed:
            self._tracker.apply(self.parse_order(reply.data))
            return
        if reply.outcome not in (Outcome.OK, Outcome.UNKNOWN):
            self._tracker.cancel_reject(coid, reply.reason, reply.code, reply.message)
        if reply.code != LOCAL:
            self._refresh(coid, symbol)

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

    # -- plumbing -------------------------------------------------------------------------------

    def _report(self, report: ExecReport) -> None:
        """Any thread: a report for ``drain``, and the gate woken to take it."""
        self._reports.append(report)
        wake = self.wake
        if wake is not None:
            wake()

    def _tick(self) -> None:
        now = time.monotonic_ns()
        if now - self._last_sync_ns < self._sync_period_ns() or self._sync_busy.is_set():
            return
        self._last_sync_ns = now
        if now - self.clock.synced_ns > self._cfg.clock_sync_s * 1e9:
            self._resync_clock.set()
        if self._resync_clock.is_set() or self._tracker.live():
            self._sync_busy.set()
            self._count("syncs")
            self._pool.submit(self._guard, self._sync)

    def _sync_period_ns(self) -> int:
        """Private stream healthy: REST reconciliation every ``reconcile_s``; else polling at ``sync_interval_ms``."""
        if self.stream is not None and self.stream.healthy:
            return int(self._cfg.reconcile_s * 1e9)
        return self._cfg.sync_interval_ms * 1_000_000

    def _reconcile_now(self) -> None:
        """Stream thread, on every (re)subscription: the next tick reconciles (a gap never loses a fill)."""
        self._last_sync_ns = -(2**62)

    def sync_clock(self) -> None:
        """Measure the offset to the venue's clock (NTP-style midpoint)."""
        sent = time.time_ns() // 1_000_000
        data = self._checked("server time", self.time_call)
        self.clock.update(self.parse_time(data), sent, time.time_ns() // 1_000_000)
        self._resync_clock.clear()

    def _query_view(self, coid: str, symbol: str) -> OrderView | None:
        reply = self._send(self.query_call, coid, symbol)
        if reply.outcome is Outcome.NOT_FOUND:
            return None
        if reply.outcome is not Outcome.OK:
            raise ExecutionError(f"{self.name}: query {coid}: {reply.code} {reply.message}")
        return self.parse_queried(reply.data)

    def _checked(self, what: str, build: Callable[..., Call], *args: Any) -> Any:
        """The call's data; ExecutionError unless OK (RateDeferred: the budget had no room, nothing was sent)."""
        reply = self._send(build, *args)
        if reply.code == LOCAL:
            raise RateDeferred(self.name, reply.retry_after_s)
        if reply.outcome is not Outcome.OK:
            raise ExecutionError(f"{self.name}: {what}: {reply.code} {reply.message}")
        return reply.data

    def _send(self, build: Callable[..., Call], *args: Any, wait_s: float | None = None) -> Reply:
        """One HTTP exchange ``build(*args)`` paid from the venue's budget, classified; transport failures become
        UNKNOWN or UNAVAILABLE. Without budget after ``wait_s`` (default: `Budget.acquire`'s) nothing is sent:
        RATE_LIMITED, code LOCAL. A call that waited is built again: its signed timestamp must be fresh."""
        call = build(*args)
        cost = self.budget.limits.cost(call.method, call.path)
        asked_ns = time.monotonic_ns()
        short_s = self.budget.acquire(cost, wait_s, self._stop)
        if short_s:
            return self._no_budget(cost, short_s)
        if time.monotonic_ns() - asked_ns > WAITED_NS:
            call = build(*args)
        try:
            reply = self._call(call, cost)
        except requests.RequestException as exc:
            self._count("transport_error")
            definite = isinstance(exc, requests.ConnectTimeout) or "NewConnectionError" in repr(exc)
            outcome = Outcome.UNAVAILABLE if definite else Outcome.UNKNOWN
            return Reply(outcome, None, type(exc).__name__, str(exc)[:200], RejectReason.VENUE_UNAVAILABLE)
        if reply.clock_skew:
            self._resync_clock.set()
        return reply

    def _no_budget(self, cost: Cost, short_s: float) -> Reply:
        self._count("rate_refused" if cost.priority is Priority.ESSENTIAL else "rate_deferred")
        return Reply(Outcome.RATE_LIMITED, None, LOCAL, f"rate budget spent for {short_s:.1f}s more",
                     RejectReason.VENUE_RATE_LIMIT, short_s)

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

    def _call(self, call: Call, cost: Cost) -> Reply:
        session = self._session()
        resp = session.request(call.method, self._base_url + call.path, data=call.body.encode() or None,
                               headers=call.headers, timeout=self._cfg.http_timeout_s)
        self.budget.note_usage(resp.headers)
        reply = self.classify(resp.status_code, resp.headers, resp.content)
        if reply.outcome is Outcome.RATE_LIMITED:
            self.budget.penalise(cost, resp.status_code, reply.retry_after_s)
        return reply

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers.update(self.session_headers())
            self._sessions.append(session)
        return session

    def reach_window_ns(self) -> int:
        """recvWindow (expTime) plus a second for clock error."""
        return (self.recv_window_ms + 1000) * 1_000_000

    def _expiry_ns(self) -> int:
        """Monotonic time after which a request sent now can no longer execute at the venue."""
        return time.monotonic_ns() + (self.recv_window_ms + EXPIRY_MARGIN_MS) * 1_000_000

    def _guard(self, job: Any, *args: Any) -> None:
        """Run a worker job; a bug is logged and counted, never lost silently in a Future."""
        try:
            job(*args)
        except Exception:  # the job handles venue errors itself: anything here is a bug
            self._count("worker_error")
            log.exception("%s: %s failed", self.name, job.__name__)
            if job in (self._place, self._on_placed, self._ask_placed):  # it may have gone out: never assume, poll it
                self._tracker.mark_unknown(args[0].client_order_id, self._expiry_ns(), "LOCAL", "worker error")

    def _state_report(self, view: OrderView) -> ExecReport:
        """The venue's view as a STATE report: last_px = average fill price, fee = cumulative."""
        inst = self._instruments.by_venue_symbol(self.venue, view.symbol)
        iid = inst.id if inst else 0
        known = self._tracker.get(view.client_order_id)
        fee, asset = view.fee_cum, view.fee_asset
        if fee is None:  # no fee from the venue: what we reported if we saw every fill, else an estimate
            order = Order(view.client_order_id, iid, view.symbol, view.side, OrderType.LIMIT, view.price, view.qty)
            fee, asset = self._estimate_fee(order, view.cum_qty, view.cum_quote)
            fee = known.fee_cum if known and abs(known.cum_qty - view.cum_qty) < 1e-12 else fee
        avg = view.cum_quote / view.cum_qty if view.cum_qty > 0 else 0.0
        return ExecReport(view.client_order_id, ExecKind.STATE, view.state, last_px=avg, cum_qty=view.cum_qty,
                          fee=fee, venue_order_id=view.venue_order_id, ts_exchange_ns=view.ts_exchange_ns,
                          ts_sent_ns=known.ts_sent_ns if known else 0, instrument=iid, side=view.side,
                          price=view.price, qty=view.qty, fee_asset=asset)

    def _estimate_fee(self, order: Order, qty: float, notional: float) -> tuple[float, str]:
        """No fee in the response: maker rate from config, charged in the asset received."""
        inst = self._instruments.by_id(order.instrument) if order.instrument else None
        if order.side is Side.BUY:
            return qty * self._maker_fee, inst.base if inst else ""
        return notional * self._maker_fee, inst.quote if inst else ""

    def _count(self, name: str) -> None:
        with self._count_lock:
            self.counts[name] = self.counts.get(name, 0) + 1
