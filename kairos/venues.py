"""The venue table: the one place a venue is declared; every per-venue list in the engine derives from it.

A row names the wire id (records.Venue, mapped to the proto enum by name), the config key (which is
also the role suffix ``feed.<name>`` and the ring ``md.<name>``), the venue's own modules as
``module:Class`` paths (resolved on use, so this module stays a leaf that config.py can import), the
secrets live trading needs, the spool stream id of its market data (persisted on disk: never
reused) and its private order stream, if it has one. Adding a venue = one row here plus the venue's
own modules (docs/FEEDS.md "Adding a venue").
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Final

from kairos.records import Venue


@dataclass(frozen=True, slots=True)
class VenueSpec:
    venue: Venue
    name: str
    feed: str             # FeedAdapter: public market data (kairos/feeds/<name>.py)
    executor: str         # RestExecution: signed REST trading (kairos/execution/<name>.py)
    sim_public: str       # simulator dialect: public WS frames and REST routes (kairos/sim/<name>.py)
    sim_trading: str      # simulator dialect: signed trading REST (kairos/sim/rest_<name>.py)
    secrets: tuple[str, ...]
    md_stream: int        # spool stream id of md.<name> (kairos/persist/batch.py)
    limits: str           # VenueLimits: documented REST rate limits (kairos/ratelimit/<name>.py)
    private: str = ""     # PrivateStream: private order stream (kairos/execution/stream_<name>.py); "" = REST polling
    sim_private: str = ""  # simulator dialect of that private stream (kairos/sim/private_<name>.py)


VENUES: Final = (
    VenueSpec(Venue.BINANCE, "binance", "kairos.feeds.binance:BinanceFeed", "kairos.execution.binance:BinanceExecution",
              "kairos.sim.binance:BinanceDialect", "kairos.sim.rest_binance:BinanceTrading",
              ("api_key", "api_secret"), 1, "kairos.ratelimit.binance:LIMITS",
              "kairos.execution.stream_binance:BinanceStream", "kairos.sim.private_binance:BinancePrivate"),
    VenueSpec(Venue.OKX, "okx", "kairos.feeds.okx:OkxFeed", "kairos.execution.okx:OkxExecution",
              "kairos.sim.okx:OkxDialect", "kairos.sim.rest_okx:OkxTrading",
              ("api_key", "api_secret", "passphrase"), 2, "kairos.ratelimit.okx:LIMITS",
              "kairos.execution.stream_okx:OkxStream", "kairos.sim.private_okx:OkxPrivate"),
    VenueSpec(Venue.BYBIT, "bybit", "kairos.feeds.bybit:BybitFeed", "kairos.execution.bybit:BybitExecution",
              "kairos.sim.bybit:BybitDialect", "kairos.sim.rest_bybit:BybitTrading",
              ("api_key", "api_secret"), 5, "kairos.ratelimit.bybit:LIMITS",
              "kairos.execution.stream_bybit:BybitStream", "kairos.sim.private_bybit:BybitPrivate"),
)
BY_NAME: Final = {spec.name: spec for spec in VENUES}
NAMES: Final = tuple(BY_NAME)
VENUE_NAMES: Final = {spec.name: spec.venue for spec in VENUES}
"""Config name -> wire id."""
BY_VENUE: Final = {spec.venue: spec for spec in VENUES}


def resolve(path: str) -> Any:
    """The object named by a ``module:attribute`` path of the table."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)

