"""Bybit v5 request signatures (docs v5 § Integration guidance, Authentication), for the executor and the simulator.

``X-BAPI-SIGN = hex(HMAC_SHA256(secret, timestamp + apiKey + recvWindow + payload))``, lowercase,
where payload is the query string exactly as sent (GET) or the raw JSON body (POST). A request is
valid while ``server_time - recv_window <= timestamp < server_time + 1000``. The private WebSocket
authenticates with ``{"op": "auth", "args": [apiKey, expires, hex(HMAC_SHA256(secret, "GET/realtime" +
expires))]}``, ``expires`` a future time in ms.
"""

from __future__ import annotations

import hmac
from typing import Final

from kairos.execution.signing import hmac_sha256

AHEAD_MS: Final = 1000  # how far ahead of the server's clock a timestamp may be
WS_AUTH_PREFIX: Final = "GET/realtime"


def _hex_hmac(secret: str, message: str) -> str:
    return hmac_sha256(secret, message).hexdigest()


def bybit_signature(secret: str, timestamp: str, api_key: str, recv_window: str, payload: str = "") -> str:
    return _hex_hmac(secret, f"{timestamp}{api_key}{recv_window}{payload}")


def bybit_check(secret: str, timestamp: str, api_key: str, recv_window: str, payload: str, sign: str) -> bool:
    """Constant-time check of a lowercase hex signature."""
    return hmac.compare_digest(bybit_signature(secret, timestamp, api_key, recv_window, payload), sign)


def bybit_ws_signature(secret: str, expires: str) -> str:
    """The private WebSocket ``auth`` signature: hex HMAC-SHA256 of ``"GET/realtime" + expires`` (ms)."""
    return _hex_hmac(secret, f"{WS_AUTH_PREFIX}{expires}")


def bybit_ws_check(secret: str, expires: str, sign: str) -> bool:
    """Constant-time check of an ``auth`` signature."""
    return hmac.compare_digest(bybit_ws_signature(secret, expires), sign)


def bybit_in_window(timestamp_ms: int, server_ms: int, recv_window_ms: int) -> bool:
    """Whether the venue accepts a request stamped ``timestamp_ms`` when its clock reads ``server_ms``."""
    return server_ms - recv_window_ms <= timestamp_ms < server_ms + AHEAD_MS
