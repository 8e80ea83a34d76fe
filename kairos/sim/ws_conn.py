"""A lean WebSocket server for the simulator: websockets' Sans-I/O `ServerProtocol` under a plain `asyncio.Protocol`.

websockets' asyncio connection spends ~130 µs from a frame's arrival to its handler (parser task, assembler,
task wake-up) and more on the way out (send lock, drain). Here a read is parsed at once in ``data_received``,
each complete message is handed to the app synchronously, and whatever the app sends is written to the transport
as it is produced, so frames on one connection leave in the order they were made::

    data_received -> ServerProtocol.receive_data -> events_received          (TCP_NODELAY set on accept)
        Request       -> accept (101) -> path known? app.open(conn) : close 1008 "unknown path"
        TEXT/BINARY/CONT -> assembled message -> app.message(conn, text) -> conn.send_text -> transport.write
        PONG          -> the keepalive's pong deadline is lifted
    (pings, the close echo and protocol errors are answered by ServerProtocol itself)

No compression (no extensions offered); messages over ``max_message`` fail the connection (1009). A client that
stops reading cannot grow the server's memory: past ``max_buffer`` unsent bytes it is aborted (counted).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from websockets.frames import BINARY, CONT, PONG, TEXT, Frame
from websockets.http11 import Request
from websockets.protocol import OPEN
from websockets.server import ServerProtocol

log = logging.getLogger(__name__)

PING_PAYLOAD: Final = b"kairos-sim"
COUNTS: Final = ("unknown_paths", "overflows", "ping_timeouts", "bad_text", "handler_errors")


@dataclass(frozen=True, slots=True)
class WsOptions:
    paths: tuple[str, ...]  # request paths served; any other is accepted, then closed 1008
    ping_interval_s: float | None = None  # protocol pings from the server; None: none
    ping_timeout_s: float | None = None  # no pong within this long after a ping: close 1011
    close_timeout_s: float = 0.2  # closing handshake (and TCP close) bound before the socket is aborted
    open_timeout_s: float = 10.0  # opening handshake bound
    max_message: int = 2**20  # bytes of one (assembled) incoming message
    max_buffer: int = 4 * 2**20  # unsent bytes before a client that does not read is dropped


class WsApp(Protocol):
    """What a `WsServer` serves: called on the loop, synchronously, for each connection's life."""

    def open(self, conn: WsConnection) -> None:
        """A client completed the handshake on a served path (set ``conn.session`` here)."""

    def message(self, conn: WsConnection, text: str) -> None:
        """One complete text (or binary, decoded) message; may ``conn.send_text`` replies at once."""

    def closed(self, conn: WsConnection) -> None:
        """The connection is gone (only after ``open``)."""


