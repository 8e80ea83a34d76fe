"""The simulator's private (account) WebSocket servers: one per venue, pushing the exchange's own ledger.

`SimExchange` calls `PrivateHub.on_update` (under its lock, from any thread) for every order change
and every deposit or withdrawal (`BalanceChange`, which the dialect tells as the venue does: Binance
balanceUpdate then outboundAccountPosition, OKX ``account``);
the hub moves it onto the asyncio loop with ``call_soon_threadsafe`` (order kept) and sends the
venue dialect's frames (kairos/sim/private_binance.py, private_okx.py) to every authenticated
subscriber. The server is kairos/sim/ws_conn.py's (websockets' Sans-I/O protocol under a plain asyncio
protocol): each client frame is answered synchronously and every frame is written as it is produced, so a
reply leaves before the pushes its own order caused (rendered on the loop's next turn). Fault injection, per
venue REST port::

    POST /_sim/private-fault {"kind": "drop|duplicate|reorder|delay|terminate", "count": n, "delay_ms": ms}

- drop: abort every private connection now (clients must reconnect and reconcile).
- duplicate: the next ``count`` order changes are sent twice.
- reorder: the next ``count`` order changes are each held back and sent after the one that follows.
- delay: the next ``count`` fills (TRADE) are sent ``delay_ms`` late.
- terminate: Binance ``eventStreamTerminated`` to every subscription, which then gets nothing more.
- drop_reply: the next ``count`` WebSocket orders (place/cancel) are carried out, then their connection is
  aborted instead of answering (the client cannot know the outcome: it must query, never resend).

``GET /_sim/private-stats``: per venue, the counts above, the server's (unknown paths, overflows: clients
dropped for not reading, ping timeouts, bad text, handler errors), live sessions, and the port and path.

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

from kairos.records import Venue
from kairos.sim.exchange import BalanceChange, OrderUpdate, SimRefused, plain
from kairos.sim.router import HttpError, Request, Response, Router, json_response
from kairos.sim.ws_conn import WsConnection, WsOptions, WsServer

log = logging.getLogger(__name__)

FAULT_KINDS: Final = ("drop", "duplicate", "reorder", "delay", "terminate", "drop_reply")
HOLD_S: Final = 0.5  # a reordered change with nothing after it is sent after this long anyway


class PrivateSession:
    """One client connection: authenticated or not, and what it subscribed to."""

    __slots__ = ("authed", "conn", "id", "logon", "ordered", "subs", "tag")

    def __init__(self, conn: WsConnection, session_id: int) -> None:
        self.conn = conn
        self.id = session_id
        self.authed = False
        self.subs: set[str] = set()
        self.tag = 0  # Binance: the subscriptionId
        self.logon = ""  # Binance: the API key of its ``session.logon`` (its requests may then go unsigned)
        self.ordered = False  # the frame just handled was an order (place/cancel): drop_reply may swallow it

    def send(self, frame: str) -> None:
        """Written now: frames leave in the order they are produced (a reply before the pushes its own order
        caused, which the hub renders on the loop's next turn)."""
        self.conn.send_text(frame)


class PrivateDialect(Protocol):
    venue: Venue
    path: str
    # optional ``order_path``: a second path of the same server for WebSocket orders (Bybit /v5/trade)
    # optional ``connect_route``: the REST-twin route its meter charges per connection (Binance WS API: weight 2)
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
        self._server: WsServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._ids = itertools.count(1)
        self._held: list[tuple[str, Any]] | None = None
        self.faults = PrivateFaults()
        self.sessions: set[PrivateSession] = set()
        self.stats = {"connections": 0, "events": 0, "frames": 0, "dropped": 0, "duplicated": 0, "reordered": 0,
                      "delayed": 0, "terminated": 0, "dropped_replies": 0, "transfers": 0,
                      "refused_connects": 0}

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.port

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
        paths = tuple(p for p in (self._dialect.path, getattr(self._dialect, "order_path", "")) if p)
        self._server = WsServer(self, WsOptions(paths, ping, 3 * ping if ping else None))
        await self._server.start(self._host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()

    def counts(self) -> dict[str, int]:
        """``stats`` with the server's own counts (unknown paths, dropped slow clients, ping timeouts, ...)."""
        return {**self.stats, **(self._server.counts if self._server is not None else {})}

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
                session.conn.abort()
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
        """One change's frames to each subscribed session, in order, in one write per session."""
        wrap = self._dialect.wrap
        for session in self.sessions:
            subs = session.subs
            frames = [wrap(session, channel, event) for channel, event in events if channel in subs]
            if frames:
                self.stats["frames"] += len(frames)
                session.conn.send_texts(frames)

    # -- WsApp: the server's connections --------------------------------------------------------

    def open(self, conn: WsConnection) -> None:
        """A new connection, charged to the venue's meter where the venue counts connections; over the limit it is
        closed at once (1008, the meter's text; Binance refuses such a handshake with that 429/418)."""
        route = getattr(self._dialect, "connect_route", ())
        refusal = over_limit(self._dialect.meter, *route) if route else None
        if refusal is not None:
            self.stats["refused_connects"] += 1
            conn.close(1008, refusal.body.decode(errors="replace")[:120])
            return
        conn.session = session = PrivateSession(conn, next(self._ids))
        self.stats["connections"] += 1
        self.sessions.add(session)

    def message(self, conn: WsConnection, text: str) -> None:
        """The dialect's replies, written at once; with drop_reply armed, an order is carried out and its connection
        aborted instead of answered."""
        session = conn.session
        if session is None:  # refused at connect, closing
            return
        session.ordered = False
        replies = self._dialect.on_text(session, text)
        if session.ordered and self.faults.drop_reply:
            self.faults.drop_reply -= 1
            self.stats["dropped_replies"] += 1
            conn.abort()
            return
        for reply in replies:
            conn.send_text(reply)

    def closed(self, conn: WsConnection) -> None:
        self.sessions.discard(conn.session)


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
        return json_response({v.name.lower(): {**h.counts(), "sessions": len(h.sessions), "port": h.port,
                                               "path": h.path} for v, h in hubs.items()})

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


def over_limit(meter: Any, method: str, path: str) -> Response | None:
    """Counts one WebSocket request in the venue's REST rate meter as its REST twin ``method path``: the meter's
    refusal (429, or 418 banned, in the venue's body) when over the limit; None within it or with no meter."""
    if meter is None:
        return None
    try:
        meter.charge_route(method, path)
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
