"""Known-answer vectors for both venues' request signatures."""

from __future__ import annotations

import base64
from urllib.parse import unquote

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from kairos.execution.signing import percent_encode
from kairos.execution.signing_binance import (
    binance_check,
    binance_signature,
    is_ed25519,
    key_problem,
    query_signature,
)
from kairos.execution.signing_okx import okx_check, okx_parse_timestamp, okx_signature, okx_timestamp
from tests.ed25519 import ED25519_PEM, OTHER_ED25519_PEM, RFC2_SIGNATURE_R

# binance-spot-api-docs rest-api.md § SIGNED Endpoint Examples for POST /api/v3/order, HMAC Keys.
BINANCE_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
BINANCE_TAIL = [("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC"), ("quantity", "1"), ("price", "0.1"),
                ("recvWindow", "5000"), ("timestamp", "1499827319559")]
BINANCE_ASCII = ("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000"
                 "&timestamp=1499827319559")
BINANCE_NON_ASCII = ("symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&side=BUY&type=LIMIT&timeInForce=GTC"
                     "&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559")

# OKX docs § REST Authentication give the inputs (timestamp, GET /api/v5/account/balance?ccy=BTC, the body
# example, SecretKey 22582BD0CFF14C41EDBF1AB98506286D) but publish no output; the expected values were
# computed independently with `printf %s "$prehash" | openssl dgst -sha256 -hmac "$secret" -binary | base64`.
OKX_SECRET = "22582BD0CFF14C41EDBF1AB98506286D"
OKX_TS = "2020-12-08T09:08:57.715Z"


@pytest.mark.parametrize(("params", "payload", "signature"), [
    ([("symbol", "LTCBTC"), *BINANCE_TAIL], BINANCE_ASCII,
     "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"),
    ([("symbol", "１２３４５６"), *BINANCE_TAIL], BINANCE_NON_ASCII,
     "e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3"),
])
def test_binance_documented_vectors(params: list[tuple[str, str]], payload: str, signature: str) -> None:
    assert percent_encode(params) == payload
    assert binance_signature(BINANCE_SECRET, payload) == signature
    assert binance_check(BINANCE_SECRET, payload, signature.upper())  # HMAC signatures are case-insensitive
    assert not binance_check(BINANCE_SECRET, payload + "0", signature)


def test_percent_encoding_keeps_only_unreserved_characters() -> None:
    assert percent_encode([("a", "x y/z+~-_."), ("symbols", '["BTCUSDT"]')]) == \
        "a=x%20y%2Fz%2B~-_.&symbols=%5B%22BTCUSDT%22%5D"


def test_okx_get_vector_with_query_in_request_path() -> None:
    sign = okx_signature(OKX_SECRET, OKX_TS, "get", "/api/v5/account/balance?ccy=BTC")
    assert sign == "HiZhvSfMtWJA3uUIVXV3a/bSXNPCWvYFXoGCVS8V4zY="
    assert okx_check(OKX_SECRET, OKX_TS, "GET", "/api/v5/account/balance?ccy=BTC", "", sign)
    assert not okx_check(OKX_SECRET, OKX_TS, "GET", "/api/v5/account/balance", "", sign)


def test_okx_post_vector_signs_the_exact_body() -> None:
    body = '{"instId":"BTC-USDT","lever":"5","mgnMode":"isolated"}'
    sign = okx_signature(OKX_SECRET, OKX_TS, "POST", "/api/v5/account/set-leverage", body)
    assert sign == "eCnnCgWLjlQ9XnpUkrcny3qNq3WW/81KNrDr/XR6Xv8="
    assert not okx_check(OKX_SECRET, OKX_TS, "POST", "/api/v5/account/set-leverage", body.replace(":", ": "), sign)


def test_okx_timestamp_is_iso_ms_z_and_round_trips() -> None:
    assert okx_timestamp(1607418537715) == OKX_TS
    assert okx_timestamp(1607418537005) == "2020-12-08T09:08:57.005Z"
    assert okx_parse_timestamp(OKX_TS) == 1607418537715
    for bad in ("1607418537715", "2020-12-08T09:08:57Z", "2020-12-08 09:08:57.715Z"):
        with pytest.raises(ValueError):
            okx_parse_timestamp(bad)


def test_fast_percent_encoding_matches_urlencode() -> None:
    from urllib.parse import quote, urlencode

    cases = [[("symbol", "BTCUSDT"), ("price", "0.1")], [("a b", "c&d=e"), ("k", "１２３")], [("x", ""), ("y", "~._-")],
             [("symbols", '["BTCUSDT","ETHUSDT"]')]]
    for params in cases:
        assert percent_encode(params) == urlencode(params, quote_via=quote, safe="")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.text(alphabet=st.sampled_from("aZ09._~-=& /%+é"), max_size=8),
                          st.text(alphabet=st.sampled_from("aZ09._~-=& /%+é"), max_size=8)), max_size=6))
def test_percent_encoding_matches_urlencode_for_any_mix_of_safe_and_unsafe_parts(params: list[tuple[str, str]]) -> None:
    """The all-safe fast path must never take a part with ``=`` or ``&`` in it as two parts."""
    from urllib.parse import quote, urlencode

    assert percent_encode(params) == urlencode(params, quote_via=quote, safe="")
    assert percent_encode(iter(params)) == percent_encode(params)


# -- Binance Ed25519 keys -----------------------------------------------------------------------------------------

def test_binance_ed25519_signature_is_base64_of_the_rfc8032_vector() -> None:
    signature = binance_signature(ED25519_PEM, "r")
    assert base64.b64decode(signature).hex() == RFC2_SIGNATURE_R
    assert binance_check(ED25519_PEM, "r", signature)
    assert not binance_check(ED25519_PEM, "r0", signature)                 # another payload
    assert not binance_check(OTHER_ED25519_PEM, "r", signature)           # another key pair
    assert not binance_check(ED25519_PEM, "r", "not base64!")
    assert not binance_check(ED25519_PEM, "r", signature.lower())          # base64 is case-sensitive, unlike hex


def test_binance_query_signature_percent_encodes_only_base64() -> None:
    payload = "symbol=BTCUSDT&timestamp=1"
    assert query_signature(BINANCE_SECRET, payload) == binance_signature(BINANCE_SECRET, payload)
    encoded = query_signature(ED25519_PEM, payload)
    assert unquote(encoded) == binance_signature(ED25519_PEM, payload)
    assert not set("+/=") & set(encoded)


def test_binance_key_kinds_and_refused_pems() -> None:
    assert not is_ed25519(BINANCE_SECRET) and is_ed25519(ED25519_PEM) and is_ed25519("\n" + ED25519_PEM)
    assert key_problem(BINANCE_SECRET) == key_problem(ED25519_PEM) == ""
    rsa_pem = rsa.generate_private_key(65537, 2048).private_bytes(Encoding.PEM, PrivateFormat.PKCS8,
                                                                   NoEncryption()).decode()
    assert "RSAPrivateKey" in key_problem(rsa_pem)
    assert "Ed25519" in key_problem("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")


def test_binance_ed25519_pem_survives_a_one_line_environment_file() -> None:
    """Line breaks turned into spaces or literal ``\\n`` (systemd EnvironmentFile, docker --env-file)."""
    signature = binance_signature(ED25519_PEM, "r")
    for flattened in (ED25519_PEM.replace("\n", " "), ED25519_PEM.replace("\n", "\\n"), ED25519_PEM.strip()):
        assert is_ed25519(flattened) and key_problem(flattened) == ""
        assert binance_signature(flattened, "r") == signature
