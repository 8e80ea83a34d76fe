"""A `supervised` factory fixture: every supervisor it starts is killed, with its children, afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.process.support import Supervised


@pytest.fixture
def supervised(shm_prefix: str, tmp_path: Path) -> Iterator[Callable[..., Supervised]]:
    started: list[Supervised] = []

    def start(children: list[dict], watch: bool = False, **env: object) -> Supervised:
        sup = Supervised.harness(shm_prefix, tmp_path / f"supervisor{len(started)}.log", children, watch, **env)
        started.append(sup)
        return sup.connect()

    try:
        yield start
    finally:
        for sup in started:
            sup.cleanup()
