"""Execution adapters: the gate <-> executor contract (base), signed REST venues, filters.

`EXECUTORS` maps a venue name from config (``venues.<name>``) to its live REST adapter. The paper
executor (kairos/execution/paper.py) implements the same `Executor` contract and is built by the gate.
"""

from __future__ import annotations

from kairos.config import Settings
from kairos.execution.base import ExecReport, Executor, OrderRequest, SymbolFilters, VenueSnapshot
from kairos.execution.binance import BinanceExecution
from kairos.execution.okx import OkxExecution
from kairos.execution.rest import RestExecution
from kairos.instruments import InstrumentTable

EXECUTORS: dict[str, type[RestExecution]] = {"binance": BinanceExecution, "okx": OkxExecution}

__all__ = ["EXECUTORS", "ExecReport", "Executor", "OrderRequest", "SymbolFilters", "VenueSnapshot", "live_executor"]


def live_executor(venue: str, settings: Settings, instruments: InstrumentTable) -> RestExecution:
    """The signed REST adapter for ``venues.<venue>``, pointed at its configured endpoint (call start())."""
    return EXECUTORS[venue](settings.venues[venue], settings.execution, instruments)
