"""Instrument and venue ids: small integers, built once from config, identical in every process.

Ids are positions in the configured ``instruments`` list (starting at 1; 0 means "none"), so every
process that loads the same config agrees without talking to the others.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from kairos.config import InstrumentConfig
from kairos.errors import ConfigError
from kairos.records import Venue
from kairos.venues import VENUE_NAMES

__all__ = ["VENUE_NAMES", "Instrument", "InstrumentTable"]


@dataclass(frozen=True, slots=True)
class Instrument:
    id: int
    symbol: str
    base: str
    quote: str
    venue_symbols: dict[Venue, str]


class InstrumentTable:
    """Symbol <-> id lookups, built in set-up so the hot path only indexes."""

    __slots__ = ("_by_id", "_by_symbol", "_by_venue_symbol")

    def __init__(self, instruments: tuple[InstrumentConfig, ...]) -> None:
        self._by_id: dict[int, Instrument] = {}
        self._by_symbol: dict[str, Instrument] = {}
        self._by_venue_symbol: dict[tuple[Venue, str], Instrument] = {}
        for index, cfg in enumerate(instruments, start=1):
            if cfg.symbol in self._by_symbol:
                raise ConfigError(f"duplicate instrument {cfg.symbol!r}", f"instruments[{index - 1}].symbol")
            names = {VENUE_NAMES[name]: symbol for name, symbol in cfg.symbols.items() if symbol}
            inst = Instrument(index, cfg.symbol, cfg.base, cfg.quote, names)
            self._by_id[index] = inst
            self._by_symbol[cfg.symbol] = inst
            for venue, name in inst.venue_symbols.items():
                self._by_venue_symbol[(venue, name.upper())] = inst

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def by_id(self, instrument_id: int) -> Instrument:
        return self._by_id[instrument_id]

    def by_symbol(self, symbol: str) -> Instrument:
        try:
            return self._by_symbol[symbol]
        except KeyError:
            raise KeyError(f"unknown instrument {symbol!r}") from None

    def id_of(self, symbol: str) -> int:
        return self.by_symbol(symbol).id

    def by_venue_symbol(self, venue: Venue, name: str) -> Instrument | None:
        return self._by_venue_symbol.get((venue, name.upper()))

    def venue_symbols(self, venue: Venue) -> dict[str, int]:
        """Venue symbol -> instrument id, for a parser's lookup table."""
        return {i.venue_symbols[venue]: i.id for i in self if venue in i.venue_symbols}