class WsConnection(asyncio.Protocol):
    """One client connection: parsing, handshake, keepalive, closing and writes."""

    __slots__ = ("_close_timer", "_done", "_loop", "_opened", "_opts", "_parts", "_parts_text", "_ping_timer",
                 "_pong_timer", "_protocol", "_server", "_transport", "request", "session")

    def __init__(self, server: WsServer, loop: asyncio.AbstractEventLoop) -> None:
        self._server, self._opts, self._loop = server, server.opts, loop
        self._protocol = ServerProtocol(max_size=server.opts.max_message)
        self._transport: asyncio.Transport | None = None
        self._parts: list[bytes] = []  # a fragmented message so far
        self._parts_text = False
        self._opened = False  # the app opened it (and will hear of its end)
        self._done = False  # no more app traffic: aborted, failed or lost
        self._close_timer: asyncio.TimerHandle | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pong_timer: asyncio.TimerHandle | None = None
        self.request: Request | None = None  # the handshake request (``request.path``)
        self.session: Any = None  # the app's per-connection state

    # -- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._close_timer = self._loop.call_later(self._opts.open_timeout_s, transport.abort)
        self._server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        protocol = self._protocol
        protocol.receive_data(data)
        for event in protocol.events_received():
            if self._done:
                break
            if type(event) is Frame:
                self._frame(event)
            elif isinstance(event, Request):
                self._handshake(event)
        if not self._transport.is_closing():  # type: ignore[union-attr]
            self._flush()

    def eof_received(self) -> bool:
        self._protocol.receive_eof()
        self._flush()
        return False  # asyncio closes the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._done = True
        for timer in (self._close_timer, self._ping_timer, self._pong_timer):
            if timer is not None:
                timer.cancel()
        self._server.connections.discard(self)
        if self._opened:
            self._opened = False
            self._server.app.closed(self)

    # -- the app's side -------------------------------------------------------------------------

    def send_text(self, text: str) -> None:
        """Write one text frame now; nothing once the connection is closing or gone."""
        self.send_texts((text,))

    def send_texts(self, texts: Sequence[str]) -> None:
        """Write frames now, in order, in one write (one wake-up of the client, not one per frame); nothing once the
        connection is closing or gone."""
        if self._done or self._protocol.state is not OPEN:
            return
        for text in texts:
            self._protocol.send_text(text.encode())
        self._flush()

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake; the socket is aborted if it does not finish within ``close_timeout_s``."""
        if not self._done and self._protocol.state is OPEN:
            self._protocol.send_close(code, reason)
            self._flush()

    def abort(self) -> None:
        """Drop the TCP connection now, with no closing handshake (a fault, or a client that does not read)."""
        self._done = True
        if self._transport is not None:
            self._transport.abort()

    # -- inside ---------------------------------------------------------------------------------

    def _handshake(self, request: Request) -> None:
        protocol = self._protocol
        response = protocol.accept(request)
        protocol.send_response(response)
        if response.status_code != 101:
            return
        self.request = request
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if request.path not in self._opts.paths:
            self._server.counts["unknown_paths"] += 1
            protocol.send_close(1008, "unknown path")
            return
        self._opened = True
        self._server.app.open(self)
        if self._opts.ping_interval_s:
            self._ping_timer = self._loop.call_later(self._opts.ping_interval_s, self._ping)

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is TEXT or opcode is BINARY:
            if frame.fin:
                self._message(opcode is TEXT, frame.data)
            else:
                self._parts, self._parts_text = [frame.data], opcode is TEXT
        elif opcode is CONT:
            self._parts.append(frame.data)
            if frame.fin:
                data, self._parts = b"".join(self._parts), []
                self._message(self._parts_text, data)
        elif opcode is PONG and self._pong_timer is not None:
            self._pong_timer.cancel()
            self._pong_timer = None

    def _message(self, is_text: bool, data: bytes) -> None:
        if not self._opened:
            return  # a served path only (an unknown one is closing)
        try:
            text = data.decode() if is_text else data.decode(errors="replace")
        except UnicodeDecodeError as exc:
            self._server.counts["bad_text"] += 1
            self._fail(1007, f"invalid UTF-8 at position {exc.start}")
            return
        try:
            self._server.app.message(self, text)
        except Exception:
            self._server.counts["handler_errors"] += 1
            log.exception("sim ws: handler failed on %r", text[:200])
            self._fail(1011, "internal error")

    def _fail(self, code: int, reason: str) -> None:
        """Close with ``code`` at once (close frame, then EOF) and take no more messages."""
        self._protocol.fail(code, reason)
        self._flush()
        self._done = True

    def _flush(self) -> None:
        """Write what the protocol has produced; arm the close bound once a close is under way; drop a client whose
        unsent bytes pass ``max_buffer``."""
        transport = self._transport
        assert transport is not None
        writes = self._protocol.data_to_send()
        if not writes:
            return
        data = writes[0] if len(writes) == 1 else b"".join(writes)
        if data:
            transport.write(data)
        if not writes[-1]:  # SEND_EOF, always the last: half-close (the client closes its side, then asyncio ours)
            if transport.can_write_eof():
                transport.write_eof()
            else:
                transport.close()
        if self._close_timer is None and self._protocol.close_expected():
            self._close_timer = self._loop.call_later(self._opts.close_timeout_s, transport.abort)
        if transport.get_write_buffer_size() > self._opts.max_buffer and not self._done:
            self._server.counts["overflows"] += 1
            log.warning("sim ws: client %s stopped reading (%d bytes unsent): dropped",
                        transport.get_extra_info("peername"), transport.get_write_buffer_size())
            self.abort()

    def _ping(self) -> None:
        """Keepalive: a ping every ``ping_interval_s``; the first unanswered one for ``ping_timeout_s`` closes."""
        opts, loop = self._opts, self._loop
        if self._done or self._protocol.state is not OPEN:
            return
        self._protocol.send_ping(PING_PAYLOAD)
        self._flush()
        assert opts.ping_interval_s is not None
        self._ping_timer = loop.call_later(opts.ping_interval_s, self._ping)
        if self._pong_timer is None and opts.ping_timeout_s:
            self._pong_timer = loop.call_later(opts.ping_timeout_s, self._ping_timeout)

    def _ping_timeout(self) -> None:
        self._pong_timer = None
        self._server.counts["ping_timeouts"] += 1
        self._fail(1011, "keepalive ping timeout")


class WsServer:
    """A listening socket whose connections are `WsConnection`s serving one `WsApp`."""

    __slots__ = ("_loop", "_server", "app", "connections", "counts", "opts")

    def __init__(self, app: WsApp, opts: WsOptions) -> None:
        self.app, self.opts = app, opts
        self.connections: set[WsConnection] = set()
        self.counts = dict.fromkeys(COUNTS, 0)
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def start(self, host: str, port: int) -> None:
        self._loop = loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: WsConnection(self, loop), host, port)

    async def stop(self) -> None:
        """Stop listening, close every connection (1001), and wait for them to go (aborting stragglers)."""
        if self._server is None or self._loop is None:
            return
        self._server.close()
        for conn in list(self.connections):
            conn.close(1001, "going away")
        deadline = self._loop.time() + self.opts.close_timeout_s + 0.5
        while self.connections and self._loop.time() < deadline:
            await asyncio.sleep(0.01)
        for conn in list(self.connections):
            conn.abort()
        await self._server.wait_closed()
