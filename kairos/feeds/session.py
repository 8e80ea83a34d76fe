"""One venue WebSocket connection: connect, subscribe, keepalive, watchdog. No parsing, no books.

The socket is non-blocking after the handshake: `read` returns None when no complete frame is
buffered (websocket-client keeps a partly received frame and resumes it), so the duty cycle never
blocks on the network; the agent's idle strategy waits on ``fileno()`` instead. Keepalive is data:
server pings (Binance) are answered by websocket-client with the same payload; a client text ping
(OKX ``ping`` after N s of silence) must see any frame within N s. The watchdog reconnects when no
data frame (pongs do not count) arrived for ``feeds.watchdog_ms``. A frame (or fragmented message)
longer than ``feeds.max_frame_bytes`` raises `FrameTooLarge` as soon as its header is read, before
any of its payload: the agent closes the connection and reconnects.
"""

from __future__ import annotations

import select
import ssl
import time
from typing import Final

import websocket
from websocket._abnf import frame_buffer

from kairos.config import FeedConfig
from kairos.errors import ConfigError
from kairos.feeds.base import FeedCaps

TEXT: Final = websocket.ABNF.OPCODE_TEXT
BINARY: Final = websocket.ABNF.OPCODE_BINARY
CLOSE: Final = websocket.ABNF.OPCODE_CLOSE
PING: Final = websocket.ABNF.OPCODE_PING
PONG: Final = websocket.ABNF.OPCODE_PONG
NOT_READY: Final = (BlockingIOError, ssl.SSLWantReadError)
TRANSPORT_ERRORS: Final = (OSError, websocket.WebSocketException, ssl.SSLError)
_CONT: Final = websocket.ABNF.OPCODE_CONT


class FrameTooLarge(websocket.WebSocketException):
    """A frame header announced more payload than ``feeds.max_frame_bytes`` (a transport error: reconnect)."""


class _BoundedFrames(frame_buffer):
    """websocket-client's frame reader, checking the announced length before reading the payload.

    Installed as ``WebSocket.frame_buffer`` and reading through ``WebSocket._recv``: websocket-client
    internals (1.9), guarded by the 10 MB frame case in tests/unit/feeds/test_hostile_feed.py.
    """

    def __init__(self, ws: websocket.WebSocket, limit: int) -> None:
        super().__init__(ws._recv, True)
        self._limit = limit
        self._message = 0  # bytes of a fragmented data message so far

    def recv_length(self) -> None:
        super().recv_length()
        fin, opcode, length = self.header[0], self.header[4], self.length  # type: ignore[index]
        total = length + self._message if opcode == _CONT else length  # type: ignore[operator]
        if total > self._limit:
            raise FrameTooLarge(f"frame of {total} bytes exceeds feeds.max_frame_bytes {self._limit}")
        if opcode < 8:  # control frames may arrive between the fragments of a message
            self._message = 0 if fin else total


