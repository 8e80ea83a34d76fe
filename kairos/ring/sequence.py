"""Sequences: 64-bit counters that only grow, living in shared memory (Disruptor ``Sequence``).

A sequence names a record forever; its slot is ``seq & mask``. Readers and writers of one
sequence are in different processes, so a value is one aligned 8-byte load or store through a
``memoryview.cast('q')`` (atomic on x86-64; see docs/RING.md for the ordering assumptions).

The pure functions below are the ring's arithmetic. The single-record hot paths (``publish``,
``GatedPoller.poll``, ``OverwritePoller._copy``) inline the same expressions, because a Python
call costs more than the arithmetic; unit tests pin the rules here, the ring and stress tests pin
the inlined copies.
One more rule lives inline in OverwritePoller: after the producer claims ``claimed``, every
sequence <= claimed - capacity may be torn.
"""

from __future__ import annotations


class Sequence:
    """One i64 in a shared line. Slow-path accessor; hot paths bind ``view`` and ``index`` to locals."""

    __slots__ = ("index", "view")

    def __init__(self, view: memoryview, offset: int) -> None:
        self.view = view
        self.index = offset >> 3

    def get(self) -> int:
        return self.view[self.index]

    def set(self, value: int) -> None:
        self.view[self.index] = value


def readable_end(lo: int, published: int, limit: int, mask: int) -> int:
    """Last sequence a consumer at ``lo`` may take in one contiguous slice (< lo when none)."""
    return min(published, lo + limit - 1, lo | mask)


def wrap_limit(slowest_cursor: int, capacity: int) -> int:
    """Highest sequence a gated producer may write without lapping the slowest consumer."""
    return slowest_cursor + capacity


def split(lo: int, count: int, capacity: int) -> tuple[int, int]:
    """(slot of ``lo``, records before the end of the array) for a write of ``count`` from ``lo``."""
    slot = lo & (capacity - 1)
    return slot, min(count, capacity - slot)
