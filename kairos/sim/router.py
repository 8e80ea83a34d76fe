"""The simulator's HTTP side: a tiny router plus a threaded stdlib server per venue port.

Handlers are plain functions ``handler(request) -> Response`` registered with
``router.register("GET", "/api/v3/depth", handler)``. Each HTTP request runs in its own thread
(``ThreadingHTTPServer``), so a handler may block (the ``slow_rest`` fault sleeps) without stalling
the others; handlers that touch shared state must lock it (`SimMarket` does). A handler that
raises `HttpError` answers with that status and JSON body; any other exception answers 500 and is
counted, never kills the server.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from kairos.logs import ErrorTally
from kairos.records import Venue

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request as received; ``query_string``/``body`` are the exact bytes a signature covers."""

    method: str
    path: str
    query_string: str
    query: dict[str, str]
    headers: Mapping[str, str]
    body: bytes
    venue: Venue  # which venue port received it

    def json(self) -> Any:
        """The body parsed as JSON; HttpError 400 when it is not."""
        try:
            return orjson.loads(self.body or b"{}")
        except orjson.JSONDecodeError as exc:
            raise HttpError(400, {"code": -1102, "msg": f"malformed JSON body: {exc}"}) from exc

    def form(self) -> dict[str, str]:
        """Query string and urlencoded body merged (the query string wins, as on Binance)."""
        merged = dict(parse_qsl(self.body.decode(), keep_blank_values=True)) if self.body else {}
        merged.update(self.query)
        return merged


@dataclass(slots=True)
class Response:
    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status, orjson.dumps(payload), {"Content-Type": "application/json", **(headers or {})})


class HttpError(Exception):
    """Raise from a handler to answer ``status`` with ``payload`` as JSON."""

    def __init__(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}: {payload}")
        self.response = json_response(payload, status, headers)


Handler = Callable[[Request], Response]
Middleware = Callable[[Request], Mapping[str, str] | None]
"""Runs before the handler: raises HttpError to answer instead, or returns headers to add to the answer."""


class Router:
    """(method, path) -> handler; exact paths only. Shared by every venue port of one simulator."""

    __slots__ = ("_before", "_lock", "_routes", "errors")

    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], Handler] = {}
        self._before: list[Middleware] = []
        self._lock = threading.Lock()
        self.errors = ErrorTally(log)

    def register(self, method: str, path: str, handler: Handler) -> None:
        """Add a route; registering the same (method, path) twice is a programming error."""
        key = (method.upper(), path)
        with self._lock:
            if key in self._routes:
                raise ValueError(f"route already registered: {method} {path}")
            self._routes[key] = handler

    def before(self, middleware: Middleware) -> None:
        """Run ``middleware(request)`` before every handler (fault injection: slow REST; rate limits)."""
        self._before.append(middleware)

    def routes(self) -> list[tuple[str, str]]:
        return sorted(self._routes)

    def dispatch(self, request: Request) -> Response:
        handler = self._routes.get((request.method, request.path))
        if handler is None:
            return json_response({"code": 404, "msg": f"no route {request.method} {request.path}"}, 404)
        try:
            added: dict[str, str] = {}
            for middleware in self._before:
                added.update(middleware(request) or {})
            response = handler(request)
            response.headers.update(added)
            return response
        except HttpError as exc:
            return exc.response
        except Exception as exc:  # a handler bug answers 500 and is counted; the server lives on
            self.errors("handler_error", f"{request.method} {request.path}: {exc!r}")
            return json_response({"code": -1000, "msg": f"internal error: {exc!r}"}, 500)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms delayed-ACK stall

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(self.command, parts.path, parts.query, dict(parse_qsl(parts.query, keep_blank_values=True)),
                          self.headers, body, self.server.venue)
        response = self.server.router.dispatch(request)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    do_GET = do_POST = do_DELETE = do_PUT = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request access logs (the simulator counts instead)."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, port: int, router: Router, venue: Venue) -> None:
        self.router = router
        self.venue = venue
        super().__init__((host, port), _Handler)


class HttpServer:
    """One venue's REST port (port 0 = ephemeral; read ``.port`` after construction)."""

    __slots__ = ("_server", "_thread")

    def __init__(self, host: str, port: int, router: Router, venue: Venue) -> None:
        self._server = _Server(host, port, router, venue)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"sim-http-{venue.name.lower()}", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()


def now_ms() -> int:
    """Wall-clock milliseconds: the venues' timestamp unit."""
    return time.time_ns() // 1_000_000


def json_text(payload: Any) -> str:
    return orjson.dumps(payload).decode()
