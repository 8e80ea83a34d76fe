"""Binance request signatures (rest-api.md § SIGNED Endpoint Examples), for the executor and the simulator.

The payload is the percent-encoded query string concatenated, with no separator, to the percent-encoded body
(kairos.execution.signing.percent_encode). Two kinds of API key:

- HMAC: ``signature = hex(HMAC_SHA256(secret, payload))``;
- Ed25519: the secret is the key's private half as PKCS#8 PEM (``-----BEGIN PRIVATE KEY-----``, as Binance's
  key generator writes it) and ``signature = base64(Ed25519(payload))``, percent-encoded where it goes into a
  query or form. Only an Ed25519 key may ``session.logon`` on the WebSocket API (EXCHANGE-PROTOCOLS.md D1):
  that connection's requests then carry neither ``apiKey`` nor ``signature``.

RSA keys are refused (`key_problem`): the engine signs with HMAC or Ed25519 only.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from functools import lru_cache
from urllib.parse import quote

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from kairos.execution.signing import hmac_sha256

PEM_HEAD = "-----BEGIN"
_PEM_NOISE = re.compile(r"-----(BEGIN|END) [A-Z ]*PRIVATE KEY-----|\\n|\s")


def is_ed25519(secret: str) -> bool:
    """Whether ``secret`` is an Ed25519 private key (PEM) rather than an HMAC secret."""
    return secret.lstrip().startswith(PEM_HEAD)


def key_problem(secret: str) -> str:
    """Why ``secret`` cannot sign (a PEM that is not an unencrypted Ed25519 private key); "" when it can."""
    if not is_ed25519(secret):
        return ""
    try:
        _ed25519(secret)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        return f"a PEM secret must be an unencrypted Ed25519 private key (PKCS#8): {exc}"
    return ""


@lru_cache(maxsize=8)
def _ed25519(secret: str) -> Ed25519PrivateKey:
    """The PEM parsed once per secret (parsing costs far more than signing). Its line breaks may have become
    spaces or literal ``\\n`` on the way through a one-line environment file: the body is taken as it is."""
    body = _PEM_NOISE.sub("", secret)
    key = load_pem_private_key(f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n".encode(),
                               password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"it holds a {type(key).__name__.removeprefix('_')} key")
    return key


def binance_signature(secret: str, payload: str) -> str:
    """hex HMAC-SHA256, or base64 Ed25519 for a PEM secret (as it goes into JSON: not percent-encoded)."""
    if is_ed25519(secret):
        return base64.b64encode(_ed25519(secret).sign(payload.encode())).decode()
    return hmac_sha256(secret, payload).hexdigest()


def query_signature(secret: str, payload: str) -> str:
    """The signature as a query or form value: an Ed25519 one is base64 (``+``, ``/``, ``=``), percent-encoded."""
    signature = binance_signature(secret, payload)
    return quote(signature, safe="") if is_ed25519(secret) else signature


def binance_check(secret: str, payload: str, signature: str) -> bool:
    """Whether ``signature`` (not percent-encoded) signs ``payload``: HMAC in constant time and case-insensitive,
    as Binance; Ed25519 against the public half of the PEM secret (the simulator holds the key pair)."""
    if not is_ed25519(secret):
        return hmac.compare_digest(binance_signature(secret, payload), signature.lower())
    try:
        _ed25519(secret).public_key().verify(base64.b64decode(signature, validate=True), payload.encode())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True
