"""The ring's single producer: claim slots, copy a batch in as raw bytes, publish once per batch.

Two overflow policies, two classes (no policy ``if`` on the hot path):

- `GatedSequencer` (block): never laps the slowest consumer. When the ring is full it waits,
  bounded by ``timeout_s``, then raises RingFull naming the consumer holding it back.
- `OverwritingSequencer` (overwrite): never waits. It stores ``claimed`` before copying and
  ``published`` after (a seqlock), so a lapped consumer can tell a torn copy from a good one.

Records go in through the mmap's buffer protocol (one memcpy per contiguous run), never field by
field. After the publish store a full fence, then the doorbell of every sleeping consumer.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from collections.abc import Callable, Sequence
from typing import Final

import numpy as np

from kairos.errors import RingFull
from kairos.ring.sequence import split, wrap_limit
from kairos.ring.wait import fence_lock

YIELDS: Final = 1000
SLEEP_S: Final = 0.0005
_fence_acquire, _fence_release = fence_lock.acquire, fence_lock.release


class Sequencer:
    """Shared machinery of both policies; use `publish(batch)`.

    ``publish`` is the hot path: a batch that fits before the wrap point goes in with one memcpy
    and one publish store. Everything else (wrap, a full block ring, a batch over one lap, a
    strided or foreign-dtype batch) takes `_slow`, which does the same steps in pieces.
    """

    __slots__ = (
        "_buf", "_capacity", "_cursors", "_data", "_dtype", "_hdr", "_mask", "_names", "_next",
        "_published_i", "_size", "_sleepers", "name",
    )  # fmt: skip

    def __init__(
        self,
        name: str,
        buf: mmap.mmap,
        hdr: memoryview,
        layout: tuple[np.dtype, int, int, int],
        consumers: Sequence[tuple[str, int, int]],
        posts: Sequence[Callable[[], None]],
    ) -> None:
        """``layout`` = (dtype, capacity, data offset, published index); ``consumers`` =
        (name, cursor index, sleeping index) per slot; ``posts`` = their doorbells' release."""
        self.name = name
        self._buf, self._hdr = buf, hdr
        self._dtype, self._capacity, self._data, self._published_i = layout
        self._mask = self._capacity - 1
        self._size = self._dtype.itemsize
        self._names = tuple(c[0] for c in consumers)
        self._cursors = tuple(c[1] for c in consumers)
        self._sleepers = tuple((c[2], post) for c, post in zip(consumers, posts, strict=True))
        self._next = hdr[self._published_i] + 1

    @property
    def published(self) -> int:
        """Last published sequence (-1 before the first)."""
        return self._next - 1

    def remaining_capacity(self) -> int:
        """Records that fit before the slowest consumer would be lapped."""
        hdr = self._hdr
        return wrap_limit(min(hdr[i] for i in self._cursors), self._capacity) - self.published

    def publish_rows(self, rows: Sequence[tuple], row: struct.Struct) -> int:
        """`publish` for records still as tuples in field order, packed by ``row`` (the dtype's layout)."""
        self._check_row(row)
        return self.publish(np.array(rows, self._dtype))

    def _check_row(self, row: struct.Struct) -> None:
        if row.size != self._size:
            raise TypeError(f"ring {self.name}: rows of {row.size} bytes, records of {self._size}")

    def _reserve(self, hi: int) -> None:
        """Make sequences up to ``hi`` writable (policy: wait for consumers, or claim)."""
        raise NotImplementedError

    def _commit(self, hi: int) -> int:
        """Publish ``hi`` (the data stores precede it: TSO), fence (store->load), wake sleepers."""
        hdr = self._hdr
        hdr[self._published_i] = hi
        self._next = hi + 1
        _fence_acquire()
        _fence_release()
        for index, post in self._sleepers:
            if hdr[index]:
                post()
        return hi

    def _slow(self, batch: np.ndarray) -> int:
        """Publish any batch of the ring dtype: in pieces of at most one lap, across the wrap."""
        if batch.dtype != self._dtype:
            raise TypeError(f"ring {self.name}: batch dtype {batch.dtype} is not the ring dtype {self._dtype}")
        batch = np.ascontiguousarray(batch).view(self._dtype)
        hi = self.published
        for start in range(0, len(batch), self._capacity):
            chunk = batch[start : start + self._capacity]
            lo, hi = self._next, self._next + len(chunk) - 1
            self._reserve(hi)
            slot, first = split(lo, len(chunk), self._capacity)
            at = self._data + slot * self._size
            self._buf[at : at + first * self._size] = chunk[:first]
            self._buf[self._data : self._data + (len(chunk) - first) * self._size] = chunk[first:]
            self._commit(hi)
        return hi


