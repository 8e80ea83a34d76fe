"""A two-instrument grid with funded balances, a fresh BTC mark of 100 on both venues and the simulator's
BTC rules (tick 0.01, lot 0.00001, min qty 0.0001, min notional 5) parsed from an exchangeInfo entry."""

from __future__ import annotations

import pytest

from kairos.config import InstrumentConfig, RiskConfig
from kairos.execution.binance import binance_filters
from kairos.instruments import InstrumentTable
from kairos.records import Venue
from kairos.risk import Grid, PreTrade, RiskState

INSTRUMENTS = (
    InstrumentConfig("BTC-USDT", "BTC", "USDT", {"binance": "BTCUSDT", "okx": "BTC-USDT"}),
    InstrumentConfig("ETH-USDT", "ETH", "USDT", {"binance": "ETHUSDT"}),
)
LIMITS = RiskConfig(max_order_qty=1.0, max_order_notional=1000.0, max_position=2.0, max_gross_exposure=250.0,
                    price_band_bps=100.0, max_orders_per_sec=5, max_open_orders=3)
FEES = [0.0, 10.0, 8.0]
NOW = 10**15
BTC_RULES = binance_filters({"symbol": "BTCUSDT", "filters": [
    {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000.00", "tickSize": "0.01"},
    {"filterType": "LOT_SIZE", "minQty": "0.0001", "maxQty": "9000.00000", "stepSize": "0.00001"},
    {"filterType": "NOTIONAL", "minNotional": "5.00", "maxNotional": "9000000.00"}]})


@pytest.fixture
def grid() -> Grid:
    return Grid(InstrumentTable(INSTRUMENTS))


@pytest.fixture
def state(grid: Grid) -> RiskState:
    s = RiskState.empty(grid, LIMITS.max_orders_per_sec)
    for venue in (Venue.BINANCE, Venue.OKX):
        k = grid.key(venue, 1)
        s.bid[k], s.ask[k], s.mark_ns[k] = 99.0, 101.0, NOW
        s.rules.load(k, BTC_RULES)
        s.balance[grid.quote_slot[k]] = 10_000.0
        s.balance[grid.base_slot[k]] = 5.0
    return s


@pytest.fixture
def pre() -> PreTrade:
    return PreTrade(LIMITS, FEES)
