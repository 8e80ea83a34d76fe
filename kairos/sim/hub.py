"""One venue's WebSocket server (``websockets``, asyncio): sessions, subscriptions, fan-out, faults.

Market events arrive through `dispatch` in the order the market produced them (the server
schedules it with ``call_soon_threadsafe`` under the market lock). The venue's `Dialect` renders
each event once per subscription key; every session subscribed to a key gets the frame on its
own bounded queue, drained by a writer task (a client that falls 10 000 frames behind is cut
off, as a venue would). In replay mode a session instead receives the recorded frames with
their recorded spacing.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import Any, Protocol

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from kairos.records import Venue
from kairos.sim.book import DepthEvent, Event
from kairos.sim.faults import Fault, Faults

log = logging.getLogger(__name__)

QUEUE_LIMIT = 10_000


class Session:
    __slots__ = ("conn", "id", "last_client", "last_push", "queue", "subs")

    def __init__(self, conn: ServerConnection, subs: set[str], session_id: int) -> None:
        self.conn = conn
        self.subs = subs
        self.id = session_id
        self.queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_LIMIT)
        self.last_client = self.last_push = time.monotonic()

    def send(self, frame: str) -> None:
        """Queue a frame; a session whose queue is full is too slow and gets disconnected."""
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.conn.transport.abort()


class Dialect(Protocol):
    venue: Venue
    server_ping_interval_s: float | None  # protocol pings from the server (Binance), None for OKX
    idle_timeout_s: float | None  # close after this long without a push or a client frame (OKX)
    keepalive_s: float | None  # a subscription with no push this long gets a keep-alive push (OKX books)

    def keepalive(self, key: str) -> str | None:
        """The keep-alive push for subscription ``key``, or None if that channel has none."""

    def subscriptions_from_path(self, path: str) -> set[str] | None: ...

    def on_text(self, session: Session, text: str) -> list[str]: ...

    def keepalive_reply(self, text: str) -> str | None: ...

    def render(self, event: Event) -> list[tuple[str, str]]: ...

    def malformed(self, count: int) -> list[str]: ...

    def shutdown_notice(self) -> str: ...


class VenueHub:
    __slots__ = ("_dialect", "_faults", "_host", "_ids", "_last_push", "_loop", "_port", "_replay", "_server",
                 "_tasks", "sessions", "stats")

    def __init__(self, dialect: Dialect, faults: Faults, host: str, port: int,
                 replay: list[tuple[float, str]] | None, replay_speed: float) -> None:
        self._dialect, self._faults, self._host, self._port = dialect, faults, host, port
        self._replay = (replay, replay_speed) if replay is not None else None
        self._server: Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ids = itertools.count(1)
        self._last_push: dict[str, float] = {}  # subscription key -> when it last got a push
        self._tasks: list[asyncio.Task[None]] = []
        self.sessions: set[Session] = set()
        self.stats = {"connections": 0, "frames": 0, "gap_dropped": 0, "stall_dropped": 0, "refused": 0,
                      "keepalives": 0}

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        ping = self._dialect.server_ping_interval_s
        self._server = await serve(self._handle, self._host, self._port, compression=None, process_request=self._admit,
                                   ping_interval=ping, ping_timeout=3 * ping if ping else None, close_timeout=0.2)
        venue = self._dialect.venue
        self._faults.on(venue, "disconnect", lambda f: self._soon(self._abort_all))
        self._faults.on(venue, "malformed", lambda f: self._soon(self._send_malformed, f))
        self._faults.on(venue, "shutdown", lambda f: self._soon(self._shutdown_all))
        if self._dialect.keepalive_s and self._replay is None:
            self._tasks.append(asyncio.create_task(self._keepalives(self._dialect.keepalive_s)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _soon(self, fn: Any, *args: Any) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(fn, *args)

    def dispatch(self, event: Event) -> None:
        """Loop thread: render one market event and queue it to every subscribed session."""
        if isinstance(event, DepthEvent) and self._faults.take_gap(event.spec.venue, event.spec.symbol):
            self.stats["gap_dropped"] += 1
            return
        if not self.sessions or self._replay is not None:
            return
        now = time.monotonic()
        for key, frame in self._dialect.render(event):
            self._last_push[key] = now
            for session in self.sessions:
                if key in session.subs:
                    session.send(frame)

    async def _keepalives(self, idle_s: float) -> None:
        """OKX books: a subscription with no push for ``idle_s`` gets an empty update (seqId == prevSeqId)."""
        while True:
            await asyncio.sleep(idle_s / 4)
            now, last = time.monotonic(), self._last_push
            for key in {k for session in self.sessions for k in session.subs}:
                if now - last.setdefault(key, now) < idle_s:
                    continue
                frame = self._dialect.keepalive(key)
                if frame is None:
                    continue
                last[key] = now
                self.stats["keepalives"] += 1
                for session in self.sessions:
                    if key in session.subs:
                        session.send(frame)

    def _admit(self, conn: ServerConnection, request: Request) -> Response | None:
        if self._faults.refusing(self._dialect.venue):
            self.stats["refused"] += 1
            return conn.respond(503, "refusing connections (injected fault)\n")
        if self._dialect.subscriptions_from_path(request.path) is None:
            return Response(404, "Not Found", Headers([("Content-Length", "0")]))
        return None

    async def _handle(self, conn: ServerConnection) -> None:
        subs = self._dialect.subscriptions_from_path(conn.request.path if conn.request else "") or set()
        session = Session(conn, subs, next(self._ids))
        self.stats["connections"] += 1
        self.sessions.add(session)
        tasks = [asyncio.create_task(self._writer(session))]
        if self._dialect.idle_timeout_s:
            tasks.append(asyncio.create_task(self._idle_guard(session, self._dialect.idle_timeout_s)))
        if self._replay is not None:
            tasks.append(asyncio.create_task(self._play(session, *self._replay)))
        try:
            async for message in conn:
                session.last_client = time.monotonic()
                if isinstance(message, str) and not self._faults.stalled(self._dialect.venue):
                    for reply in self._replies(session, message):
                        session.send(reply)
        except ConnectionClosed:
            pass
        finally:
            self.sessions.discard(session)
            for task in tasks:
                task.cancel()

    def _replies(self, session: Session, text: str) -> list[str]:
        """Live: the dialect answers. Replay: only keepalives (the recording has its own acks)."""
        if self._replay is None:
            return self._dialect.on_text(session, text)
        reply = self._dialect.keepalive_reply(text)
        return [reply] if reply is not None else []

    async def _writer(self, session: Session) -> None:
        venue, faults, conn, queue = self._dialect.venue, self._faults, session.conn, session.queue
        try:
            while True:
                frame = await queue.get()
                if faults.stalled(venue):
                    self.stats["stall_dropped"] += 1
                    continue
                await conn.send(frame)
                self.stats["frames"] += 1
                session.last_push = time.monotonic()
        except ConnectionClosed:
            pass

    async def _idle_guard(self, session: Session, timeout_s: float) -> None:
        """OKX: a connection with no push and no client frame for ``timeout_s`` is closed."""
        while True:
            await asyncio.sleep(min(1.0, timeout_s / 4))
            if time.monotonic() - max(session.last_push, session.last_client) > timeout_s:
                await session.conn.close(4000, "idle timeout")
                return

    async def _play(self, session: Session, frames: list[tuple[float, str]], speed: float) -> None:
        """Replay: recorded frames with recorded spacing (speed 0 = as fast as the socket takes them)."""
        start = time.monotonic()
        for index, (offset, frame) in enumerate(frames):
            if speed > 0:
                await asyncio.sleep(max(0.0, start + offset / speed - time.monotonic()))
            elif index % 64 == 0:
                await asyncio.sleep(0)
            session.send(frame)

    def _abort_all(self) -> None:
        for session in list(self.sessions):
            session.conn.transport.abort()

    def _shutdown_all(self) -> None:
        """Announce the shutdown to every session, then close them a second later."""
        notice = self._dialect.shutdown_notice()
        sessions = list(self.sessions)
        for session in sessions:
            session.send(notice)
        assert self._loop is not None
        self._loop.call_later(1.0, lambda: [asyncio.ensure_future(s.conn.close(1001, "shutdown")) for s in sessions])

    def _send_malformed(self, fault: Fault) -> None:
        frames = self._dialect.malformed(fault.count)
        for session in self.sessions:
            for frame in frames:
                session.send(frame)