class GatedSequencer(Sequencer):
    """Block policy: never overwrite a record some consumer has not read."""

    __slots__ = ("_limit", "_timeout_s")

    def __init__(self, *args: object, timeout_s: float = 1.0) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self._timeout_s = timeout_s
        self._limit = -1  # cached wrap_limit: refreshed only when a batch would pass it

    def publish(self, batch: np.ndarray) -> int:
        """Copy ``batch`` in and publish it; returns its last sequence. May raise RingFull."""
        n = len(batch)
        lo = self._next
        slot = lo & self._mask
        if lo + n - 1 > self._limit or slot + n > self._capacity or batch.dtype is not self._dtype or not n:
            return self._slow(batch)
        at = self._data + slot * self._size
        try:
            self._buf[at : at + n * self._size] = batch
        except ValueError:  # strided: no flat buffer
            return self._slow(batch)
        return self._commit(lo + n - 1)

    def publish_rows(self, rows: Sequence[tuple], row: struct.Struct) -> int:
        """`publish` for records still as tuples in field order: each is packed by ``row`` (the dtype's
        layout) straight into its slot, with no staging array and no second copy. May raise RingFull."""
        self._check_row(row)
        n = len(rows)
        lo = self._next
        slot = lo & self._mask
        if lo + n - 1 > self._limit or slot + n > self._capacity or not n:
            return self._slow(np.array(rows, self._dtype))
        at, size, pack, buf = self._data + slot * self._size, self._size, row.pack_into, self._buf
        for values in rows:
            pack(buf, at, *values)
            at += size
        return self._commit(lo + n - 1)

    def _reserve(self, hi: int) -> None:
        """Wait until ``hi`` fits, bounded by the timeout: ~1 ms of sched_yield (a draining consumer
        frees space within microseconds), then 0.5 ms sleeps (a stalled one)."""
        hdr, cursors, cap = self._hdr, self._cursors, self._capacity
        deadline = time.monotonic() + self._timeout_s
        attempt = 0
        while True:
            self._limit = wrap_limit(min(hdr[i] for i in cursors), cap)
            if hi <= self._limit:
                return
            for index, post in self._sleepers:  # a consumer asleep on a full ring: wake it
                if hdr[index]:
                    post()
            if time.monotonic() > deadline:
                raise RingFull(self._full_message(hi))
            attempt += 1
            if attempt < YIELDS:
                os.sched_yield()
            else:
                time.sleep(SLEEP_S)

    def _full_message(self, hi: int) -> str:
        hdr = self._hdr
        cursor, name = min(zip((hdr[i] for i in self._cursors), self._names, strict=True))
        return (
            f"ring {self.name} full: consumer {name!r} is at sequence {cursor}, a whole lap "
            f"({self._capacity}) behind the producer at {self.published}; waited {self._timeout_s}s "
            f"to publish up to {hi}"
        )


class OverwritingSequencer(Sequencer):
    """Overwrite policy: never wait; lapped consumers detect it through ``claimed``."""

    __slots__ = ("_claimed_i", "_restart_claimed")

    def __init__(self, *args: object, claimed_index: int) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self._claimed_i = claimed_index
        # A producer that died mid-copy left claimed > published: never let claimed go back.
        self._restart_claimed = self._hdr[claimed_index]

    def publish(self, batch: np.ndarray) -> int:
        """Claim, copy ``batch`` in, publish; returns its last sequence. Never waits."""
        n = len(batch)
        lo = self._next
        slot = lo & self._mask
        if slot + n > self._capacity or batch.dtype is not self._dtype or not n:
            return self._slow(batch)
        self._reserve(lo + n - 1)
        at = self._data + slot * self._size
        try:
            self._buf[at : at + n * self._size] = batch
        except ValueError:  # strided: no flat buffer (the claim above stays valid)
            return self._slow(batch)
        return self._commit(lo + n - 1)

    def _reserve(self, hi: int) -> None:
        """Claim up to ``hi`` before writing: consumers copying those slots now drop them."""
        self._hdr[self._claimed_i] = hi if hi > self._restart_claimed else self._restart_claimed
