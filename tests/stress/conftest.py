"""Stress fixtures: spawned children are always reaped, segments always unlinked and checked gone."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterator
from pathlib import Path

import pytest

from kairos.ring import Ring
from kairos.ring.segment import SHM_DIR, unlink


class Lab:
    """Children, rings and raw segments of one test; `close` kills, joins and unlinks all."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.ctx = mp.get_context("spawn")
        self.procs: list[mp.process.BaseProcess] = []
        self.rings: list[Ring] = []
        self.segments: list[str] = []

    def ring(self, *args: object, **kwargs: object) -> Ring:
        ring = Ring.create(*args, prefix=self.prefix, **kwargs)  # type: ignore[misc]
        self.rings.append(ring)
        return ring

    def start(self, target: object, *args: object) -> mp.process.BaseProcess:
        proc = self.ctx.Process(target=target, args=args, daemon=True)
        proc.start()
        self.procs.append(proc)
        return proc

    def leftovers(self) -> list[Path]:
        return [p for p in SHM_DIR.iterdir() if p.name.startswith((self.prefix, f"sem.{self.prefix}"))]

    def close(self) -> None:
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
            proc.join(10)
        for ring in self.rings:
            ring.close()
            Ring.unlink(ring.name, self.prefix)
        for name in self.segments:
            unlink(name)


@pytest.fixture
def lab(shm_prefix: str) -> Iterator[Lab]:
    """A Lab whose cleanup must leave nothing in /dev/shm (checked before the generic sweep)."""
    lab = Lab(shm_prefix)
    try:
        yield lab
    finally:
        lab.close()
    assert lab.leftovers() == [], "segments or doorbells left in /dev/shm"
