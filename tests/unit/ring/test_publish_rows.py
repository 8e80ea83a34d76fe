"""Sequencer.publish_rows: tuples packed straight into the slots, the same records and rules as publish."""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np
import pytest

from kairos.errors import RingFull
from kairos.records import MARKET_DATA
from kairos.ring import Overflow, Ring

MakeRing = Callable[..., Ring]
MD_ROW = struct.Struct("<qqQddddIHBB")  # MARKET_DATA's layout, checked below


def rows(first: int, n: int) -> list[tuple]:
    return [(0, 0, seq, seq * 0.5, 0.0, 0.0, 0.0, 0, 0, 0, 0) for seq in range(first, first + n)]


def test_the_row_struct_is_the_dtype() -> None:
    expected = np.zeros(1, MARKET_DATA)
    expected[:] = rows(7, 1)
    assert MD_ROW.pack(*rows(7, 1)[0]) == expected.tobytes()


@pytest.mark.parametrize("overflow", [Overflow.BLOCK, Overflow.OVERWRITE])
def test_rows_arrive_in_order_across_wraps(make_ring: MakeRing, overflow: Overflow) -> None:
    ring = make_ring("r", MARKET_DATA, capacity=8, overflow=overflow, consumers=("c",))
    prod, cons = ring.producer(timeout_s=0.05), ring.consumer("c")
    sent = 0
    for n in (1, 3, 5, 8, 2, 7, 0):  # wraps, a whole lap, and nothing
        assert prod.publish_rows(rows(sent, n), MD_ROW) == sent + n - 1
        got = cons.read(8)
        if len(got) < n:  # a batch across the wrap is read in two pieces
            got = np.concatenate([got, cons.read(8)])
        assert got["venue_seq"].tolist() == list(range(sent, sent + n))
        assert got["price"].tolist() == [seq * 0.5 for seq in range(sent, sent + n)]
        sent += n


def test_a_struct_of_another_size_is_refused(make_ring: MakeRing) -> None:
    ring = make_ring("r", MARKET_DATA, capacity=8, overflow=Overflow.BLOCK, consumers=("c",))
    with pytest.raises(TypeError, match="rows of 8 bytes, records of 64"):
        ring.producer().publish_rows([(1,)], struct.Struct("<q"))
    assert ring.published == -1


def test_a_full_block_ring_raises_and_publishes_nothing(make_ring: MakeRing) -> None:
    ring = make_ring("r", MARKET_DATA, capacity=4, overflow=Overflow.BLOCK, consumers=("c",))
    prod, cons = ring.producer(timeout_s=0.02), ring.consumer("c")
    prod.publish_rows(rows(0, 4), MD_ROW)
    with pytest.raises(RingFull, match="consumer 'c' is at sequence -1"):
        prod.publish_rows(rows(4, 1), MD_ROW)
    assert ring.published == 3
    cons.read(2)
    assert prod.publish_rows(rows(4, 2), MD_ROW) == 5
