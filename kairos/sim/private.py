"""The simulator's private (account) WebSocket servers: one per venue, pushing the exchange's own ledger.

`SimExchange` calls `PrivateHub.on_update` (under its lock, from any thread) for every order change
and every deposit or withdrawal (`BalanceChange`, which the dialect tells as the venue does: Binance
balanceUpdate then outboundAccountPosition, OKX ``account``);
the hub moves it onto the asyncio loop with ``call_soon_threadsafe`` (order kept) and sends the
venue dialect's frames (kairos/sim/private_binance.py, private_okx.py) to every authenticated
subscriber. Fault injection, per venue REST port::

    POST /_sim/private-fault {"kind": "drop|duplicate|reorder|delay|terminate", "count": n, "delay_ms": ms}

- drop: abort every private connection now (clients must reconnect and reconcile).
- duplicate: the next ``count`` order changes are sent twice.
- reorder: the next ``count`` order changes are each held back and sent after the one that follows.
- delay: the next ``count`` fills (TRADE) are sent ``delay_ms`` late.
- terminate: Binance ``eventStreamTerminated`` to every subscription, which then gets nothing more.
- drop_reply: the next ``count`` WebSocket orders (place/cancel) are carried out, then their connection is
  aborted instead of answering (the client cannot know the outcome: it must query, never resend).

``GET /_sim/private-stats``: per venue, the counts above, live sessions, and the port and path.

``POST /_sim/balance {"asset": "USDT", "delta": "250.5"}``: deposit (withdraw if negative) free funds
out of band; the account push follows on the private stream. Answers the asset's ``free`` and
``locked`` after; 400 for a bad body or a withdrawal larger than the free balance.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Protocol

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from kairos.records import Venue
from kairos.sim.exchange import BalanceChange, OrderUpdate, SimRefused, plain
from kairos.sim.router import HttpError, Request, Response, Router, json_response

log = logging.getLogger(__name__)

FAULT_KINDS: Final = ("drop", "duplicate", "reorder", "delay", "terminate", "drop_reply")
HOLD_S: Final = 0.5  # a reordered change with nothing after it is sent after this long anyway


class PrivateSession:
    """One client connection: authenticated or not, and what it subscribed to."""

    __slots__ = ("authed", "conn", "id", "ordered", "queue", "subs", "tag")

    def __init__(self, conn: ServerConnection, session_id: int) -> None:
        self.conn = conn
        self.id = session_id
        self.authed = False
        self.subs: set[str] = set()
        self.tag = 0  # Binance: the subscriptionId
        self.ordered = False  # the frame just handled was an order (place/cancel): drop_reply may swallow it
        self.queue: asyncio.Queue[str] = asyncio.Queue()

    def send(self, frame: str) -> None:
        self.queue.put_nowait(frame)

    async def answer(self, frame: str) -> None:
        """The reply to the client's request, written at once unless frames are queued ahead of it (order kept): it
        does not wait behind the pushes its own request caused, which are rendered on the loop's next turn."""
        if self.queue.empty():
            await self.conn.send(frame)
        else:
            self.queue.put_nowait(frame)

    async def write(self) -> None:
        """Writer task: frames leave in the order they were queued."""
        try:
            while True:
                await self.conn.send(await self.queue.get())
        except ConnectionClosed:
            pass


class PrivateDialect(Protocol):
    venue: Venue
    path: str
    # optional ``order_path``: a second path of the same server for WebSocket orders (Bybit /v5/trade)
    ping_interval_s: float | None  # protocol pings from the server (Binance), None for OKX
    port: int  # where its server listens (``sim.venues.<name>.private_port``; 0 = ephemeral)
    trading: Any  # the venue's REST trading dialect: WebSocket orders are carried out by the same code
    meter: Any  # the venue's REST rate meter (kairos/sim/ratelimit.py): WebSocket orders count against it too

    def on_text(self, session: PrivateSession, text: str) -> list[str]:
        """Replies to one client frame (login, subscribe, ping, order); may authenticate and subscribe."""

    def render(self, update: OrderUpdate) -> list[tuple[str, Any]]:
        """(channel, event payload) pairs telling one order change."""

    def render_balance(self, change: BalanceChange) -> list[tuple[str, Any]]:
        """(channel, event payload) pairs telling a deposit or withdrawal."""

    def wrap(self, session: PrivateSession, channel: str, event: Any) -> str:
        """The frame carrying one event to one subscribed session."""

    def terminated(self, session: PrivateSession) -> list[str]:
        """Frames ending every subscription of a session (Binance eventStreamTerminated)."""


