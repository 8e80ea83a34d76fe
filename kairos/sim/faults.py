"""Runtime fault injection, shared by the WebSocket hubs and the REST routes.

Control endpoint (on every venue REST port)::

    POST /_sim/fault  {"kind": "disconnect|gap|malformed|stall|slow_rest|shutdown", "venue": "binance|okx",
                       "duration": seconds, "symbol": "BTCUSDT", "count": n, "delay_ms": ms}
    GET  /_sim/faults  -> what is active now, and how many of each kind were injected

- disconnect: abort every WS connection of the venue at once; refuse new ones for ``duration`` s.
- gap: the next ``count`` depth messages of ``symbol`` (default: the venue's first) are not sent,
  though the book moves on: clients see a sequence gap on that book only.
- malformed: send ``count`` bad frames (truncated JSON, non-JSON, a wrong field type) to every client.
- stall: connections stay open but nothing is sent (not even OKX pongs) for ``duration`` s.
- slow_rest: every REST answer of the venue waits ``delay_ms`` for the next ``duration`` s.
- shutdown: the venue's own "going away" notice (Binance serverShutdown, OKX notice 64008), then
  the connections are closed ~1 s later, as a maintenance restart would.
``venue`` defaults to the venue whose port received the request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from kairos.instruments import VENUE_NAMES
from kairos.records import Venue
from kairos.sim.router import HttpError, Request, Response, Router, json_response

KINDS: Final = ("disconnect", "gap", "malformed", "stall", "slow_rest", "shutdown")


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    venue: Venue
    duration_s: float = 0.0
    symbol: str = ""
    count: int = 1
    delay_ms: int = 2000


Action = Callable[[Fault], None]


class Faults:
    """Fault state behind one lock; hubs register what to do immediately for disconnect/malformed."""

    __slots__ = ("_actions", "_gaps", "_lock", "_refuse_until", "_slow", "_stall_until", "injected")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stall_until: dict[Venue, float] = {}
        self._refuse_until: dict[Venue, float] = {}
        self._slow: dict[Venue, tuple[float, float]] = {}
        self._gaps: dict[tuple[Venue, str], int] = {}
        self._actions: dict[tuple[Venue, str], Action] = {}
        self.injected: dict[str, int] = {}

    def on(self, venue: Venue, kind: str, action: Action) -> None:
        self._actions[(venue, kind)] = action

    def inject(self, fault: Fault) -> None:
        now = time.monotonic()
        with self._lock:
            self.injected[fault.kind] = self.injected.get(fault.kind, 0) + 1
            if fault.kind == "stall":
                self._stall_until[fault.venue] = now + fault.duration_s
            elif fault.kind == "disconnect":
                self._refuse_until[fault.venue] = now + fault.duration_s
            elif fault.kind == "slow_rest":
                self._slow[fault.venue] = (now + fault.duration_s, fault.delay_ms / 1000.0)
            elif fault.kind == "gap":
                key = (fault.venue, fault.symbol)
                self._gaps[key] = self._gaps.get(key, 0) + fault.count
        action = self._actions.get((fault.venue, fault.kind))
        if action is not None:
            action(fault)

    def stalled(self, venue: Venue) -> bool:
        return time.monotonic() < self._stall_until.get(venue, 0.0)

    def refusing(self, venue: Venue) -> bool:
        return time.monotonic() < self._refuse_until.get(venue, 0.0)

    def take_gap(self, venue: Venue, symbol: str) -> bool:
        """True (once per injected count) when this depth message must be swallowed."""
        with self._lock:
            left = self._gaps.get((venue, symbol), 0)
            if left <= 0:
                return False
            self._gaps[(venue, symbol)] = left - 1
            return True

    def rest_delay_s(self, venue: Venue) -> float:
        until, delay = self._slow.get(venue, (0.0, 0.0))
        return delay if time.monotonic() < until else 0.0

    def active(self) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            return {
                "stalled": [v.name.lower() for v, t in self._stall_until.items() if t > now],
                "refusing": [v.name.lower() for v, t in self._refuse_until.items() if t > now],
                "slow_rest": [v.name.lower() for v, (t, _) in self._slow.items() if t > now],
                "pending_gaps": {f"{v.name.lower()}:{s}": n for (v, s), n in self._gaps.items() if n},
                "injected": dict(self.injected),
            }


def register_fault_routes(router: Router, faults: Faults, first_symbol: Callable[[Venue], str]) -> None:
    """POST /_sim/fault, GET /_sim/faults, and the slow_rest middleware."""

    def inject(request: Request) -> Response:
        body = request.json()
        kind = body.get("kind")
        venue_name = body.get("venue") or request.venue.name.lower()
        if kind not in KINDS or venue_name not in VENUE_NAMES:
            raise HttpError(400, {"error": f"kind must be one of {KINDS}, venue one of {tuple(VENUE_NAMES)}"})
        venue = VENUE_NAMES[venue_name]
        try:
            fault = Fault(kind, venue, float(body.get("duration", 0.0)), str(body.get("symbol") or first_symbol(venue)),
                          int(body.get("count", 1)), int(body.get("delay_ms", 2000)))
        except (TypeError, ValueError) as exc:
            raise HttpError(400, {"error": f"bad fault parameter: {exc}"}) from exc
        faults.inject(fault)
        return json_response({"ok": True, "fault": {"kind": kind, "venue": venue_name, "symbol": fault.symbol}})

    def slow(request: Request) -> None:
        delay = faults.rest_delay_s(request.venue)
        if delay and not request.path.startswith("/_sim/"):
            time.sleep(delay)

    router.register("POST", "/_sim/fault", inject)
    router.register("GET", "/_sim/faults", lambda request: json_response(faults.active()))
    router.before(slow)
