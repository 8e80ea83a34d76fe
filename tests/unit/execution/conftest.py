"""Executors built from the default config, for their pure request builders, parsers and classifiers."""

from __future__ import annotations

import pytest


@pytest.fixture
def dialects():
    """Unstarted Binance and OKX executors (their pure parsers and classifiers; no I/O happens)."""
    from kairos import config
    from kairos.execution import EXECUTORS
    from kairos.instruments import InstrumentTable

    settings = config.load(env={})
    table = InstrumentTable(settings.instruments)
    built = {name: cls(settings.venues[name], settings.execution, table) for name, cls in EXECUTORS.items()}
    yield built
    for executor in built.values():
        executor.close()
