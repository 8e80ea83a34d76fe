"""Where the recorded venue data lives, for the tests under tests/replay/ only.

The exchange samples (venue documents and live captures) are not ours to redistribute, so they are
never committed: they sit beside the checkout in ``../shared/exchange-samples``, or wherever
``KAIROS_SAMPLES`` points. Without them every module that calls ``require_samples()`` skips, and
``pytest -ra`` reports them all on one line, with one reason.
Unit tests use our own hand-written fixtures instead (tests/fixtures/).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Final

import pytest

REPO: Final = Path(__file__).resolve().parent.parent
SAMPLES: Final = Path(os.environ.get("KAIROS_SAMPLES") or REPO.parent / "shared" / "exchange-samples")
CAPTURE: Final = SAMPLES / "capture"
MISSING: Final = ("exchange samples not found: put ../shared/exchange-samples beside the checkout "
                  "or set KAIROS_SAMPLES")



def require_samples() -> None:
    """Skip the calling test module at collection when the samples are absent (raised here, so one location)."""
    if not SAMPLES.is_dir():
        pytest.skip(MISSING, allow_module_level=True)


def sample_bytes(name: str) -> bytes:
    """A sample file's bytes as stored (captures are the wire text; doc samples may be pretty-printed)."""
    return (SAMPLES / name).read_bytes()


def sample(name: str) -> Any:
    """A sample file parsed as JSON."""
    return json.loads(sample_bytes(name))
