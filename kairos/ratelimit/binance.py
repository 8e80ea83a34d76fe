"""Binance spot REST limits (EXCHANGE-PROTOCOLS A6, D3): one REQUEST_WEIGHT window per clock minute, per IP.

Every endpoint shares the window. Depth costs by ``limit``; openOrders without ``symbol`` costs 80.
Going over earns 429 + Retry-After, then 418 bans. The WebSocket API counts in the same window
(web-socket-api.md, IP limits): connecting costs 2, ``userDataStream.subscribe.signature`` 2,
``session.logon`` 2, the ``ping`` method 1 (as REST ping); a WS request is keyed here by ``/ws-api/v3/<method>``,
the way the simulator charges it (kairos/sim/private_binance.py), unless it has a REST twin.
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
        ("GET", "/ws-api/v3"): Route(0, 2, B),
        ("POST", "/ws-api/v3/userDataStream.subscribe.signature"): Route(0, 2, B),
        ("POST", "/ws-api/v3/session.logon"): Route(0, 2, B),
    },
    per_endpoint=False,
    fallback=Route(0, 1, B),
    usage_header="X-MBX-USED-WEIGHT-1M",
)
