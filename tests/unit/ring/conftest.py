"""Ring fixtures: every ring made here is closed and unlinked, even when the test fails."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from kairos.ring import Ring


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
