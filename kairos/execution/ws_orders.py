"""Order entry over the venue's WebSocket: one request/reply connection per venue, its own thread.

A separate connection from the private stream (same URL family): the stream's session ends for reasons
of its own (watchdog, ``eventStreamTerminated``, resubscription) and its thread spends time applying
fills; an order must neither wait behind that nor be lost with a subscription. Replies are matched to
requests by id. The reader thread (re)connects with backoff and sends the dialect's login frames;
``request`` never waits for a connection: while the socket is down it raises `SocketDown` before
anything is sent, and the executor uses REST instead. A request that was sent but got no reply (timeout,
connection lost) raises `ReplyLost`: the outcome is unknown and the executor queries the order before
anything else (never a blind resend).
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Final

import orjson
import websocket

from kairos.execution.stream import TRANSPORT_ERRORS
from kairos.logs import ErrorTally

log = logging.getLogger(__name__)
BACKOFF_START_S: Final = 0.1
RECV_POLL_S: Final = 0.5


class SocketDown(Exception):
    """Nothing was sent: the order socket is not connected (or not logged in)."""


class ReplyLost(Exception):
    """The request went out and no reply came (timeout or connection lost): outcome unknown."""


class OrderSocket:
    """Request/reply over one WebSocket; ``login`` frames are sent after each connect and ``logged_in``
    recognises the reply that makes the socket usable (no login frames: usable at once)."""

    def __init__(self, name: str, url: str, timeout_s: float, backoff_max_s: float,
                 login: Callable[[], list[str]], logged_in: Callable[[dict[str, Any]], bool],
                 heartbeat: str) -> None:
        self.name = name
        self._url = url
        self._timeout_s = timeout_s
        self._backoff_max_s = backoff_max_s
        self._login, self._logged_in, self._heartbeat = login, logged_in, heartbeat
        self._ids = itertools.count(1)
        self._pending: dict[str, Future[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ws: websocket.WebSocket | None = None
        self._thread = threading.Thread(target=self._run, name=f"orders.{name}", daemon=True)
        self._tally = ErrorTally(log)
        self.ready = False
        self.counts = {"connects": 0, "disconnects": 0, "requests": 0, "replies": 0, "lost": 0, "bad_frames": 0,
                       "stray_replies": 0}

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        ws = self._ws
        if ws is not None:
            ws.shutdown()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def next_id(self) -> str:
        return f"o{next(self._ids)}"

    def request(self, rid: str, frame: str) -> dict[str, Any]:
        """Send one request frame (its id ``rid``) and wait for its reply."""
        ws = self._ws
        if ws is None or not self.ready:
            raise SocketDown(f"{self.name}: order socket not connected")
        future: Future[dict[str, Any]] = Future()
        with self._lock:
            self._pending[rid] = future
        self.counts["requests"] += 1
        try:
            ws.send(frame)
            return future.result(self._timeout_s)
        except (*TRANSPORT_ERRORS, FutureTimeout, ReplyLost) as exc:
            self.counts["lost"] += 1
            raise ReplyLost(f"{self.name}: {rid}: {type(exc).__name__}: {exc}") from exc
        finally:
            with self._lock:
                self._pending.pop(rid, None)

    def _run(self) -> None:
        delay = BACKOFF_START_S
        while not self._stop.is_set():
            try:
                self._session()
                delay = BACKOFF_START_S
            except TRANSPORT_ERRORS as exc:
                if self._stop.is_set():
                    break
                self._tally(f"{self.name} order socket down", f"{type(exc).__name__}: {exc}")
            was_ready, self.ready = self.ready, False
            self._fail_pending()
            self.counts["disconnects"] += 1
            delay = BACKOFF_START_S if was_ready else min(delay * 2, self._backoff_max_s)
            self._stop.wait(delay * random.uniform(0.5, 1.0))

    def _session(self) -> None:
        self.counts["connects"] += 1
        ws = websocket.create_connection(self._url, timeout=self._timeout_s, suppress_origin=True,
                                         enable_multithread=True)
        self._ws = ws
        try:
            frames = self._login()
            for frame in frames:
                ws.send(frame)
            self.ready = not frames
            ws.settimeout(RECV_POLL_S)
            idle = 0
            while not self._stop.is_set():
                try:
                    text = ws.recv()
                except websocket.WebSocketTimeoutException:
                    idle += 1
                    if idle * RECV_POLL_S >= 10:  # keep-alive: venues close a silent socket
                        ws.send(self._heartbeat)
                        idle = 0
                    continue
                idle = 0
                self._on_text(text if isinstance(text, str) else text.decode(errors="replace"))
        finally:
            self._ws = None
            ws.close(timeout=0.2) if ws.connected else ws.shutdown()

    def _on_text(self, text: str) -> None:
        if text == "pong":
            return
        try:
            msg = orjson.loads(text)
            rid = msg.get("id", msg.get("reqId"))  # Bybit /v5/trade echoes ``reqId``
        except (orjson.JSONDecodeError, AttributeError) as exc:
            self.counts["bad_frames"] += 1
            self._tally(f"{self.name} order socket: bad frame", f"{exc}: {text[:200]}")
            return
        if not self.ready and self._logged_in(msg):
            self.ready = True
            return
        with self._lock:
            future = self._pending.get(str(rid)) if rid is not None else None
        if future is None:
            self.counts["stray_replies"] += rid is not None and not str(rid).startswith("heartbeat")
            return
        self.counts["replies"] += 1
        future.set_result(msg)

    def _fail_pending(self) -> None:
        with self._lock:
            pending = list(self._pending.values())
        for future in pending:
            if not future.done():
                future.set_exception(ReplyLost("connection lost"))
