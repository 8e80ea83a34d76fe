"""The registry builds the enabled strategies from real layered config, with clear config errors."""

from __future__ import annotations

import pytest

from kairos import config
from kairos.errors import ConfigError
from kairos.records import Venue
from kairos.strategy import build_strategies
from kairos.strategy.api import IntentSink, ManualClock, MarketView
from kairos.strategy.arbitrage import CrossArbitrage
from kairos.strategy.market_making import MarketMaker
from tests.unit.strategy.helpers import batch, bbo


def _build(env: dict[str, str]) -> list:
    settings = config.load(env=env)
    return build_strategies(settings, MarketView(len(settings.instruments)), ManualClock(0), "00000001")


def test_default_config_builds_arbitrage_only() -> None:
    (arb,) = _build({})
    assert isinstance(arb, CrossArbitrage) and arb.strategy_id == 1


def test_both_strategies_when_enabled() -> None:
    arb, mm = _build({"KAIROS__STRATEGY__MARKET_MAKING__ENABLED": "true"})
    assert isinstance(arb, CrossArbitrage) and isinstance(mm, MarketMaker)
    assert mm.strategy_id == 2 and mm.counters()["mm_quotes"] == 0


@pytest.mark.parametrize(("env", "key"), [
    ({"KAIROS__STRATEGY__ARBITRAGE__INSTRUMENTS": "[DOGE-USDT]"}, "strategy.arbitrage.instruments"),
    ({"KAIROS__VENUES__OKX__ENABLED": "false"}, "strategy.arbitrage.instruments"),
    ({"KAIROS__STRATEGY__MARKET_MAKING__ENABLED": "true", "KAIROS__STRATEGY__MARKET_MAKING__VENUE": "kraken"},
     "strategy.market_making.venue"),
])
def test_bad_strategy_config_names_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        _build(env)
    assert err.value.key == key


def test_strategy_order_ids_carry_their_strategy_id() -> None:
    arb, mm = _build({"KAIROS__STRATEGY__MARKET_MAKING__ENABLED": "true"})
    assert arb._ids.next().startswith(b"K0100000001") and mm._ids.next().startswith(b"K0200000001")
    assert Venue.BINANCE in arb._fees and Venue.OKX in arb._fees


def test_a_risk_cap_of_zero_is_no_cap_for_the_strategies_too() -> None:
    """The gate reads risk.max_order_qty / max_order_notional 0 as 'disabled': so must the sizing."""
    settings = config.load(env={"KAIROS__RISK__MAX_ORDER_QTY": "0", "KAIROS__RISK__MAX_ORDER_NOTIONAL": "0",
                                "KAIROS__STRATEGY__ARBITRAGE__COOLDOWN_MS": "0"})
    view, clock = MarketView(len(settings.instruments)), ManualClock(10**12)
    (arb,) = build_strategies(settings, view, clock, "00000001")
    sink = IntentSink(clock)
    md = batch(bbo(Venue.BINANCE, 1, 59990.0, 60000.0, ts=clock.now_ns()),
               bbo(Venue.OKX, 1, 60500.0, 60510.0, ts=clock.now_ns()))
    view.update(md)
    arb.on_market(md, sink)
    legs = sink.take()
    assert len(legs) == 2 and list(legs["qty"]) == [settings.strategy.arbitrage.max_qty] * 2


THREE = (Venue.BINANCE, Venue.OKX, Venue.BYBIT)


@pytest.mark.parametrize(("cheap", "rich"), [(a, b) for a in THREE for b in THREE if a != b],
                         ids=lambda v: v.name.lower())
def test_with_bybit_enabled_arbitrage_trades_any_pair_of_the_three_venues(cheap: Venue, rich: Venue) -> None:
    """From the layered config as `KAIROS__VENUES__BYBIT__ENABLED=true make run` loads it."""
    settings = config.load(env={"KAIROS__VENUES__BYBIT__ENABLED": "true"})
    view, clock = MarketView(len(settings.instruments)), ManualClock(10**12)
    (arb,) = build_strategies(settings, view, clock, "00000001")
    (third,) = set(THREE) - {cheap, rich}
    now, sink = clock.now_ns(), IntentSink(clock)
    md = batch(bbo(cheap, 1, 59990.0, 60000.0, ts=now), bbo(rich, 1, 60500.0, 60510.0, ts=now),
               bbo(third, 1, 60000.0, 60010.0, ts=now))
    view.update(md)
    arb.on_market(md, sink)
    buy, sell = sink.take()
    assert (buy["venue"], sell["venue"]) == (cheap, rich)