@dataclass(slots=True)
class PrivateFaults:
    duplicate: int = 0
    reorder: int = 0
    delay: int = 0
    delay_ms: float = 0.0
    drop_reply: int = 0


class PrivateHub:
    """One venue's private WebSocket server on the simulator's loop."""

    __slots__ = ("_dialect", "_held", "_host", "_ids", "_loop", "_loop_thread", "_port", "_server", "faults",
                 "sessions", "stats")

    def __init__(self, dialect: PrivateDialect, host: str, port: int) -> None:
        self._dialect, self._host, self._port = dialect, host, port
        self._server: Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._ids = itertools.count(1)
        self._held: list[tuple[str, Any]] | None = None
        self.faults = PrivateFaults()
        self.sessions: set[PrivateSession] = set()
        self.stats = {"connections": 0, "events": 0, "frames": 0, "dropped": 0, "duplicated": 0, "reordered": 0,
                      "delayed": 0, "terminated": 0, "dropped_replies": 0, "transfers": 0}

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    @property
    def path(self) -> str:
        return self._dialect.path

    @property
    def exchange(self) -> Any:
        """The venue's `SimExchange` (its trading dialect's account)."""
        return self._dialect.trading.exchange

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        ping = self._dialect.ping_interval_s
        self._server = await serve(self._handle, self._host, self._port, compression=None,
                                   ping_interval=ping, ping_timeout=3 * ping if ping else None, close_timeout=0.2)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def on_update(self, update: OrderUpdate | BalanceChange) -> None:
        """Any thread (the exchange lock held): queue the change on the loop, in order (from the loop's own thread, a
        WebSocket order, without waking it through its self-pipe)."""
        loop = self._loop
        if loop is None or not loop.is_running():
            return
        if threading.get_ident() == self._loop_thread:
            loop.call_soon(self._publish, update)
        else:
            loop.call_soon_threadsafe(self._publish, update)

    def inject(self, kind: str, count: int, delay_ms: float) -> None:
        """Any thread: arm or fire a fault (see the module docstring)."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._inject, kind, count, delay_ms)

    def _inject(self, kind: str, count: int, delay_ms: float) -> None:
        faults = self.faults
        if kind == "drop":
            self.stats["dropped"] += len(self.sessions)
            for session in list(self.sessions):
                session.conn.transport.abort()
        elif kind == "terminate":
            for session in self.sessions:
                for frame in self._dialect.terminated(session):
                    self.stats["terminated"] += 1
                    session.send(frame)
                session.subs.clear()
        elif kind == "delay":
            faults.delay, faults.delay_ms = faults.delay + count, delay_ms
        else:
            setattr(faults, kind, getattr(faults, kind) + count)

    def _publish(self, update: OrderUpdate | BalanceChange) -> None:
        if isinstance(update, BalanceChange):  # out of band: no order fault applies to it
            self.stats["transfers"] += 1
            self._send(self._dialect.render_balance(update))
            return
        events = self._dialect.render(update)  # (channel, event) pairs
        self.stats["events"] += 1
        faults = self.faults
        copies = 1
        if faults.duplicate:
            faults.duplicate -= 1
            self.stats["duplicated"] += 1
            copies = 2
        for _ in range(copies):
            self._deliver(events, update.exec_type == "TRADE")

    def _deliver(self, events: list[tuple[str, Any]], is_fill: bool) -> None:
        """Send now, or late (delay), or after the next change (reorder); faults compose with duplicates."""
        faults, loop = self.faults, self._loop
        assert loop is not None
        if faults.delay and is_fill:
            faults.delay -= 1
            self.stats["delayed"] += 1
            loop.call_later(faults.delay_ms / 1000, self._send, events)
        elif faults.reorder and self._held is None:
            faults.reorder -= 1
            self.stats["reordered"] += 1
            self._held = events
            loop.call_later(HOLD_S, self._release)
        else:
            self._send(events)
            self._release()

    def _release(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            self._send(held)

    def _send(self, events: list[tuple[str, Any]]) -> None:
        wrap = self._dialect.wrap
        for channel, event in events:
            for session in self.sessions:
                if channel in session.subs:
                    self.stats["frames"] += 1
                    session.send(wrap(session, channel, event))

    async def _handle(self, conn: ServerConnection) -> None:
        paths = (self._dialect.path, getattr(self._dialect, "order_path", ""))
        if conn.request is None or conn.request.path not in paths:
            await conn.close(1008, "unknown path")
            return
        session = PrivateSession(conn, next(self._ids))
        self.stats["connections"] += 1
        self.sessions.add(session)
        writer = asyncio.create_task(session.write())
        try:
            async for message in conn:
                text = message if isinstance(message, str) else message.decode(errors="replace")
                session.ordered = False
                replies = self._dialect.on_text(session, text)
                if session.ordered and self.faults.drop_reply:
                    self.faults.drop_reply -= 1
                    self.stats["dropped_replies"] += 1
                    conn.transport.abort()
                    break
                for reply in replies:
                    await session.answer(reply)
        except ConnectionClosed:
            pass
        finally:
            self.sessions.discard(session)
            writer.cancel()


def register_private_fault_route(router: Router, hubs: dict[Venue, PrivateHub]) -> None:
    """``POST /_sim/private-fault`` on each venue's REST port acts on that venue's private hub."""

    def hub_and_body(request: Request) -> tuple[PrivateHub, dict[str, Any]]:
        """The hub of the port's venue (404 if it has none) and the request's JSON body ({} if empty)."""
        hub = hubs.get(request.venue)
        if hub is None:
            raise HttpError(404, {"error": "no private stream on this port"})
        return hub, request.json() if request.body else {}

    def arm(request: Request) -> Response:
        hub, body = hub_and_body(request)
        kind = body.get("kind")
        try:
            count, delay_ms = int(body.get("count", 1)), float(body.get("delay_ms", 100))
        except (TypeError, ValueError) as exc:
            raise HttpError(400, {"error": f"count and delay_ms must be numbers: {exc}"}) from exc
        if kind not in FAULT_KINDS or count < 1 or delay_ms < 0:
            raise HttpError(400, {"error": f"kind one of {FAULT_KINDS}, count >= 1, delay_ms >= 0"})
        hub.inject(kind, count, delay_ms)
        return json_response({"armed": kind, "at_ms": int(time.time() * 1000)})

    def stats(request: Request) -> Response:
        return json_response({v.name.lower(): {**h.stats, "sessions": len(h.sessions), "port": h.port, "path": h.path}
                              for v, h in hubs.items()})

    def transfer(request: Request) -> Response:
        hub, body = hub_and_body(request)
        asset = body.get("asset")
        try:
            delta = Decimal(str(body.get("delta")))
        except InvalidOperation as exc:
            raise HttpError(400, {"error": f"delta must be a decimal number: {exc!r}"}) from exc
        if not isinstance(asset, str) or not asset.isalnum() or not delta.is_finite() or not delta:
            raise HttpError(400, {"error": "asset (letters/digits) and a finite non-zero delta"})
        try:
            free, locked = hub.exchange.transfer(asset, delta)
        except SimRefused as exc:
            raise HttpError(400, {"error": str(exc)}) from exc
        return json_response({"asset": asset, "free": plain(free), "locked": plain(locked)})

    router.register("POST", "/_sim/private-fault", arm)
    router.register("GET", "/_sim/private-stats", stats)
    router.register("POST", "/_sim/balance", transfer)


def over_limit(meter: Any, venue: Venue, method: str, path: str) -> Response | None:
    """Counts one WebSocket request in the venue's REST rate meter as its REST twin ``method path``: the meter's
    refusal (429, or 418 banned, in the venue's body) when over the limit; None within it or with no meter."""
    if meter is None:
        return None
    try:
        meter.charge(Request(method, path, "", {}, {}, b"", venue))
    except HttpError as exc:
        return exc.response
    return None


def carried_out(order: Callable[[], Response], refused: Callable[[SimRefused], Response]) -> Response:
    """The REST trading dialect's answer to one WebSocket order (same checks, same ledger as over REST): its
    reply, its error reply, or ``refused`` telling the exchange's refusal."""
    try:
        return order()
    except HttpError as exc:
        return exc.response
    except SimRefused as exc:
        return refused(exc)


def dumps(payload: Any) -> str:
    return orjson.dumps(payload).decode()
