"""Every venue's REST rate limits as data: windows, and what each call costs (EXCHANGE-PROTOCOLS A6, B7, D3).

The one table both sides read: the engine's shared `Budget` charges calls by it, and the simulator
enforces it (scaled down for tests), so a weight is written once.

- Binance: one REQUEST_WEIGHT window per clock minute, per IP, shared by every endpoint. Depth costs by
  ``limit``; openOrders without ``symbol`` costs 80. Going over earns 429 + Retry-After, then 418 bans.
- OKX: a window of 2 s per endpoint; going over answers code 50011 for that endpoint only.

Priority: orders, cancels and order queries (resolving an unknown outcome) are ESSENTIAL and may use
the reserve; snapshots, clock sync, rules, balances and open-order reconciliation are BACKGROUND.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Final
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


E, B = Priority.ESSENTIAL, Priority.BACKGROUND
BINANCE_DEPTH: Final = ((100, 5), (500, 25), (1000, 50), (5000, 250))

BINANCE: Final = VenueLimits(
    "binance",
    (Window("REQUEST_WEIGHT", 6000, 60_000),),
    {
        ("POST", "/api/v3/order"): Route(0, 1, E),
        ("DELETE", "/api/v3/order"): Route(0, 1, E),
        ("GET", "/api/v3/order"): Route(0, 4, E),
        ("GET", "/api/v3/openOrders"): Route(0, 6, B, unscoped=80),
        ("GET", "/api/v3/account"): Route(0, 20, B),
        ("GET", "/api/v3/exchangeInfo"): Route(0, 20, B),
        ("GET", "/api/v3/depth"): Route(0, 5, B, by_limit=BINANCE_DEPTH),
        ("GET", "/api/v3/time"): Route(0, 1, B),
        ("GET", "/api/v3/ping"): Route(0, 1, B),
    },
    per_endpoint=False,
    fallback=Route(0, 1, B),
    usage_header="X-MBX-USED-WEIGHT-1M",
)

OKX: Final = VenueLimits(
    "okx",
    (Window("trade/order", 60, 2000), Window("trade/cancel-order", 60, 2000), Window("trade/order-query", 60, 2000),
     Window("trade/orders-pending", 60, 2000), Window("account/balance", 10, 2000), Window("market/books", 40, 2000),
     Window("public/time", 10, 2000), Window("public/instruments", 20, 2000), Window("other", 10, 2000)),
    {
        ("POST", "/api/v5/trade/order"): Route(0, 1, E),
        ("POST", "/api/v5/trade/cancel-order"): Route(1, 1, E),
        ("GET", "/api/v5/trade/order"): Route(2, 1, E),
        ("GET", "/api/v5/trade/orders-pending"): Route(3, 1, B),
        ("GET", "/api/v5/account/balance"): Route(4, 1, B),
        ("GET", "/api/v5/market/books"): Route(5, 1, B),
        ("GET", "/api/v5/public/time"): Route(6, 1, B),
        ("GET", "/api/v5/public/instruments"): Route(7, 1, B),
    },
    per_endpoint=True,
    fallback=Route(8, 1, B),
)

LIMITS: Final = {"binance": BINANCE, "okx": OKX}
