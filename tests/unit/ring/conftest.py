"""Ring fixtures: every ring made here is closed and unlinked, even when the test fails."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from kairos.ring import Ring
from kairos.ring.segment import SHM_DIR


@pytest.fixture(autouse=True)
def nothing_left_behind(shm_prefix: str) -> Iterator[None]:
    """Every test must clean up its own segments and doorbells (checked before the generic sweep)."""
    yield
    left = [p.name for p in SHM_DIR.iterdir() if p.name.startswith((shm_prefix, f"sem.{shm_prefix}"))]
    assert left == [], f"left in /dev/shm: {left}"


@pytest.fixture
def make_ring(shm_prefix: str) -> Iterator[Callable[..., Ring]]:
    made: list[Ring] = []

    def make(name: str = "r", *args: object, **kwargs: object) -> Ring:
        ring = Ring.create(name, *args, prefix=shm_prefix, **kwargs)  # type: ignore[misc]
        made.append(ring)
        return ring

    yield make
    for ring in made:
        ring.close()
        Ring.unlink(ring.name, shm_prefix)
