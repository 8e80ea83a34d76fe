"""Private order stream base: one venue WebSocket on its own thread, feeding the executor.

A venue module (stream_binance.py, stream_okx.py) supplies the handshake frames and a pure
parser; this base owns the socket, the heartbeat and watchdog, reconnects with exponential
backoff and jitter, and counts bad frames (logged, never fatal). The executor is the `StreamSink`:
it gets every order update (with its fill and trade id) and balance, and ``on_stream_up`` after
each (re)subscription, when it reconciles over REST at once, so a gap in the stream can never
lose a fill. ``healthy`` is True from the subscription's confirmation until the connection ends.

Each (re)connect is paid from the venue's rate budget before it is made (``open_routes``: the handshake
and the login/subscribe the venue counts, at BACKGROUND priority): with the budget short it waits as
other background calls do, then again until there is room (counted ``budget_deferred``), so a
reconnect storm cannot spend what orders need. A heartbeat the venue counts (``heartbeat_route``) is
paid too, but never held back: the connection, and the fills on it, would die. One the budget cannot
pay goes anyway, counted ``heartbeat_overdrawn``; the venue's count in its reply corrects the budget.
Balance pushes (absolute free/locked with the venue's update time) wait in `TrackerSink` for the
gate, which takes them each duty cycle (`Executor.balance_pushes`, `kairos.gate.pushes`).
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Final, Protocol

import websocket

from kairos.config import ExecutionConfig, VenueConfig
from kairos.execution.base import BalancePush
from kairos.execution.state import OrderTracker, OrderView, TradeFill
from kairos.logs import ErrorTally
from kairos.ratelimit import Budget, Cost, venue_limits

log = logging.getLogger(__name__)

BACKOFF_START_S: Final = 0.1
TRANSPORT_ERRORS: Final = (OSError, websocket.WebSocketException, ssl.SSLError)
DATA_OPCODES: Final = (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY)  # a close frame: the next recv fails


class StreamDown(Exception):
    """The session must end: watchdog, refused login, or the venue ended the subscription. ``retry_after_s``:
    the venue said not to ask again before then (a rate-limited subscribe): the reconnect waits that long."""

    def __init__(self, message: str, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(slots=True)
class Parsed:
    """What one frame said. ``refused``: the venue's code and message for a failed login/subscribe."""

    orders: list[tuple[OrderView, TradeFill | None]] = field(default_factory=list)
    balances: dict[str, tuple[float, float]] = field(default_factory=dict)
    balances_ms: int = 0  # the venue's time of the account update the balances tell (0: not given)
    deltas: dict[str, float] = field(default_factory=dict)
    send: list[str] = field(default_factory=list)
    ready: bool = False
    ended: bool = False
    refused: str = ""
    weight_used: int = -1  # the venue's count of this IP's request weight (WS API ``rateLimits``; -1: none)
    retry_after_s: float = 0.0  # with ``refused``: the venue's rate limit says not before then


class StreamSink(Protocol):
    def on_stream_up(self) -> None:
        """Subscribed (again): reconcile over REST now."""

    def on_order(self, view: OrderView, fill: TradeFill | None) -> None: ...

    def on_balances(self, balances: dict[str, tuple[float, float]], deltas: dict[str, float], ts_ms: int) -> None:
        """Absolute balances (as of the venue's ``ts_ms``; 0: not given) and/or deltas (deposits, withdrawals)."""

    def on_weight_used(self, used: int) -> None:
        """The venue's request-weight count this minute: corrects the shared REST budget."""


