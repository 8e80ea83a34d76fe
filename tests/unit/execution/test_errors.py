"""Every error fixture in exchange-samples, classified and mapped to a RejectReason (code and text kept)."""

from __future__ import annotations

import json

import orjson
import pytest

from kairos.execution.venue import Outcome
from kairos.records import RejectReason as R
from tests.unit.execution.conftest import SAMPLES, sample

REJ, NF, UNK, RL, OK = Outcome.REJECTED, Outcome.NOT_FOUND, Outcome.UNKNOWN, Outcome.RATE_LIMITED, Outcome.OK

BINANCE = [  # (fixture, HTTP status, outcome, code, reason)
    ("constructed/binance_error_-1013_LOT_SIZE.json", 400, REJ, "-1013", R.VENUE_FILTER),
    ("constructed/binance_error_-1013_NOTIONAL.json", 400, REJ, "-1013", R.VENUE_FILTER),
    ("constructed/binance_error_-1013_PRICE_FILTER.json", 400, REJ, "-1013", R.VENUE_FILTER),
    ("constructed/binance_error_-1021.json", 400, REJ, "-1021", R.VENUE_AUTH),
    ("constructed/binance_error_-1021_ahead.json", 400, REJ, "-1021", R.VENUE_AUTH),
    ("constructed/binance_error_-1022.json", 400, REJ, "-1022", R.VENUE_AUTH),
    ("constructed/binance_error_-2010.json", 400, REJ, "-2010", R.VENUE_INSUFFICIENT_BALANCE),
    ("constructed/binance_error_-2011_unknown.json", 400, REJ, "-2011", R.UNKNOWN_ORDER),
    ("binance_error_-1013_stp.json", 400, REJ, "-1013", R.VENUE_REJECTED),     # not a filter failure
    ("binance_error_-1121.json", 400, REJ, "-1121", R.VENUE_REJECTED),
    ("binance_error_-2011_cancel_restrictions.json", 400, REJ, "-2011", R.VENUE_REJECTED),
    ("binance_cancelReplace_409_-2021_with_-2010.json", 409, REJ, "-2021", R.VENUE_REJECTED),
]
OKX = [
    ("okx_error_50111_http401_real.json", 401, REJ, "50111", R.VENUE_AUTH),
    ("okx_error_404_real.json", 404, REJ, "404", R.VENUE_REJECTED),               # numeric code at the gateway
    ("okx_place_order_rejected_code1.json", 200, REJ, "54109", R.VENUE_REJECTED),  # HTTP 200, sCode wins
    ("okx_ws_place_order_error.json", 200, REJ, "5XXXX", R.VENUE_REJECTED),
    ("okx_ws_place_order_error_51008.json", 200, REJ, "51008", R.VENUE_INSUFFICIENT_BALANCE),
    ("okx_ws_login_response_error.json", 200, REJ, "60009", R.VENUE_AUTH),
    ("okx_ws_subscribe_error.json", 200, REJ, "60012", R.VENUE_REJECTED),
]


def _check(dialect, fixture: str, status: int, outcome: Outcome, code: str, reason: R) -> None:
    raw = (SAMPLES / fixture).read_bytes()
    reply = dialect.classify(status, {}, raw)
    assert (reply.outcome, reply.code, reply.reason) == (outcome, code, reason)
    body = json.loads(raw)
    items = body.get("data") if isinstance(body.get("data"), list) else []
    expected_msg = next((i["sMsg"] for i in items if i.get("sCode", "0") != "0"), body.get("msg"))
    assert reply.message == expected_msg


@pytest.mark.parametrize(("fixture", "status", "outcome", "code", "reason"), BINANCE)
def test_binance_error_fixtures(dialects, fixture, status, outcome, code, reason) -> None:
    _check(dialects["binance"], fixture, status, outcome, code, reason)


@pytest.mark.parametrize(("fixture", "status", "outcome", "code", "reason"), OKX)
def test_okx_error_fixtures(dialects, fixture, status, outcome, code, reason) -> None:
    _check(dialects["okx"], fixture, status, outcome, code, reason)


