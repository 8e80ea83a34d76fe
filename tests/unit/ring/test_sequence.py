"""Sequence arithmetic: slots, contiguous spans, overwrite floors, gating limits."""

from __future__ import annotations

import pytest

from kairos.ring import sequence as S
from kairos.ring.layout import check_capacity


@pytest.mark.parametrize(
    ("lo", "published", "limit", "mask", "expected"),
    [
        (0, -1, 10, 7, -1),  # nothing published: end < lo
        (0, 5, 10, 7, 5),  # all published
        (0, 5, 3, 7, 2),  # limited
        (6, 20, 100, 7, 7),  # stops at the wrap (slot 7 is the last)
        (8, 20, 100, 7, 15),  # next lap
        (13, 13, 1, 7, 13),
    ],
)
def test_readable_end(lo: int, published: int, limit: int, mask: int, expected: int) -> None:
    assert S.readable_end(lo, published, limit, mask) == expected


def test_wrap_limit_is_one_lap_past_the_slowest_cursor() -> None:
    cap = 16
    assert S.wrap_limit(slowest_cursor=-1, capacity=cap) == 15
    assert S.wrap_limit(slowest_cursor=4, capacity=cap) == 20


@pytest.mark.parametrize(
    ("lo", "count", "cap", "expected"), [(0, 4, 8, (0, 4)), (6, 4, 8, (6, 2)), (8, 8, 8, (0, 8)), (15, 1, 8, (7, 1))]
)
def test_split(lo: int, count: int, cap: int, expected: tuple[int, int]) -> None:
    assert S.split(lo, count, cap) == expected


def test_sequence_reads_and_writes_its_slot() -> None:
    buf = bytearray(64)
    view = memoryview(buf).cast("q")
    seq = S.Sequence(view, 16)
    seq.set(-1)
    assert seq.get() == -1 and view[2] == -1 and view[1] == 0
    seq.set(2**62)
    assert int.from_bytes(buf[16:24], "little", signed=True) == 2**62


@pytest.mark.parametrize("bad", [0, 1, 3, 6, 1000, -8])
def test_capacity_must_be_power_of_two(bad: int) -> None:
    with pytest.raises(ValueError, match=str(bad)):
        check_capacity(bad)


def test_capacity_power_of_two_accepted() -> None:
    for good in (2, 4, 1024, 1 << 20):
        check_capacity(good)
