"""Symbol filters parsed from venue tables and Decimal-exact rounding."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kairos.execution.filters import SymbolFilters, binance_filters, dec, okx_filters, wire
from kairos.records import Side
from tests.unit.execution.conftest import sample


def _binance(symbol: str) -> SymbolFilters:
    info = sample("binance_exchangeInfo_excerpt.json")
    return binance_filters(next(s for s in info["symbols"] if s["symbol"] == symbol))


def _okx(inst_id: str) -> SymbolFilters:
    data = sample("okx_instruments_spot_excerpt_real.json")["data"]
    return okx_filters(next(i for i in data if i["instId"] == inst_id))


def test_binance_exchange_info_excerpt_btcusdt() -> None:
    f = _binance("BTCUSDT")
    assert (f.tick, f.step, f.min_qty_d, f.min_notional_d) == (Decimal("0.01"), Decimal("0.00001"),
                                                                Decimal("0.00001"), Decimal("10"))
    assert (f.tick_size, f.lot_size, f.min_qty, f.min_notional) == (0.01, 0.00001, 0.00001, 10.0)
    assert f.violation(dec("60000.01"), dec("0.001")) == ""
    assert f.violation(dec("60000.015"), dec("0.001")) == "PRICE_FILTER"
    assert f.violation(dec("60000.01"), dec("0.000015")) == "LOT_SIZE"
    assert f.violation(dec("60000.01"), dec("0.0001")) == "NOTIONAL"        # 6.0 < minNotional 10
    assert f.violation(None, dec("0.0001")) == ""                           # market: no price to check


def test_binance_tick_rule_is_absolute_not_relative_to_min_price() -> None:
    raw = {"filters": [{"filterType": "PRICE_FILTER", "minPrice": "0.00500000", "maxPrice": "0", "tickSize": "0.01"}]}
    f = binance_filters(raw)
    assert f.violation(dec("0.02"), dec("1")) == ""            # 0.02 % 0.01 == 0 (though (0.02-0.005) % 0.01 != 0)
    assert f.violation(dec("0.015"), dec("1")) == "PRICE_FILTER"
    assert f.violation(dec("99999999"), dec("1")) == ""        # maxPrice 0: disabled


def test_binance_zero_fields_disable_rules() -> None:
    f = _binance("NKNUSDT")  # MARKET_LOT_SIZE stepSize "0.00000000" must not become the lot step
    assert f.step == Decimal("1")
    assert binance_filters({"filters": []}).violation(dec("1.2345"), dec("0.0001")) == ""


def test_every_published_binance_filter_example_parses() -> None:
    f = binance_filters({"filters": sample("binance_filters_examples.json")})
    assert (f.tick, f.min_price_d, f.max_price_d) == (Decimal("0.000001"), Decimal("0.000001"), Decimal("100000"))
    assert (f.step, f.min_qty_d, f.max_qty_d) == (Decimal("0.001"), Decimal("0.001"), Decimal("100000"))
    assert (f.min_notional_d, f.max_notional_d) == (Decimal("10"), Decimal("10000"))  # NOTIONAL wins over MIN_NOTIONAL
    assert f.violation(dec("5"), dec("2001")) == "NOTIONAL"                           # above maxNotional
    assert f.violation(dec("100000.000001"), dec("1")) == "PRICE_FILTER"


@pytest.mark.parametrize(("price", "side", "expected"), [
    (60000.129, Side.BUY, "60000.12"), (60000.121, Side.SELL, "60000.13"), (60000.125, Side.NONE, "60000.12"),
    (60000.12, Side.BUY, "60000.12"), (0.1 + 0.2, Side.SELL, "0.30"),
])
def test_price_rounding_is_exact_and_never_more_aggressive(price: float, side: Side, expected: str) -> None:
    assert _binance("BTCUSDT").quantize_price(price, side) == Decimal(expected)


def test_qty_rounds_down_to_the_step_and_wire_form_is_plain() -> None:
    f = _binance("BTCUSDT")
    assert f.quantize_qty(0.0012345) == Decimal("0.00123")
    assert f.round_qty(0.1 + 0.2) == 0.3
    assert wire(f.quantize_qty(1e-05)) == "0.00001"            # never "1E-5" on the wire
    assert wire(_binance("NKNUSDT").quantize_qty(12.9)) == "12"


def test_okx_instruments_real_excerpt() -> None:
    btc, eth = _okx("BTC-USDT"), _okx("ETH-USDT")
    assert (btc.tick, btc.step, btc.min_qty_d) == (Decimal("0.1"), Decimal("0.00000001"), Decimal("0.00001"))
    assert btc.violation(dec("30000.1"), dec("0.00001")) == ""
    assert btc.violation(dec("30000.1"), dec("0.000009")) == "LOT_SIZE"        # below minSz
    assert eth.violation(dec("2000.01"), dec("0.0010005")) == "LOT_SIZE"       # not a multiple of lotSz
    assert btc.violation(dec("30000.15"), dec("0.001")) == "PRICE_FILTER"
    assert wire(btc.quantize_price(30000.17, Side.BUY)) == "30000.1"


def test_okx_documented_instrument_with_empty_numeric_fields() -> None:
    f = okx_filters(sample("okx_instruments_response_doc.json")["data"][0])
    assert (f.tick, f.step, f.min_qty_d, f.max_qty_d) == (Decimal("0.1"), Decimal("0.00000001"), Decimal("0.00001"),
                                                          Decimal("9999999999"))
