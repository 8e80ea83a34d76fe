"""SimServer: the whole simulator wired together, for procs/sim.py and for tests (ports 0 = ephemeral).

Threads: one asyncio loop thread (both venues' WebSocket servers and the random-walk ticker) and
the HTTP servers' threads. `SimMarket` is shared between them behind its lock; its events reach
the hubs through ``loop.call_soon_threadsafe`` in the order they happened.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
import time
from typing import Any

from kairos.config import EndpointConfig, Settings
from kairos.records import Venue
from kairos.sim.book import Event
from kairos.sim.faults import Faults, register_fault_routes
from kairos.sim.hub import VenueHub
from kairos.sim.market import SimMarket, build_specs
from kairos.sim.private import PrivateHub, register_private_fault_route
from kairos.sim.ratelimit import register_rate_limits
from kairos.sim.replay import load_recordings
from kairos.sim.router import HttpError, HttpServer, Request, Response, Router, json_response
from kairos.venues import VENUES, resolve

log = logging.getLogger(__name__)

TRADING_MODULE = "kairos.sim.rest_trading"


class SimServer:
    __slots__ = ("_loop", "_thread", "_ticker", "_ws_paths", "exchanges", "faults", "http", "hubs", "market", "meters",
                 "private", "router", "settings", "trading")

    def __init__(self, settings: Settings) -> None:
        cfg = settings.sim
        self.settings = settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sim-ws", daemon=True)
        self._ticker: asyncio.Future[None] | None = None
        self.faults = Faults()
        self.router = Router()
        self.market = SimMarket(build_specs(settings.instruments, cfg), cfg, self._sink)
        recordings = load_recordings(cfg.replay_file) if cfg.replay_file else {}
        self.hubs: dict[Venue, VenueHub] = {}
        self.http: dict[Venue, HttpServer] = {}
        self._ws_paths: dict[Venue, str] = {}
        for row in VENUES:
            dialect = resolve(row.sim_public)(self.market, cfg)
            recording = recordings.get(row.venue)
            self.hubs[row.venue] = VenueHub(dialect, self.faults, cfg.host, dialect.ports[1],
                                            recording.frames if recording else None, cfg.replay_speed)
            self.http[row.venue] = HttpServer(cfg.host, dialect.ports[0], self.router, row.venue)
            self._ws_paths[row.venue] = dialect.ws_path
            dialect.register(self.router, recording)
        register_fault_routes(self.router, self.faults, lambda v: self.market.symbols(v)[0])
        self.meters = register_rate_limits(self.router, cfg)  # WebSocket orders are counted by the same meters
        self.router.register("GET", "/_sim/stats", self._stats)
        self.router.register("POST", "/_sim/mid", self._set_mid)
        self.private: dict[Venue, PrivateHub] = {}
        self.exchanges: dict[Venue, Any] = {}  # each venue's SimExchange (benchmarks listen to its fills)
        self.trading = self._plug_trading()
        logging.getLogger("websockets").setLevel(logging.WARNING)  # no line per connection

    def _plug_trading(self) -> bool:
        """Let kairos/sim/rest_trading.py add the signed order routes, when that module exists."""
        try:
            module = importlib.import_module(TRADING_MODULE)
        except ModuleNotFoundError as exc:
            if exc.name != TRADING_MODULE:
                raise
            log.warning("sim: %s not found, trading endpoints are not served", TRADING_MODULE)
            return False
        for dialect in module.register_trading_routes(self.router, self.market, self.settings):
            self.exchanges[dialect.venue] = dialect.exchange
            self._add_private(dialect)
        register_private_fault_route(self.router, self.private)
        return True

    def _add_private(self, trading: Any) -> None:
        """The venue's private stream server (its row's ``sim_private`` dialect, if any), fed by its trading
        account's order changes; WebSocket orders go to the same trading dialect as REST ones."""
        venue, exchange = trading.venue, trading.exchange
        path = next(row.sim_private for row in VENUES if row.venue is venue)
        if not path:
            return
        sim = self.settings.sim
        dialect = resolve(path)(self.settings.venues[venue.name.lower()], sim)
        dialect.trading, dialect.meter = trading, self.meters[venue]
        hub = PrivateHub(dialect, sim.host, dialect.port)
        exchange.add_listener(hub.on_update)
        self.private[venue] = hub

    def start(self) -> None:
        """Open every port and start ticking; returns once clients can connect."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start_hubs(), self._loop).result(timeout=10)
        for server in self.http.values():
            server.start()

    async def _start_hubs(self) -> None:
        for hub in self.hubs.values():
            await hub.start()
        for private in self.private.values():
            await private.start()
        if self.settings.sim.rate_hz > 0 and not self.settings.sim.replay_file:
            self._ticker = asyncio.ensure_future(self._tick(1.0 / self.settings.sim.rate_hz))

    async def _tick(self, period: float) -> None:
        next_at = time.monotonic()
        while True:
            self.market.step()
            next_at = max(next_at + period, time.monotonic())
            await asyncio.sleep(next_at - time.monotonic())

    def _sink(self, event: Event) -> None:
        """Called under the market lock: hand the event to its venue's hub, in order."""
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self.hubs[event.spec.venue].dispatch, event)

    def urls(self, venue: Venue) -> EndpointConfig:
        host = self.settings.sim.host
        ws_path = self._ws_paths[venue]
        private = self.private.get(venue)
        private_url = f"ws://{host}:{private.port}{private.path}" if private else ""
        return EndpointConfig(f"http://{host}:{self.http[venue].port}", f"ws://{host}:{self.hubs[venue].port}{ws_path}",
                              private_url)

    def ports(self) -> dict[str, int]:
        ports = {f"{v.name.lower()}_{kind}": port for v in self.hubs
                 for kind, port in (("rest", self.http[v].port), ("ws", self.hubs[v].port))}
        return ports | {f"{v.name.lower()}_private": hub.port for v, hub in self.private.items()}

    def _stats(self, request: Request) -> Response:
        return json_response({v.name.lower(): {**hub.stats, "sessions": len(hub.sessions)}
                              for v, hub in self.hubs.items()})

    def _set_mid(self, request: Request) -> Response:
        body: dict[str, Any] = request.json()
        try:
            venue = Venue[str(body.get("venue", request.venue.name)).upper()]
            price = None if body.get("price") is None else float(body["price"])
            self.market.set_mid(venue, str(body["symbol"]), price)
        except (KeyError, TypeError, ValueError) as exc:
            raise HttpError(400, {"error": f"need venue, symbol and price (or null): {exc!r}"}) from exc
        return json_response({"ok": True})

    def close(self) -> None:
        for server in self.http.values():
            server.close()
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._stop_hubs(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self._loop.close()

    async def _stop_hubs(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        for hub in self.hubs.values():
            await hub.stop()
        for private in self.private.values():
            await private.stop()


class SimAgent:
    """The simulator as an Agent: the servers run on their own threads; the duty cycle only reports."""

    role = "sim"
    __slots__ = ("_row", "_server")

    def __init__(self, server: SimServer, row: Any | None) -> None:
        self._server = server
        self._row = row

    def on_start(self) -> None:
        log.info("sim serving %s (trading routes: %s)", self._server.ports(), self._server.trading)

    def do_work(self) -> int:
        if self._row is not None:
            for venue, hub in self._server.hubs.items():
                self._row.counter(f"{venue.name.lower()}_frames").set(hub.stats["frames"])
                self._row.counter(f"{venue.name.lower()}_sessions").set(len(hub.sessions))
        return 0

    def on_close(self) -> None:
        self._server.close()


class Unsupervised:
    """Heartbeat target when the simulator runs on its own (no status board to report to)."""

    def heartbeat(self) -> None:
        return None

    def set_state(self, state: Any) -> None:
        return None
