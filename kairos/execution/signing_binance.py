"""Binance request signatures (rest-api.md § SIGNED Endpoint Examples), for the executor and the simulator.

``signature = hex(HMAC_SHA256(secret, payload))`` where payload is the percent-encoded query string
concatenated, with no separator, to the percent-encoded body (kairos.execution.signing.percent_encode).
"""

from __future__ import annotations

import hmac

from kairos.execution.signing import hmac_sha256


def binance_signature(secret: str, payload: str) -> str:
    return hmac_sha256(secret, payload).hexdigest()


def binance_check(secret: str, payload: str, signature: str) -> bool:
    """Constant-time check; Binance HMAC signatures are case-insensitive."""
    return hmac.compare_digest(binance_signature(secret, payload), signature.lower())
