"""Request signing for both venues, shared by the executors and by the simulator that checks them.

Binance (rest-api.md § SIGNED Endpoint Examples): ``signature = hex(HMAC_SHA256(secret, payload))``
where payload is the percent-encoded query string concatenated, with no separator, to the
percent-encoded body. OKX (docs § REST Authentication): ``sign = base64(HMAC_SHA256(secret,
timestamp + METHOD + requestPath + body))`` with the GET query inside requestPath and the
timestamp ISO-8601 UTC with milliseconds (``2020-12-08T09:08:57.715Z``).
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import re
import time
from collections.abc import Iterable
from urllib.parse import quote

Params = Iterable[tuple[str, str]]
_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]*")


def _encode(text: str) -> str:
    return text if _UNRESERVED.fullmatch(text) else quote(text, safe="")


def percent_encode(params: Params) -> str:
    """``k=v&k=v`` with RFC 3986 percent-encoding (only ``A-Za-z0-9-_.~`` left as they are).

    Same output as ``urlencode(params, quote_via=quote, safe="")``, 4x faster on the usual
    all-ASCII-safe values (a regex check instead of quoting every character).
    """
    return "&".join(f"{_encode(key)}={_encode(value)}" for key, value in params)


def binance_signature(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def binance_check(secret: str, payload: str, signature: str) -> bool:
    """Constant-time check; Binance HMAC signatures are case-insensitive."""
    return hmac.compare_digest(binance_signature(secret, payload), signature.lower())


def okx_timestamp(epoch_ms: int) -> str:
    """ISO-8601 UTC with milliseconds and a Z, as OK-ACCESS-TIMESTAMP wants it."""
    seconds, millis = divmod(epoch_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def okx_parse_timestamp(text: str) -> int:
    """Inverse of okx_timestamp (epoch ms); ValueError if the text is not that exact format."""
    if len(text) != 24 or text[-1] != "Z" or text[19] != ".":
        raise ValueError(f"not an ISO-8601 millisecond UTC timestamp: {text!r}")
    parsed = time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")
    return calendar.timegm(parsed) * 1000 + int(text[20:23])


def okx_signature(secret: str, timestamp: str, method: str, request_path: str, body: str = "") -> str:
    message = f"{timestamp}{method.upper()}{request_path}{body}"
    return base64.b64encode(hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()).decode()


def okx_check(secret: str, timestamp: str, method: str, request_path: str, body: str, sign: str) -> bool:
    return hmac.compare_digest(okx_signature(secret, timestamp, method, request_path, body), sign)
