"""The shape of a venue's REST rate limits: windows, and what each call costs.

Each venue's own numbers live in its module kairos/ratelimit/<venue>.py, named by the venue table's
``limits`` column; both sides read them: the engine's shared `Budget` charges calls by them, and the
simulator enforces them (scaled down for tests), so a weight is written once.

Priority: orders, cancels and order queries (resolving an unknown outcome) are ESSENTIAL and may use
the reserve; snapshots, clock sync, rules, balances and open-order reconciliation are BACKGROUND, and
so are the private streams' connects, subscribes and counted heartbeats (routes named after the
WebSocket path or request, kairos/execution/stream.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum
from urllib.parse import parse_qs, urlsplit


class Priority(IntEnum):
    ESSENTIAL = 0
    BACKGROUND = 1


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    limit: int
    window_ms: int


@dataclass(frozen=True, slots=True)
class Route:
    window: int                               # index into VenueLimits.windows
    weight: int
    priority: Priority
    by_limit: tuple[tuple[int, int], ...] = ()  # (max ``limit`` param, weight), ascending
    unscoped: int = 0                         # weight when no ``symbol`` param is given (0: same weight)


@dataclass(frozen=True, slots=True)
class Cost:
    window: int
    weight: int
    priority: Priority


@dataclass(frozen=True, slots=True)
class VenueLimits:
    venue: str
    windows: tuple[Window, ...]
    routes: dict[tuple[str, str], Route]
    per_endpoint: bool   # over the limit only that endpoint waits (OKX 50011); else the whole venue (429/418)
    fallback: Route      # a call missing from the table
    usage_header: str = ""  # the venue's count of the first window, on every answer

    def cost(self, method: str, url: str) -> Cost:
        """What ``method url`` (path or full URL, with its query string) costs, and its priority."""
        parts = urlsplit(url)
        route = self.routes.get((method.upper(), parts.path), self.fallback)
        weight = route.weight
        if route.by_limit or route.unscoped:
            query = parse_qs(parts.query)
            if route.unscoped and not query.get("symbol"):
                weight = route.unscoped
            if route.by_limit:
                limit = _int(query.get("limit", [""])[0], route.by_limit[0][0])
                weight = next((w for top, w in route.by_limit if limit <= top), route.by_limit[-1][1])
        return Cost(route.window, weight, route.priority)

    def window_of(self, name: str) -> int:
        return next(i for i, w in enumerate(self.windows) if w.name == name)

    def scaled(self, scale: float) -> VenueLimits:
        """The same table with every limit times ``scale`` (at least 1): headroom, or a small simulator."""
        windows = tuple(replace(w, limit=max(1, int(w.limit * scale))) for w in self.windows)
        return replace(self, windows=windows)


def _int(text: str, default: int) -> int:
    return int(text) if text.isdigit() else default