class TrackerSink:
    """The executor's side of a stream: updates into its `OrderTracker`, REST reconcile on up, balances kept
    (``balances``) and queued for the gate (``take_pushes``: the newest push per asset, so the queue is bounded)."""

    __slots__ = ("_balances", "_lock", "_pushed", "_reconcile_now", "_ring", "_tracker", "on_weight_used")

    def __init__(self, tracker: OrderTracker, reconcile_now: Callable[[], None],
                 weight_used: Callable[[int], None], ring: Callable[[], None] = lambda: None) -> None:
        """``ring``: wakes the gate (its doorbell) once a push waits for it, as a report does."""
        self._tracker = tracker
        self._reconcile_now = reconcile_now
        self._ring = ring
        self.on_weight_used = weight_used
        self._lock = threading.Lock()
        self._balances: dict[str, tuple[float, float]] = {}
        self._pushed: dict[str, BalancePush] = {}

    def on_stream_up(self) -> None:
        self._reconcile_now()

    def on_order(self, view: OrderView, fill: TradeFill | None) -> None:
        if fill is None:
            self._tracker.apply(view)
        else:
            self._tracker.apply_fill(view, fill)

    def on_balances(self, balances: dict[str, tuple[float, float]], deltas: dict[str, float], ts_ms: int) -> None:
        """Deltas only move ``balances``: the venue follows each with an absolute push (Binance
        outboundAccountPosition), which alone goes to the gate. No venue time: the local clock stands in."""
        ts_ms = ts_ms or time.time_ns() // 1_000_000
        with self._lock:
            self._balances.update(balances)
            for asset, delta in deltas.items():
                free, locked = self._balances.get(asset, (0.0, 0.0))
                self._balances[asset] = (free + delta, locked)
            pushed = self._pushed
            for asset, (free, locked) in balances.items():
                if ts_ms >= pushed.get(asset, (0.0, 0.0, 0))[2]:
                    pushed[asset] = (free, locked, ts_ms)
        if balances:
            self._ring()

    def balances(self) -> dict[str, tuple[float, float]]:
        """asset -> (free, locked) as the stream last told them (assets it has not mentioned are absent)."""
        with self._lock:
            return dict(self._balances)

    def take_pushes(self) -> dict[str, BalancePush]:
        """Gate thread, every duty cycle: a lock only when something was pushed."""
        if not self._pushed:
            return {}
        with self._lock:
            pushed, self._pushed = self._pushed, {}
        return pushed


