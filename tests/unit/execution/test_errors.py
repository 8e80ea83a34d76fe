"""Every error body in our venue fixtures, classified and mapped to a RejectReason (code and text kept)."""

from __future__ import annotations

import orjson
import pytest

from kairos.execution.venue import Outcome
from kairos.records import RejectReason as R
from tests.fixtures import FIXTURES, fixture, fixture_bytes
from tests.unit.execution.test_bybit_rest import BYBIT_ERRORS

REJ, NF, UNK, RL, OK = Outcome.REJECTED, Outcome.NOT_FOUND, Outcome.UNKNOWN, Outcome.RATE_LIMITED, Outcome.OK

BINANCE = [  # (fixture, HTTP status, outcome, code, reason, message)
    ("error_-1013_market_lot_size.json", 400, REJ, "-1013", R.VENUE_FILTER, "Filter failure: MARKET_LOT_SIZE"),
    ("error_-1013_min_notional.json", 400, REJ, "-1013", R.VENUE_FILTER, "Filter failure: MIN_NOTIONAL"),
    ("error_-1013_percent_price_by_side.json", 400, REJ, "-1013", R.VENUE_FILTER,
     "Filter failure: PERCENT_PRICE_BY_SIDE"),
    ("error_-1013_not_a_filter.json", 400, REJ, "-1013", R.VENUE_REJECTED,  # -1013 but not a filter failure
     "Quote order qty market orders are not supported for this symbol."),
    ("error_-1021_recv_window.json", 400, REJ, "-1021", R.VENUE_AUTH,
     "Timestamp for this request is outside of the recvWindow."),
    ("error_-1021_ahead.json", 400, REJ, "-1021", R.VENUE_AUTH,
     "Timestamp for this request was 1000ms ahead of the server's time."),
    ("error_-1022.json", 400, REJ, "-1022", R.VENUE_AUTH, "Signature for this request is not valid."),
    ("error_-1121.json", 400, REJ, "-1121", R.VENUE_REJECTED, "Invalid symbol."),
    ("error_-2010_balance.json", 400, REJ, "-2010", R.VENUE_INSUFFICIENT_BALANCE,
     "Account has insufficient balance for requested action."),
    ("error_-2010_would_take.json", 400, REJ, "-2010", R.VENUE_REJECTED, "Order would immediately match and take."),
    ("error_-2011_unknown.json", 400, REJ, "-2011", R.UNKNOWN_ORDER, "Unknown order sent."),
    ("error_-2011_cancel_restrictions.json", 400, REJ, "-2011", R.VENUE_REJECTED,
     "Order was not canceled due to cancel restrictions."),
    ("error_409_cancelReplace.json", 409, REJ, "-2021", R.VENUE_REJECTED, "Order cancel-replace partially failed."),
]
OKX = [
    ("error_50111_http401.json", 401, REJ, "50111", R.VENUE_AUTH, "Invalid OK-ACCESS-KEY"),
    ("error_50102_clock.json", 401, REJ, "50102", R.VENUE_AUTH, "Timestamp request expired"),
    ("error_404_gateway.json", 404, REJ, "404", R.VENUE_REJECTED, "Not Found"),  # numeric code at the gateway
    ("error_code1_lot_size.json", 200, REJ, "51121", R.VENUE_FILTER,  # HTTP 200, code "1": the sCode wins
     "Order quantity must be a multiple of the lot size."),
    ("error_code1_account_mode.json", 200, REJ, "51010", R.VENUE_REJECTED,
     "You can't complete this request under your current account mode."),
    ("error_ws_order_51008.json", 200, REJ, "51008", R.VENUE_INSUFFICIENT_BALANCE,
     "Order failed. Insufficient ETH balance in account"),
    ("error_cancel_51400.json", 200, REJ, "51400", R.UNKNOWN_ORDER,
     "Order cancellation failed as the order has been filled, canceled or does not exist."),
    ("login_response_error.json", 200, REJ, "60009", R.VENUE_AUTH, "Login failed."),
    ("subscribe_error.json", 200, REJ, "60012", R.VENUE_REJECTED,
     'Invalid request: {"op": "subscribe", "args":[{"chanel": "books", "instId": "ETH-USDT"}]}'),
]


@pytest.mark.parametrize(("name", "status", "outcome", "code", "reason", "message"), BINANCE)
def test_binance_error_bodies(dialects, name, status, outcome, code, reason, message) -> None:
    reply = dialects["binance"].classify(status, {}, fixture_bytes(f"binance/{name}"))
    assert (reply.outcome, reply.code, reply.reason, reply.message) == (outcome, code, reason, message)


@pytest.mark.parametrize(("name", "status", "outcome", "code", "reason", "message"), OKX)
def test_okx_error_bodies(dialects, name, status, outcome, code, reason, message) -> None:
    reply = dialects["okx"].classify(status, {}, fixture_bytes(f"okx/{name}"))
    assert (reply.outcome, reply.code, reply.reason, reply.message) == (outcome, code, reason, message)


def test_every_error_fixture_is_covered() -> None:
    covered = {f"binance/{row[0]}" for row in BINANCE} | {f"okx/{row[0]}" for row in OKX}
    covered |= {"binance/error_-2010_wsapi.json", "okx/rest_books_error.json"}  # envelope below; feed parser test
    covered |= {row[0] for row in BYBIT_ERRORS} | {"bybit/subscribe_error.json"}  # feed parser test
    on_disk = {p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*.json") if "error" in p.name}
    assert on_disk == covered


def test_binance_ws_api_envelope_carries_the_rest_error_body(dialects) -> None:
    envelope = fixture("binance/error_-2010_wsapi.json")
    assert envelope["status"] == 400
    reply = dialects["binance"].classify(envelope["status"], {}, orjson.dumps(envelope["error"]))
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


@pytest.mark.parametrize("name", ["binance/order_ack.json", "binance/order_full.json", "binance/cancel_response.json",
                                  "binance/account.json", "binance/server_time.json", "okx/order_response.json",
                                  "okx/cancel_response.json", "okx/balance_response.json", "okx/system_time.json",
                                  "okx/login_response_ok.json"])
def test_success_bodies_are_ok(dialects, name: str) -> None:
    reply = dialects[name.split("/")[0]].classify(200, {}, fixture_bytes(name))
    assert (reply.outcome, reply.code, reply.clock_skew) == (OK, "", False)


def test_okx_checks_every_scode_even_when_code_is_zero(dialects) -> None:
    body = {"code": "0", "msg": "", "data": [{"clOrdId": "a", "sCode": "0"}, {"clOrdId": "b", "sCode": "51121",
                                                                               "sMsg": "lot size"}]}
    reply = dialects["okx"].classify(200, {}, orjson.dumps(body))
    assert (reply.outcome, reply.code, reply.reason, reply.message) == (REJ, "51121", R.VENUE_FILTER, "lot size")


@pytest.mark.parametrize(("venue", "name", "status", "skew"), [
    ("binance", "binance/error_-1021_recv_window.json", 400, True),
    ("binance", "binance/error_-1021_ahead.json", 400, True),
    ("binance", "binance/error_-1022.json", 400, False),
    ("okx", "okx/error_50102_clock.json", 401, True),
    ("okx", "okx/error_50111_http401.json", 401, False),
])
def test_clock_errors_ask_for_a_resync(dialects, venue: str, name: str, status: int, skew: bool) -> None:
    assert dialects[venue].classify(status, {}, fixture_bytes(name)).clock_skew is skew
