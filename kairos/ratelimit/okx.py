"""OKX v5 REST limits (EXCHANGE-PROTOCOLS B7, D3): a window of 2 s per endpoint.

Going over answers code 50011 for that endpoint only. WebSocket (B2): at most 3 connects per second per
IP (``ws/connect``: the private stream pays one per (re)connect); login and subscribe count per connection
(480 an hour), which one login and one subscribe per connection never nears; the text ``ping`` is free.
"""

from __future__ import annotations

from typing import Final

from kairos.ratelimit.table import Priority, Route, VenueLimits, Window

E, B = Priority.ESSENTIAL, Priority.BACKGROUND

LIMITS: Final = VenueLimits(
    "okx",
    (Window("trade/order", 60, 2000), Window("trade/cancel-order", 60, 2000), Window("trade/order-query", 60, 2000),
     Window("trade/orders-pending", 60, 2000), Window("account/balance", 10, 2000), Window("market/books", 40, 2000),
     Window("public/time", 10, 2000), Window("public/instruments", 20, 2000), Window("other", 10, 2000),
     Window("ws/connect", 3, 1000)),
    {
        ("POST", "/api/v5/trade/order"): Route(0, 1, E),
        ("POST", "/api/v5/trade/cancel-order"): Route(1, 1, E),
        ("GET", "/api/v5/trade/order"): Route(2, 1, E),
        ("GET", "/api/v5/trade/orders-pending"): Route(3, 1, B),
        ("GET", "/api/v5/account/balance"): Route(4, 1, B),
        ("GET", "/api/v5/market/books"): Route(5, 1, B),
        ("GET", "/api/v5/public/time"): Route(6, 1, B),
        ("GET", "/api/v5/public/instruments"): Route(7, 1, B),
        ("GET", "/ws/v5/private"): Route(9, 1, B),
    },
    per_endpoint=True,
    fallback=Route(8, 1, B),
)