def test_every_error_fixture_is_covered() -> None:
    covered = {f for f, *_ in BINANCE + OKX} | {"binance_error_-2010_wsapi.json"}  # envelope: test below
    on_disk = {p.relative_to(SAMPLES).as_posix() for p in SAMPLES.rglob("*.json")
               if "error" in p.name or p.parent.name == "constructed" or "rejected" in p.name or "409" in p.name}
    assert on_disk - covered == set()


def test_binance_ws_api_envelope_carries_the_rest_error_body(dialects) -> None:
    inner = orjson.dumps(sample("binance_error_-2010_wsapi.json")["error"])
    reply = dialects["binance"].classify(400, {}, inner)
    assert (reply.outcome, reply.code, reply.reason) == (REJ, "-2010", R.VENUE_INSUFFICIENT_BALANCE)


@pytest.mark.parametrize(("venue", "status", "headers", "body", "outcome", "code", "retry"), [
    ("binance", 429, {"Retry-After": "7"}, b'{"code":-1003,"msg":"Too many requests"}', RL, "-1003", 7.0),
    ("binance", 418, {"Retry-After": "120"}, b'{"code":-1003,"msg":"Way too many requests; IP banned"}', RL, "-1003",
     120.0),
    ("binance", 503, {}, b'{"code":-1007,"msg":"Send status unknown; execution status unknown."}', UNK, "-1007", 0),
    ("binance", 500, {}, b"Internal Server Error", UNK, "HTTP500", 0),
    ("binance", 400, {}, b'{"code":-2013,"msg":"Order does not exist."}', NF, "-2013", 0),
    ("okx", 429, {}, b'{"code":"50011","msg":"Too Many Requests","data":[]}', RL, "50011", 2.0),
    ("okx", 200, {}, b'{"code":"50011","msg":"Rate limit reached.","data":[]}', RL, "50011", 2.0),
    ("okx", 200, {}, b'{"code":"50004","msg":"Endpoint request timeout","data":[]}', UNK, "50004", 0),
    ("okx", 200, {}, b'{"code":"51603","msg":"Order does not exist","data":[]}', NF, "51603", 0),
    ("okx", 502, {}, b"<html>Bad Gateway</html>", UNK, "HTTP502", 0),
])
def test_status_driven_outcomes(dialects, venue, status, headers, body, outcome, code, retry) -> None:
    reply = dialects[venue].classify(status, headers, body)
    assert (reply.outcome, reply.code) == (outcome, code)
    assert reply.retry_after_s == retry


def test_success_bodies_are_ok(dialects) -> None:
    for name in ("binance_order_response_ack.json", "binance_order_response_full.json",
                 "binance_cancel_order_response.json", "binance_account.json"):
        assert dialects["binance"].classify(200, {}, (SAMPLES / name).read_bytes()).outcome is OK
    for name in ("okx_order_response.json", "okx_cancel_order_response.json", "okx_balance_response.json"):
        assert dialects["okx"].classify(200, {}, (SAMPLES / name).read_bytes()).outcome is OK


def test_okx_checks_every_scode_even_when_code_is_zero(dialects) -> None:
    body = {"code": "0", "msg": "", "data": [{"clOrdId": "a", "sCode": "0"}, {"clOrdId": "b", "sCode": "51121",
                                                                               "sMsg": "lot size"}]}
    reply = dialects["okx"].classify(200, {}, orjson.dumps(body))
    assert (reply.outcome, reply.code, reply.reason, reply.message) == (REJ, "51121", R.VENUE_FILTER, "lot size")


def test_clock_errors_ask_for_a_resync(dialects) -> None:
    raw = (SAMPLES / "constructed/binance_error_-1021.json").read_bytes()
    assert dialects["binance"].classify(400, {}, raw).clock_skew
    okx = dialects["okx"].classify(401, {}, b'{"code":"50102","msg":"Timestamp request expired"}')
    assert okx.clock_skew and okx.reason is R.VENUE_AUTH