class WsSession:
    __slots__ = ("_caps", "_max_frame", "_ping_ns", "_ping_sent_ns", "_poll", "_watchdog_ns", "_ws", "last_data_ns",
                 "last_rx_ns", "opened_ns", "pings_sent")

    def __init__(self, caps: FeedCaps, cfg: FeedConfig) -> None:
        self._caps = caps
        interval = cfg.ping_interval_s
        if caps.ping_text is not None and not 0 < interval < caps.max_ping_interval_s:
            raise ConfigError(f"must be in (0, {caps.max_ping_interval_s}) s for this venue", "feeds.ping_interval_s")
        self._ping_ns = int(interval * 1e9)
        self._watchdog_ns = cfg.watchdog_ms * 1_000_000
        self._max_frame = cfg.max_frame_bytes
        self._ws: websocket.WebSocket | None = None
        self._poll = select.poll()
        self._ping_sent_ns = 0
        self.opened_ns = self.last_rx_ns = self.last_data_ns = 0
        self.pings_sent = 0

    @property
    def connected(self) -> bool:
        return self._ws is not None

    def open(self, url: str, frames: list[bytes], timeout_s: float) -> None:
        """Handshake and subscribe (control frames paced to the venue's limit); raises transport errors."""
        ws = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=False)
        ws.frame_buffer = _BoundedFrames(ws, self._max_frame)
        try:
            ws.connect(url, timeout=timeout_s, suppress_origin=True)
            gap = 1.0 / self._caps.max_control_per_s
            for index, frame in enumerate(frames):
                if index:
                    time.sleep(gap)
                ws.send(frame, opcode=TEXT)
            ws.sock.settimeout(0.0)
        except BaseException:
            ws.close()
            raise
        self._ws = ws
        self._poll = select.poll()
        self._poll.register(ws.sock.fileno(), select.POLLIN)
        now = time.monotonic_ns()
        self.opened_ns = self.last_rx_ns = self.last_data_ns = now
        self._ping_sent_ns = 0

    def send(self, frame: bytes) -> None:
        """One text frame on the open connection (a resubscription); raises transport errors."""
        self._ws.send(frame, opcode=TEXT)  # type: ignore[union-attr]

    def fileno(self) -> int:
        return self._ws.sock.fileno() if self._ws is not None and self._ws.sock else -1

    def read(self) -> tuple[int, bytes] | None:
        """Next complete frame (opcode, payload) or None when nothing is buffered. Pongs are swallowed."""
        if not self._readable():
            return None
        try:
            opcode, frame = self._ws.recv_data_frame(True)  # type: ignore[union-attr]
        except NOT_READY:
            return None
        except FrameTooLarge:
            self._ws.shutdown()  # type: ignore[union-attr]  # no closing handshake: it would read the payload
            raise
        now = time.monotonic_ns()
        self.last_rx_ns = now
        self._ping_sent_ns = 0
        data = frame.data
        if opcode == TEXT and data == self._caps.pong_text:
            return (PONG, data)
        if opcode in (TEXT, BINARY):
            self.last_data_ns = now
        return (opcode, data)

    def _readable(self) -> bool:
        """A 1 µs poll(0) instead of a read that raises through websocket-client (~5 µs) when drained.

        websocket-client reads only what the current frame still needs, so the rest of the stream
        waits in the kernel (poll sees it) or, for TLS, in the SSL object (``pending``).
        """
        sock = self._ws.sock  # type: ignore[union-attr]
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        return bool(self._poll.poll(0))

    def due(self, now_ns: int) -> str | None:
        """Keepalive and watchdog for this cycle; returns why the connection must go, or None."""
        if now_ns - self.last_data_ns > self._watchdog_ns:
            return "watchdog"
        ping = self._caps.ping_text
        if ping is None:
            return None
        if self._ping_sent_ns:
            return "pong_timeout" if now_ns - self._ping_sent_ns > self._ping_ns else None
        if now_ns - self.last_rx_ns > self._ping_ns:
            self._ws.send(ping, opcode=TEXT)  # type: ignore[union-attr]
            self._ping_sent_ns = now_ns
            self.pings_sent += 1
        return None

    def next_deadline_ns(self) -> int:
        """When `due` next needs to run (for the idle wait)."""
        deadline = self.last_data_ns + self._watchdog_ns
        if self._caps.ping_text is not None:
            start = self._ping_sent_ns or self.last_rx_ns
            deadline = min(deadline, start + self._ping_ns)
        return deadline

    def wait(self, timeout_s: float, wake_fd: int) -> bool:
        """Block until the socket or ``wake_fd`` is readable, or ``timeout_s`` passed; True if woken."""
        fds = [wake_fd, self.fileno()] if self.fileno() >= 0 else [wake_fd]
        readable, _, _ = select.select(fds, [], [], timeout_s)
        return wake_fd in readable

    def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.sock and ws.sock.settimeout(0.2)
                ws.close(timeout=0.2)
            except TRANSPORT_ERRORS:
                ws.shutdown()