class PrivateStream(ABC):
    """Connection, heartbeat, watchdog and reconnect for one venue's private stream."""

    name: ClassVar[str]
    heartbeat: ClassVar[str]  # a text frame the venue answers (resets the watchdog)
    open_routes: ClassVar[tuple[tuple[str, str], ...]] = ()
    """What a (re)connect costs, as routes of the venue's rate table (kairos/ratelimit/<venue>.py)."""
    heartbeat_route: ClassVar[tuple[str, str] | tuple[()]] = ()
    """The heartbeat's route in that table when the venue counts it; () when free."""

    def __init__(self, venue_cfg: VenueConfig, exec_cfg: ExecutionConfig, sink: StreamSink,
                 now_ms: Callable[[], int], budget: Budget | None = None) -> None:
        """``budget``: the venue's shared one (the executor's); without it, one for this stream alone."""
        self._url = venue_cfg.urls.private_url
        self._key, self._secret = venue_cfg.api_key.reveal(), venue_cfg.api_secret.reveal()
        self._passphrase = venue_cfg.passphrase.reveal()
        self._recv_window_ms = venue_cfg.recv_window_ms
        self._watchdog_s = exec_cfg.stream_watchdog_s
        self._backoff_max_s = exec_cfg.stream_backoff_max_s
        self._timeout_s = exec_cfg.http_timeout_s
        self._sink = sink
        self._now_ms = now_ms
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"stream.{self.name}", daemon=True)
        self._ws: websocket.WebSocket | None = None
        self._tally = ErrorTally(log)
        self._budget, self._own_budget = budget, False
        limits = budget.limits if budget is not None else venue_limits(self.name).scaled(exec_cfg.rate_limit_scale)
        self._local = (limits, exec_cfg.rate_reserve_pct, exec_cfg.rate_wait_s)
        self._open_costs = by_window([limits.cost(*route) for route in self.open_routes])
        self._heartbeat_cost = limits.cost(*self.heartbeat_route) if self.heartbeat_route else None
        self.healthy = False
        self.counts = {"connects": 0, "subscribed": 0, "disconnects": 0, "frames": 0, "orders": 0, "fills": 0,
                       "bad_frames": 0, "refused": 0, "ended": 0, "watchdog": 0, "sink_errors": 0,
                       "budget_deferred": 0, "heartbeats": 0, "heartbeat_overdrawn": 0}

    @abstractmethod
    def open_frames(self) -> list[str]:
        """Frames sent right after connecting (subscribe, or login)."""

    @abstractmethod
    def parse(self, text: str) -> Parsed:
        """Pure: one text frame -> what it says; raises ValueError/KeyError/TypeError on a bad frame."""

    def start(self) -> None:
        if self._budget is None:  # no shared budget given: one of its own, from start to close
            self._budget, self._own_budget = Budget.local(*self._local), True
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        ws = self._ws
        if ws is not None:
            ws.shutdown()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self._own_budget:
            self._budget.close()  # type: ignore[union-attr]  # set by start

    def _run(self) -> None:
        delay = BACKOFF_START_S
        while not self._stop.is_set():
            short_s = self._pay_open()
            if short_s:
                self._stop.wait(short_s)
                continue
            wait_s = 0.0
            try:
                self._session()
            except (*TRANSPORT_ERRORS, StreamDown) as exc:
                if self._stop.is_set():
                    break  # close() shut the socket
                self._tally(f"{self.name} private stream down", f"{type(exc).__name__}: {exc}")
                wait_s = getattr(exc, "retry_after_s", 0.0)
            except Exception:  # a bug in a parser or the sink: logged, and the stream goes on
                self.counts["sink_errors"] += 1
                log.exception("%s private stream failed", self.name)
            was_up, self.healthy = self.healthy, False
            self.counts["disconnects"] += 1
            delay = BACKOFF_START_S if was_up else min(delay * 2, self._backoff_max_s)
            self._stop.wait(max(wait_s, delay * random.uniform(0.5, 1.0)))

    def _pay_open(self) -> float:
        """Pay a (re)connect (``open_routes``), waiting for room as background calls do: 0.0 once paid, else the
        seconds still short (counted ``budget_deferred``; nothing connects meanwhile)."""
        for cost in self._open_costs:
            short_s = self._budget.acquire(cost, stop=self._stop)  # type: ignore[union-attr]  # set by start
            if short_s:
                self.counts["budget_deferred"] += 1
                return short_s
        return 0.0

    def _heartbeat(self, ws: websocket.WebSocket) -> None:
        """Sent whatever the budget says (module docstring): one it cannot pay counts ``heartbeat_overdrawn``."""
        cost = self._heartbeat_cost
        if cost is not None and self._budget.try_spend(cost):  # type: ignore[union-attr]  # set by start
            self.counts["heartbeat_overdrawn"] += 1
        self.counts["heartbeats"] += 1
        ws.send(self.heartbeat)

    def _session(self) -> None:
        self.counts["connects"] += 1
        ws = self._ws = websocket.create_connection(self._url, timeout=self._timeout_s, suppress_origin=True,
                                                    enable_multithread=True, skip_utf8_validation=True)
        try:
            for frame in self.open_frames():
                ws.send(frame)
            ws.settimeout(min(0.5, self._watchdog_s / 4))
            last_rx, pinged = time.monotonic(), False
            while not self._stop.is_set():
                try:
                    opcode, text = ws.recv_data()  # bytes, not checked per byte in Python: the parser meets bad UTF-8
                except websocket.WebSocketTimeoutException:
                    silent = time.monotonic() - last_rx
                    if silent > self._watchdog_s:
                        self.counts["watchdog"] += 1
                        raise StreamDown(f"nothing received for {silent:.1f}s") from None
                    if silent > self._watchdog_s / 2 and not pinged:
                        self._heartbeat(ws)
                        pinged = True
                    continue
                last_rx, pinged = time.monotonic(), False
                if opcode in DATA_OPCODES:
                    self._on_text(ws, text)
        finally:
            self._ws = None
            ws.close(timeout=0.2) if ws.connected else ws.shutdown()

    def _on_text(self, ws: websocket.WebSocket, text: str | bytes) -> None:
        self.counts["frames"] += 1
        raw = text if isinstance(text, str) else text.decode(errors="replace")
        try:
            parsed = self.parse(raw)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            self.counts["bad_frames"] += 1
            self._tally(f"{self.name} private stream: bad frame", f"{type(exc).__name__}: {exc}: {raw[:200]}")
            return
        for frame in parsed.send:
            ws.send(frame)
        if parsed.weight_used >= 0:
            self._sink.on_weight_used(parsed.weight_used)
        if parsed.refused:
            self.counts["refused"] += 1
            raise StreamDown(f"refused: {parsed.refused}", parsed.retry_after_s)
        if parsed.ready and not self.healthy:
            self.healthy = True
            self.counts["subscribed"] += 1
            self._sink.on_stream_up()
        for view, fill in parsed.orders:
            self.counts["orders"] += 1
            self.counts["fills"] += fill is not None
            self._sink.on_order(view, fill)
        if parsed.balances or parsed.deltas:
            self._sink.on_balances(parsed.balances, parsed.deltas, parsed.balances_ms)
        if parsed.ended:
            self.counts["ended"] += 1
            raise StreamDown("the venue ended the subscription")


def by_window(costs: list[Cost]) -> list[Cost]:
    """One cost per window (weights summed), so a window's share of a reconnect is paid whole or not at all."""
    merged: dict[int, Cost] = {}
    for cost in costs:
        prior = merged.get(cost.window)
        merged[cost.window] = cost if prior is None else Cost(cost.window, prior.weight + cost.weight, prior.priority)
    return list(merged.values())
