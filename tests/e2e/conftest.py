"""Engines for gRPC tests: the real `procs.supervisor --watch` (no gate), or the real arbiter with a
minimal gate child (tests/process/childproc.py) that answers every intent over the real rings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.process.support import Supervised, child


@pytest.fixture
def engines(shm_prefix: str, tmp_path: Path) -> Iterator[list[Supervised]]:
    started: list[Supervised] = []
    try:
        yield started
    finally:
        for sup in started:
            sup.cleanup()


@pytest.fixture
def watch_engine(engines: list[Supervised], shm_prefix: str, tmp_path: Path) -> Callable[..., Supervised]:
    """``python -m procs.supervisor --watch`` with env overrides (e.g. rings__manual_capacity=2)."""

    def start(**env: object) -> Supervised:
        sup = Supervised.real(shm_prefix, tmp_path / f"watch{len(engines)}.log", "--watch", **env)
        engines.append(sup)
        return sup.connect()

    return start


@pytest.fixture
def gate_engine(engines: list[Supervised], shm_prefix: str, tmp_path: Path) -> Supervised:
    log = tmp_path / "gate.log"
    table = [child("gate", "gate", log, phase=0, halts=True)]
    sup = Supervised.harness(shm_prefix, tmp_path / "engine.log", table)
    sup.gate_log = log  # type: ignore[attr-defined]
    engines.append(sup)
    return sup.connect()
