"""Symbol filters parsed from venue tables (our own, tests/fixtures) and Decimal-exact rounding."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kairos.execution.binance import binance_filters
from kairos.execution.filters import SymbolFilters, dec, wire
from kairos.execution.okx import okx_filters
from kairos.records import Side
from tests.fixtures import fixture


def _binance(symbol: str) -> SymbolFilters:
    info = fixture("binance/exchange_info.json")
    return binance_filters(next(s for s in info["symbols"] if s["symbol"] == symbol))


def _okx(inst_id: str) -> SymbolFilters:
    data = fixture("okx/instruments.json")["data"]
    return okx_filters(next(i for i in data if i["instId"] == inst_id))


def test_binance_exchange_info_ethusdt() -> None:
    f = _binance("ETHUSDT")
    assert (f.tick, f.step, f.min_qty_d, f.min_notional_d) == (Decimal("0.01"), Decimal("0.0001"),
                                                                Decimal("0.0001"), Decimal("5"))
    assert (f.tick_size, f.lot_size, f.min_qty, f.min_notional) == (0.01, 0.0001, 0.0001, 5.0)
    assert f.violation(dec("2417.37"), dec("0.01")) == ""
    assert f.violation(dec("2417.375"), dec("0.01")) == "PRICE_FILTER"
    assert f.violation(dec("2417.37"), dec("0.00015")) == "LOT_SIZE"
    assert f.violation(dec("2417.37"), dec("0.002")) == "NOTIONAL"          # 4.83 < minNotional 5
    assert f.violation(dec("2417.37"), dec("9000.0001")) == "LOT_SIZE"      # above maxQty
    assert f.violation(None, dec("0.002")) == ""                            # market: no price to check


def test_binance_tick_rule_is_absolute_not_relative_to_min_price() -> None:
    raw = {"filters": [{"filterType": "PRICE_FILTER", "minPrice": "0.00500000", "maxPrice": "0", "tickSize": "0.01"}]}
    f = binance_filters(raw)
    assert f.violation(dec("0.02"), dec("1")) == ""            # 0.02 % 0.01 == 0 (though (0.02-0.005) % 0.01 != 0)
    assert f.violation(dec("0.015"), dec("1")) == "PRICE_FILTER"
    assert f.violation(dec("99999999"), dec("1")) == ""        # maxPrice 0: disabled


def test_binance_zero_fields_disable_rules() -> None:
    f = _binance("DOGEUSDT")  # MARKET_LOT_SIZE stepSize "0.00000000" must not become the lot step
    assert (f.step, f.min_notional_d, f.max_notional_d) == (Decimal("1"), Decimal("1"), Decimal("0"))
    assert binance_filters({"filters": []}).violation(dec("1.2345"), dec("0.0001")) == ""


def test_every_binance_filter_type_parses() -> None:
    f = binance_filters({"filters": fixture("binance/filters_all.json")})
    assert (f.tick, f.min_price_d, f.max_price_d) == (Decimal("0.0001"), Decimal("0.0001"), Decimal("50000"))
    assert (f.step, f.min_qty_d, f.max_qty_d) == (Decimal("0.01"), Decimal("0.01"), Decimal("50000"))
    assert (f.min_notional_d, f.max_notional_d) == (Decimal("5"), Decimal("25000"))  # NOTIONAL wins over MIN_NOTIONAL
    assert f.violation(dec("5"), dec("5000.01")) == "NOTIONAL"                       # above maxNotional
    assert f.violation(dec("50000.0001"), dec("1")) == "PRICE_FILTER"


@pytest.mark.parametrize(("price", "side", "expected"), [
    (2417.379, Side.BUY, "2417.37"), (2417.371, Side.SELL, "2417.38"), (2417.365, Side.NONE, "2417.36"),
    (2417.37, Side.BUY, "2417.37"), (0.1 + 0.2, Side.SELL, "0.30"),
])
def test_price_rounding_is_exact_and_never_more_aggressive(price: float, side: Side, expected: str) -> None:
    assert _binance("ETHUSDT").quantize_price(price, side) == Decimal(expected)


def test_qty_rounds_down_to_the_step_and_wire_form_is_plain() -> None:
    f = _binance("ETHUSDT")
    assert f.quantize_qty(0.0012345) == Decimal("0.0012")
    assert f.round_qty(0.1 + 0.2) == 0.3
    assert wire(f.quantize_qty(1e-04)) == "0.0001"            # never "1E-4" on the wire
    assert wire(_binance("DOGEUSDT").quantize_qty(12.9)) == "12"


def test_okx_instruments() -> None:
    eth = _okx("ETH-USDT")
    assert (eth.tick, eth.step, eth.min_qty_d, eth.max_qty_d) == (Decimal("0.01"), Decimal("0.000001"),
                                                                  Decimal("0.0001"), Decimal("100000"))
    assert eth.violation(dec("2417.41"), dec("0.0001")) == ""
    assert eth.violation(dec("2417.41"), dec("0.00009")) == "LOT_SIZE"        # below minSz
    assert eth.violation(dec("2417.41"), dec("0.0010005")) == "LOT_SIZE"      # not a multiple of lotSz
    assert eth.violation(dec("2417.415"), dec("0.001")) == "PRICE_FILTER"
    assert wire(eth.quantize_price(2417.417, Side.BUY)) == "2417.41"


def test_okx_instrument_with_empty_numeric_fields() -> None:
    f = _okx("SOL-USDT")  # maxLmtSz "": no maximum
    assert (f.tick, f.step, f.min_qty_d, f.max_qty_d) == (Decimal("0.001"), Decimal("0.0001"), Decimal("0.01"),
                                                          Decimal("0"))
    assert f.violation(dec("187.001"), dec("1000000000")) == ""
