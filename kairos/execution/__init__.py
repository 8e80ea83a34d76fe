"""Execution adapters: the gate <-> executor contract (base), signed REST venues, filters.

`EXECUTORS` maps a venue name from config (``venues.<name>``) to its live REST adapter, `STREAMS` to
its private order stream (started when the endpoint has a ``private_url``). The paper
executor (kairos/execution/paper.py) implements the same `Executor` contract and is built by the gate.
"""

from __future__ import annotations

from kairos.config import Settings
from kairos.execution.base import ExecReport, Executor, OrderRequest, SymbolFilters, VenueSnapshot
from kairos.execution.rest import RestExecution
from kairos.execution.stream import PrivateStream
from kairos.instruments import InstrumentTable
from kairos.ratelimit import budget_for
from kairos.venues import VENUES, resolve

EXECUTORS: dict[str, type[RestExecution]] = {spec.name: resolve(spec.executor) for spec in VENUES}
STREAMS: dict[str, type[PrivateStream]] = {spec.name: resolve(spec.private) for spec in VENUES if spec.private}

__all__ = ["EXECUTORS", "STREAMS", "ExecReport", "Executor", "OrderRequest", "SymbolFilters", "VenueSnapshot",
           "live_executor", "venue_rules"]


def live_executor(venue: str, settings: Settings, instruments: InstrumentTable) -> RestExecution:
    """The signed REST adapter for ``venues.<venue>``, pointed at its configured endpoint (call start()),
    spending from the engine's shared rate budget for that venue."""
    return EXECUTORS[venue](settings.venues[venue], settings.execution, instruments, budget_for(settings, venue),
                            stream=STREAMS.get(venue))


def venue_rules(venue: str, settings: Settings, instruments: InstrumentTable) -> dict[int, SymbolFilters]:
    """The venue's order rules by instrument id, from its public REST (what paper mode applies, as live
    does); raises ExecutionError when the venue cannot be asked or does not list an instrument."""
    rest = live_executor(venue, settings, instruments)
    try:
        return rest.load_filters()
    finally:
        rest.close()
