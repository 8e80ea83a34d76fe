"""Strategy registry: each enabled ``settings.strategy.<name>`` section becomes one pure strategy object.

Factories translate config (symbols, venue names, fees, risk caps) into ids and numbers once, so a
strategy receives only its own section plus plain values. Strategy ids are fixed per name: they go
into every intent and client order id, and the gate echoes them in exec events. Every strategy shares
one per-venue "the gate trades it" flag array (`kairos.strategy.venues`), which the host refreshes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kairos.config import ArbitrageConfig, MarketMakingConfig, Settings
from kairos.errors import ConfigError
from kairos.instruments import VENUE_NAMES, InstrumentTable
from kairos.risk.state import active_limit
from kairos.strategy.api import Clock, MarketView, OrderIds, OrderLimits, Strategy
from kairos.strategy.arbitrage import ARBITRAGE_ID, CrossArbitrage
from kairos.strategy.market_making import MARKET_MAKING_ID, MarketMaker
from kairos.strategy.venues import ALL_OPEN

Factory = Callable[[Settings, InstrumentTable, MarketView, OrderIds, Clock, Sequence[bool]], Strategy]


def _enabled_venues(settings: Settings) -> dict[int, float]:
    """Venue id -> taker fee (bps) for every enabled venue."""
    return {VENUE_NAMES[n]: v.taker_fee_bps for n, v in settings.venues.items() if v.enabled}


def _instrument_id(table: InstrumentTable, symbol: str, key: str) -> int:
    try:
        return table.id_of(symbol)
    except KeyError as exc:
        raise ConfigError(f"unknown instrument {symbol!r}", key) from exc


def _limits(settings: Settings) -> OrderLimits:
    """The gate's per-order caps, as the gate reads them (0 = no cap)."""
    return OrderLimits(active_limit(settings.risk.max_order_qty), active_limit(settings.risk.max_order_notional))


def _arbitrage(settings: Settings, table: InstrumentTable, view: MarketView, ids: OrderIds,
               clock: Clock, open_venues: Sequence[bool]) -> CrossArbitrage:
    cfg: ArbitrageConfig = settings.strategy.arbitrage
    fees, key = _enabled_venues(settings), "strategy.arbitrage.instruments"
    venues: dict[int, tuple[int, ...]] = {}
    for symbol in cfg.instruments:
        inst = table.by_id(_instrument_id(table, symbol, key))
        venues[inst.id] = tuple(v for v in sorted(fees) if v in inst.venue_symbols)
        if len(venues[inst.id]) < 2:
            raise ConfigError(f"{symbol} needs two enabled venues with a symbol for arbitrage", key)
    return CrossArbitrage(cfg, fees, venues, view, ids, clock, _limits(settings), open_venues)


def _market_making(settings: Settings, table: InstrumentTable, view: MarketView, ids: OrderIds,
                   clock: Clock, open_venues: Sequence[bool]) -> MarketMaker:
    cfg: MarketMakingConfig = settings.strategy.market_making
    venue = VENUE_NAMES.get(cfg.venue)
    if venue is None or venue not in _enabled_venues(settings):
        raise ConfigError(f"venue {cfg.venue!r} is not an enabled venue", "strategy.market_making.venue")
    instruments = []
    for symbol in cfg.instruments:
        inst = table.by_id(_instrument_id(table, symbol, "strategy.market_making.instruments"))
        if venue not in inst.venue_symbols:
            raise ConfigError(f"{symbol} has no {cfg.venue} symbol", "strategy.market_making.instruments")
        instruments.append(inst.id)
    return MarketMaker(cfg, venue, tuple(instruments), view, ids, clock, _limits(settings), open_venues)


REGISTRY: dict[str, tuple[int, Factory]] = {
    "arbitrage": (ARBITRAGE_ID, _arbitrage),
    "market_making": (MARKET_MAKING_ID, _market_making),
}


def build_strategies(settings: Settings, view: MarketView, clock: Clock, run_id: str,
                     open_venues: Sequence[bool] = ALL_OPEN) -> list[Strategy]:
    """Every enabled strategy, in registry order, sharing one view, clock and venue flags (the host
    passes the gate's; the default, every venue open, is for drivers without a gate)."""
    table = InstrumentTable(settings.instruments)
    return [factory(settings, table, view, OrderIds(sid, run_id), clock, open_venues)
            for name, (sid, factory) in REGISTRY.items() if getattr(settings.strategy, name).enabled]
