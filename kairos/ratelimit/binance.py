"""Binance spot REST limits (EXCHANGE-PROTOCOLS A6, D3): one REQUEST_WEIGHT window per clock minute, per IP.

Every endpoint shares the window. Depth costs by ``limit``; openOrders without ``symbol`` costs 80.
Going over earns 429 + Retry-After, then 418 bans.
"""

from __future__ import annotations

from typing import Final

from kairos.ratelimit.table import Priority, Route, VenueLimits, Window

E, B = Priority.ESSENTIAL, Priority.BACKGROUND
DEPTH: Final = ((100, 5), (500, 25), (1000, 50), (5000, 250))

LIMITS: Final = VenueLimits(
    "binance",
    (Window("REQUEST_WEIGHT", 6000, 60_000),),
    {
        ("POST", "/api/v3/order"): Route(0, 1, E),
        ("DELETE", "/api/v3/order"): Route(0, 1, E),
        ("GET", "/api/v3/order"): Route(0, 4, E),
        ("GET", "/api/v3/openOrders"): Route(0, 6, B, unscoped=80),
        ("GET", "/api/v3/account"): Route(0, 20, B),
        ("GET", "/api/v3/exchangeInfo"): Route(0, 20, B),
        ("GET", "/api/v3/depth"): Route(0, 5, B, by_limit=DEPTH),
        ("GET", "/api/v3/time"): Route(0, 1, B),
        ("GET", "/api/v3/ping"): Route(0, 1, B),
    },
    per_endpoint=False,
    fallback=Route(0, 1, B),
    usage_header="X-MBX-USED-WEIGHT-1M",
)
