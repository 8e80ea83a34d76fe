"""Order entry over the venue's WebSocket: one request/reply connection per venue, its own thread.

A separate connection from the private stream (same URL family): the stream's session ends for reasons
of its own (watchdog, ``eventStreamTerminated``, resubscription) and its thread spends time applying
fills; an order must neither wait behind that nor be lost with a subscription. Replies are matched to
requests by id. The reader thread (re)connects with backoff and sends the dialect's login frames;
neither ``request`` nor ``send`` waits for a connection: while the socket is down they raise `SocketDown`
before anything is sent, and the executor uses REST instead. A request that was sent but got no reply
(timeout, connection lost) ends in `ReplyLost`: the outcome is unknown and the executor queries the order
before anything else (never a blind resend).

A login the venue does not accept within the request timeout ends the session (counted ``logins_refused``,
logged with the venue's answer): the socket reconnects with backoff and logs in afresh.

``request`` waits for its reply; ``send`` does not: its callback gets the reply (or `ReplyLost`) on the
reader thread, which saves the place path two thread hand-offs. Deadlines are checked by the reader.
websocket-client opens the connection; frames are then written and read on the socket directly
(kairos/execution/ws_frames.py): one ``sendall`` per request, one ``recv`` per burst of replies.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Final

import orjson
import websocket

from kairos.execution.stream import TRANSPORT_ERRORS
from kairos.execution.ws_frames import OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, FrameReader, client_frame
from kairos.logs import ErrorTally

log = logging.getLogger(__name__)
BACKOFF_START_S: Final = 0.1
RECV_POLL_S: Final = 0.5
RECV_BYTES: Final = 1 << 16
Answer = dict[str, Any] | Exception
"""What a sent request ends in: its reply, or `ReplyLost` (why none came)."""


class SocketDown(Exception):
    """Nothing was sent: the order socket is not connected (or not logged in)."""


class ReplyLost(Exception):
    """The request went out and no reply came (timeout or connection lost): outcome unknown."""


def no_toll() -> float:
    """A call the venue does not count."""
    return 0.0


@dataclass(frozen=True, slots=True)
class Tolls:
    """What the venue's rate budget charges the socket: ``connect`` before each (re)connect, ``heartbeat`` before
    each keep-alive; each returns the seconds still short (0.0: paid). A connect waits until it is paid (counted
    ``budget_deferred``), so a reconnect storm cannot spend what orders need; a keep-alive goes out regardless (the
    socket would die), counted ``heartbeat_overdrawn``."""

    connect: Callable[[], float] = no_toll
    heartbeat: Callable[[], float] = no_toll


class OrderSocket:
    """Request/reply over one WebSocket; ``login`` frames are sent after each connect and ``logged_in``
    recognises the reply that makes the socket usable (no login frames: usable at once)."""

    def __init__(self, name: str, url: str, timeout_s: float, backoff_max_s: float,
                 login: Callable[[], list[str]], logged_in: Callable[[dict[str, Any]], bool],
                 heartbeat: str, tolls: Tolls = Tolls()) -> None:
        self.name = name
        self._tolls = tolls
        self._url = url
        self._timeout_s = timeout_s
        self._backoff_max_s = backoff_max_s
        self._login, self._logged_in, self._heartbeat = login, logged_in, heartbeat
        self._ids = itertools.count(1)
        self._pending: dict[str, tuple[Callable[[Answer], None], float]] = {}  # rid -> (callback, deadline)
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()  # the gate, pool workers and the reader (pongs, heartbeats) all write
        self._stop = threading.Event()
        self._ws: websocket.WebSocket | None = None
        self._thread = threading.Thread(target=self._run, name=f"orders.{name}", daemon=True)
        self._tally = ErrorTally(log)
        self.ready = False
        self._before_login = b""  # the last message that was not the login's acceptance
        self.counts = {"connects": 0, "disconnects": 0, "requests": 0, "replies": 0, "lost": 0, "bad_frames": 0,
                       "stray_replies": 0, "callback_errors": 0, "budget_deferred": 0, "heartbeat_overdrawn": 0,
                       "logins_refused": 0}

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
        future: Future[dict[str, Any]] = Future()
        self.send(rid, frame, lambda answer: _settle(future, answer))
        try:
            return future.result(self._timeout_s + RECV_POLL_S)  # the reader expires it first, as a rule
        except FutureTimeout as exc:
            with self._lock:
                self._pending.pop(rid, None)
            self.counts["lost"] += 1
            raise ReplyLost(f"{self.name}: {rid}: no reply within {self._timeout_s} s") from exc

    def send(self, rid: str, frame: str, on_answer: Callable[[Answer], None]) -> None:
        """Send one request frame without waiting; ``on_answer`` gets its reply, or `ReplyLost` after
        ``timeout_s`` or when the connection goes, on the reader thread (a failed send: on this one)."""
        ws = self._ws
        if ws is None or not self.ready:
            raise SocketDown(f"{self.name}: order socket not connected")
        with self._lock:
            self._pending[rid] = (on_answer, time.monotonic() + self._timeout_s)
        self.counts["requests"] += 1
        try:
            self._write(ws, OP_TEXT, frame.encode())
        except TRANSPORT_ERRORS as exc:
            self._answer(rid, ReplyLost(f"{self.name}: {rid}: {type(exc).__name__}: {exc}"))

    def _run(self) -> None:
        delay = BACKOFF_START_S
        while not self._stop.is_set():
            short_s = self._tolls.connect()
            if short_s:
                self.counts["budget_deferred"] += 1
                self._stop.wait(short_s)
                continue
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
        ws = websocket.create_connection(self._url, timeout=self._timeout_s, suppress_origin=True)
        self._ws = ws
        try:
            frames = self._login()
            for frame in frames:
                self._write(ws, OP_TEXT, frame.encode())
            self.ready, self._before_login = not frames, b""
            self._read(ws, time.monotonic() + self._timeout_s if frames else 0.0)
        finally:
            self._ws = None
            ws.close(timeout=0.2) if ws.connected else ws.shutdown()

    def _read(self, ws: websocket.WebSocket, login_by: float) -> None:
        """Frames off the socket until the venue closes it (or a frame breaks the protocol: `FrameError`). A login
        not accepted by ``login_by`` (monotonic; 0: none sent) ends the session: reconnected with backoff and a
        fresh login, never left connected and unusable."""
        sock, reader = ws.sock, FrameReader()
        sock.settimeout(RECV_POLL_S)
        idle = 0
        while not self._stop.is_set():
            if not self.ready and login_by and time.monotonic() > login_by:
                self.counts["logins_refused"] += 1
                raise ConnectionRefusedError(f"login not accepted within {self._timeout_s} s; the venue said: "
                                             f"{self._before_login[:200]!r}")
            try:
                data = sock.recv(RECV_BYTES)
            except TimeoutError:
                idle += 1
                if idle * RECV_POLL_S >= 10:  # keep-alive: venues close a silent socket
                    self.counts["heartbeat_overdrawn"] += self._tolls.heartbeat() > 0
                    self._write(ws, OP_TEXT, self._heartbeat.encode())
                    idle = 0
                self._expire()
                continue
            if not data:
                raise ConnectionResetError("closed by the venue without a close frame")
            idle = 0
            for opcode, payload in reader.feed(data):
                if opcode in (OP_TEXT, OP_BINARY):
                    self._on_frame(payload)
                elif opcode == OP_PING:
                    self._write(ws, OP_PONG, payload)
                elif opcode == OP_CLOSE:
                    raise websocket.WebSocketConnectionClosedException(f"closed by the venue: {payload[:2].hex()}")
            if self._pending:
                self._expire()

    def _write(self, ws: websocket.WebSocket, opcode: int, payload: bytes) -> None:
        frame = client_frame(opcode, payload)
        with self._send_lock:
            sock = ws.sock  # None once the connection was shut down (close(), or the reader's session ended)
            if sock is None:
                raise websocket.WebSocketConnectionClosedException(f"{self.name}: order socket closed")
            sock.sendall(frame)

    def _on_frame(self, data: bytes) -> None:
        """One text or binary frame's payload, parsed as it came (orjson refuses bad UTF-8 like bad JSON)."""
        if data == b"pong":
            return
        try:
            msg = orjson.loads(data)
            rid = msg.get("id", msg.get("reqId"))  # Bybit /v5/trade echoes ``reqId``
        except (orjson.JSONDecodeError, AttributeError) as exc:
            self.counts["bad_frames"] += 1
            self._tally(f"{self.name} order socket: bad frame", f"{exc}: {data[:200]!r}")
            return
        if not self.ready:  # only the login's answer is due: a refusal is kept for the session's end
            if self._logged_in(msg):
                self.ready = True
            else:
                self._before_login = data
            return
        if rid is None or not self._answer(str(rid), msg):
            self.counts["stray_replies"] += rid is not None and not str(rid).startswith("heartbeat")
            return
        self.counts["replies"] += 1

    def _answer(self, rid: str, answer: Answer) -> bool:
        """Hand ``answer`` to the request ``rid``'s callback (once); False when none waits for it."""
        with self._lock:
            entry = self._pending.pop(rid, None)
        if entry is None:
            return False
        if isinstance(answer, Exception):
            self.counts["lost"] += 1
        try:
            entry[0](answer)
        except Exception:  # the executor's bug must not end the session: counted and logged
            self.counts["callback_errors"] += 1
            log.exception("%s order socket: answer callback failed", self.name)
        return True

    def _expire(self) -> None:
        now = time.monotonic()
        with self._lock:
            late = [rid for rid, (_, deadline) in self._pending.items() if deadline < now]
        for rid in late:
            self._answer(rid, ReplyLost(f"{self.name}: {rid}: no reply within {self._timeout_s} s"))

    def _fail_pending(self) -> None:
        with self._lock:
            pending = list(self._pending)
        for rid in pending:
            self._answer(rid, ReplyLost(f"{self.name}: {rid}: connection lost"))


def _settle(future: Future[dict[str, Any]], answer: Answer) -> None:
    """A waiting request's callback: its Future gets the answer (unless it already gave up)."""
    try:
        if isinstance(answer, Exception):
            future.set_exception(answer)
        else:
            future.set_result(answer)
    except InvalidStateError:
        pass
