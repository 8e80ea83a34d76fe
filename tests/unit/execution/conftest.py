"""Fixture files from /work/shared/exchange-samples (verbatim venue documents and captures)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

SAMPLES = Path(os.environ.get("KAIROS_SAMPLES", "/work/shared/exchange-samples"))


def sample(name: str) -> Any:
    path = SAMPLES / name
    if not path.exists():
        pytest.fail(f"exchange sample {path} is missing (set KAIROS_SAMPLES)")
    return json.loads(path.read_text())


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
