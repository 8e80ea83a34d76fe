"""Every error, response and symbol table in exchange-samples through the executors' classifiers and parsers."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal

import orjson
import pytest

from kairos.execution import OrderRequest
from kairos.execution.binance import binance_filters
from kairos.execution.filters import SymbolFilters, dec, wire
from kairos.execution.okx import okx_filters
from kairos.execution.venue import Outcome
from kairos.records import OrderState, OrderType, Side, Tif
from kairos.records import RejectReason as R
from tests.samples import SAMPLES, require_samples, sample, sample_bytes

require_samples()

REJ, OK = Outcome.REJECTED, Outcome.OK

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
    raw = sample_bytes(fixture)
    reply = dialect.classify(status, {}, raw)
    assert (reply.outcome, reply.code, reply.reason) == (outcome, code, reason)
    body = json.loads(raw)
    items = body.get("data") if isinstance(body.get("data"), list) else []
    expected_msg = next((i["sMsg"] for i in items if i.get("sCode", "0") != "0"), body.get("msg"))
    assert reply.message == expected_msg


@pytest.mark.parametrize(("fixture", "status", "outcome", "code", "reason"), BINANCE)
def test_binance_error_samples(dialects, fixture, status, outcome, code, reason) -> None:
    _check(dialects["binance"], fixture, status, outcome, code, reason)


@pytest.mark.parametrize(("fixture", "status", "outcome", "code", "reason"), OKX)
def test_okx_error_samples(dialects, fixture, status, outcome, code, reason) -> None:
    _check(dialects["okx"], fixture, status, outcome, code, reason)


def test_every_error_sample_is_covered() -> None:
    covered = {f for f, *_ in BINANCE + OKX} | {"binance_error_-2010_wsapi.json"}  # envelope: test below
    on_disk = {p.relative_to(SAMPLES).as_posix() for p in SAMPLES.rglob("*.json")
               if "error" in p.name or p.parent.name == "constructed" or "rejected" in p.name or "409" in p.name}
    assert on_disk - covered == set()


def test_binance_ws_api_envelope_carries_the_rest_error_body(dialects) -> None:
    inner = orjson.dumps(sample("binance_error_-2010_wsapi.json")["error"])
    reply = dialects["binance"].classify(400, {}, inner)
    assert (reply.outcome, reply.code, reply.reason) == (REJ, "-2010", R.VENUE_INSUFFICIENT_BALANCE)


def test_success_samples_are_ok(dialects) -> None:
    for name in ("binance_order_response_ack.json", "binance_order_response_full.json",
                 "binance_cancel_order_response.json", "binance_account.json"):
        assert dialects["binance"].classify(200, {}, sample_bytes(name)).outcome is OK
    for name in ("okx_order_response.json", "okx_cancel_order_response.json", "okx_balance_response.json"):
        assert dialects["okx"].classify(200, {}, sample_bytes(name)).outcome is OK
    assert dialects["binance"].classify(400, {}, sample_bytes("constructed/binance_error_-1021.json")).clock_skew


def _req() -> OrderRequest:
    return OrderRequest("abc123", 1, "BTCUSDT", Side.BUY, OrderType.LIMIT, Tif.GTC, 60000.0, 0.01, 0)


def test_binance_parsers_on_documented_responses(dialects) -> None:
    ex = dialects["binance"]
    full = ex.parse_placed(sample("binance_order_response_full.json"), _req())
    assert (full.state, full.cum_qty, full.venue_order_id, full.fee_asset) == (OrderState.FILLED, 10.0, 28, "USDT")
    assert full.fee_cum == pytest.approx(4 + 19.995 + 7.996 + 3.997 + 3.995)
    assert full.side is Side.SELL and full.ts_exchange_ns == 1507725176595 * 1_000_000
    ack = ex.parse_placed(sample("binance_order_response_ack.json"), _req())
    assert (ack.state, ack.client_order_id, ack.fee_cum) == (OrderState.ACK, "6gCrw2kRUAF9CvJDGP16IP", None)
    cancel = ex.parse_order(sample("binance_cancel_order_response.json"))
    assert (cancel.client_order_id, cancel.state, cancel.price) == ("myOrder1", OrderState.CANCELED, 2.0)
    assert ex.parse_balances(sample("binance_account.json"))["BTC"] == (4723846.89208129, 0.0)
    assert ex.parse_time(sample("binance_server_time.json")) == 1499827319559
    filters = ex.parse_filters(sample("binance_exchangeInfo_excerpt.json"))
    assert set(filters) == {"BTCUSDT", "NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"}
    assert ex.budget.limit(0) == 1200  # an old capture: the lower announced limit is kept


def test_okx_parsers_on_documented_responses(dialects) -> None:
    ex = dialects["okx"]
    placed = ex.parse_placed(sample("okx_order_response.json"), dataclasses.replace(_req(), symbol="BTC-USDT"))
    assert (placed.client_order_id, placed.state, placed.venue_order_id) == ("oktswap6", OrderState.ACK,
                                                                            312269865356374016)
    assert ex.parse_balances(sample("okx_balance_response.json"))["USDT"] == (4834.317093622894, 158.573)
    assert ex.parse_time(sample("okx_system_time.json")) == 1597026383085
    assert set(ex.parse_filters(sample("okx_instruments_spot_excerpt_real.json"))) == {"BTC-USDT", "ETH-USDT",
                                                                                        "OKB-USDT"}


def _binance(symbol: str) -> SymbolFilters:
    info = sample("binance_exchangeInfo_excerpt.json")
    return binance_filters(next(s for s in info["symbols"] if s["symbol"] == symbol))


def _okx(inst_id: str) -> SymbolFilters:
    data = sample("okx_instruments_spot_excerpt_real.json")["data"]
    return okx_filters(next(i for i in data if i["instId"] == inst_id))


def test_binance_exchange_info_excerpt() -> None:
    f = _binance("BTCUSDT")
    assert (f.tick, f.step, f.min_qty_d, f.min_notional_d) == (Decimal("0.01"), Decimal("0.00001"),
                                                                Decimal("0.00001"), Decimal("10"))
    assert f.violation(dec("60000.01"), dec("0.001")) == ""
    assert f.violation(dec("60000.015"), dec("0.001")) == "PRICE_FILTER"
    assert f.violation(dec("60000.01"), dec("0.0001")) == "NOTIONAL"        # 6.0 < minNotional 10
    assert _binance("NKNUSDT").step == Decimal("1")  # MARKET_LOT_SIZE stepSize "0.00000000" is not the lot step
    assert wire(_binance("NKNUSDT").quantize_qty(12.9)) == "12"


def test_every_published_binance_filter_example_parses() -> None:
    f = binance_filters({"filters": sample("binance_filters_examples.json")})
    assert (f.tick, f.min_price_d, f.max_price_d) == (Decimal("0.000001"), Decimal("0.000001"), Decimal("100000"))
    assert (f.step, f.min_qty_d, f.max_qty_d) == (Decimal("0.001"), Decimal("0.001"), Decimal("100000"))
    assert (f.min_notional_d, f.max_notional_d) == (Decimal("10"), Decimal("10000"))  # NOTIONAL wins over MIN_NOTIONAL


def test_okx_instrument_samples() -> None:
    btc, eth = _okx("BTC-USDT"), _okx("ETH-USDT")
    assert (btc.tick, btc.step, btc.min_qty_d) == (Decimal("0.1"), Decimal("0.00000001"), Decimal("0.00001"))
    assert btc.violation(dec("30000.1"), dec("0.000009")) == "LOT_SIZE"        # below minSz
    assert eth.violation(dec("2000.01"), dec("0.0010005")) == "LOT_SIZE"       # not a multiple of lotSz
    doc = okx_filters(sample("okx_instruments_response_doc.json")["data"][0])
    assert (doc.tick, doc.step, doc.min_qty_d, doc.max_qty_d) == (Decimal("0.1"), Decimal("0.00000001"),
                                                                  Decimal("0.00001"), Decimal("9999999999"))
