"""What every signed-REST venue adapter shares: worker threads, sessions, limits, clock, outcomes.

A venue module (binance.py, okx.py) supplies request builders and pure response parsers; this base
owns all I/O and never asks which venue it is. ``submit``/``cancel`` never block: a place goes out on
the order socket at once (kairos/execution/ws_route.py, which also decides WebSocket or REST), anything
else is a job on a small thread pool whose threads each keep one keep-alive ``requests.Session``.
Jobs turn responses into `OrderView`s and feed the `OrderTracker`, whose reports ``drain`` hands to
the gate (ringing its doorbell, ``wake``).
Unknown outcomes and reconciliation with the venue: kairos/execution/reconcile.py.
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
from kairos.execution.reconcile import Reconciliation
from kairos.execution.state import Order, OrderTracker, OrderView
from kairos.execution.stream import PrivateStream, TrackerSink
from kairos.execution.venue import Call, Outcome, Reply, VenueDialect
from kairos.execution.ws_orders import OrderSocket
from kairos.execution.ws_route import WsOrderRoute
from kairos.instruments import InstrumentTable
from kairos.logs import ErrorTally
from kairos.ratelimit import Budget, Cost, Priority, venue_limits
from kairos.ratelimit.budget import RateDeferred
from kairos.records import ExecKind, OrderType, RejectReason, Side

log = logging.getLogger(__name__)
LOCAL = "LOCAL"  # venue_code of a refusal decided here, nothing sent
WAITED_NS = 1_000_000  # a call that waited longer than this for budget is signed again


class RestExecution(Executor, WsOrderRoute, Reconciliation):
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
        if self.ws_place_route:
            self._ws_place_cost = self.budget.limits.cost(*self.ws_place_route)
        self._pool = ThreadPoolExecutor(max_workers=exec_cfg.workers, thread_name_prefix=f"exec.{self.name}")
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sync_busy = threading.Event()
        self._last_sync_ns = 0
        self.stream_sink = TrackerSink(self._tracker, self._stream_up, self.budget.report_venue_count, self._ring)
        self._balances_due = threading.Event()
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
            self.stream = self._stream_type(self._venue_cfg, self._cfg, self.stream_sink, self.clock.now_ms,
                                           budget=self.budget)
            self.stream.start()
        if self._cfg.ws_orders and self._stream_type is not None:
            self.orders = self.open_order_socket(self._stream_type)

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
            return
        args = (req, None if price is None else wire(price), wire(qty))
        if self._place_on_socket(*args):  # it asks the budget, which refuses during a ban
            return
        banned_s = self.budget.banned_s()
        if banned_s > 0:
            self._count("rate_limited_local")
            self._tracker.reject(req.client_order_id, RejectReason.VENUE_RATE_LIMIT, "LOCAL",
                                 f"rate limited for {banned_s:.1f}s more")
        else:
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
        """An acknowledgement without fills (OKX, Bybit) of an order that ends at once: its fills come from a query,
        unless the private stream is healthy (it pushes them within milliseconds; the order stays live in the
        tracker until they come, so reconciliation asks for it if they never do). No REST call per IOC order, and
        no pool job competing with the gate for the GIL the moment its ACK is out."""
        stream = self.stream
        return (self.ack_only and (req.order_type is OrderType.MARKET or req.tif.name != "GTC")
                and (stream is None or not stream.healthy))

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

    # -- plumbing -------------------------------------------------------------------------------

    def _report(self, report: ExecReport) -> None:
        """Any thread: a report for ``drain``, and the gate woken to take it."""
        self._reports.append(report)
        self._ring()

    def _ring(self) -> None:
        """Any thread: wake the gate (``wake``, its doorbell) for a report or a balance push."""
        wake = self.wake
        if wake is not None:
            wake()

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
