"""OKX v5 request signatures (docs § REST Authentication), for the executor and the simulator.

``sign = base64(HMAC_SHA256(secret, timestamp + METHOD + requestPath + body))`` with the GET query
inside requestPath and the timestamp ISO-8601 UTC with milliseconds (``2020-12-08T09:08:57.715Z``).
"""

from __future__ import annotations

import base64
import calendar
import hmac
import time

from kairos.execution.signing import hmac_sha256


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
    return base64.b64encode(hmac_sha256(secret, message).digest()).decode()


def okx_check(secret: str, timestamp: str, method: str, request_path: str, body: str, sign: str) -> bool:
    return hmac.compare_digest(okx_signature(secret, timestamp, method, request_path, body), sign)
