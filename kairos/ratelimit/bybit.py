"""Bybit v5 spot REST limits: per endpoint, 1 s windows; going over answers retCode 10006 for that endpoint.

EXCHANGE-PROTOCOLS.md section E gives no numbers, so these are conservative defaults, at or below half
of what Bybit publishes per UID (create/cancel 20/s, order and wallet queries 50/s) and well inside its
per-IP cap (600 requests per 5 s, HTTP 403): raise them once the account's real limits are known
(the ``X-Bapi-Limit*`` headers of every answer say them). WebSocket (Bybit's rate-limit page): at most
500 connections per 5 minutes per IP (``ws/connect``: the private stream pays one per (re)connect); auth,
subscribe and ``ping`` have no published cost.
"""

from __future__ import annotations

from typing import Final

from kairos.ratelimit.table import Priority, Route, VenueLimits, Window

E, B = Priority.ESSENTIAL, Priority.BACKGROUND

LIMITS: Final = VenueLimits(
    "bybit",
    (Window("order/create", 10, 1000), Window("order/cancel", 10, 1000), Window("order/realtime", 10, 1000),
     Window("account/wallet-balance", 5, 1000), Window("market/orderbook", 10, 1000), Window("market/time", 5, 1000),
     Window("market/instruments-info", 5, 1000), Window("other", 5, 1000), Window("ws/connect", 500, 300_000)),
    {
        ("POST", "/v5/order/create"): Route(0, 1, E),
        ("POST", "/v5/order/cancel"): Route(1, 1, E),
        ("GET", "/v5/order/realtime"): Route(2, 1, E),
        ("GET", "/v5/account/wallet-balance"): Route(3, 1, B),
        ("GET", "/v5/market/orderbook"): Route(4, 1, B),
        ("GET", "/v5/market/time"): Route(5, 1, B),
        ("GET", "/v5/market/instruments-info"): Route(6, 1, B),
        ("GET", "/v5/private"): Route(8, 1, B),
    },
    per_endpoint=True,
    fallback=Route(7, 1, B),
)
