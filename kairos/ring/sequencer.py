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
import time
from collections.abc import Callable, Sequence

import numpy as np

from kairos.errors import RingFull
from kairos.ring.sequence import split, wrap_limit
from kairos.ring.wait import fence


class Sequencer:
    """Shared machinery of both policies; use `publish(batch)`."""

    __slots__ = (
        "_buf", "_capacity", "_cursors", "_data", "_dtype", "_hdr", "_names", "_next",
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
        return min(hdr[i] for i in self._cursors) + self._capacity - self.published

    def _write(self, lo: int, n: int, batch: np.ndarray) -> None:
        """Copy ``n`` records for sequences lo.. into their slots (two memcpys across the wrap)."""
        size, base, buf = self._size, self._data, self._buf
        slot, first = split(lo, n, self._capacity)
        try:
            if first == n:
                buf[base + slot * size : base + (slot + n) * size] = batch
            else:
                buf[base + slot * size : base + (slot + first) * size] = batch[:first]
                buf[base : base + (n - first) * size] = batch[first:]
        except ValueError:  # a strided batch has no flat buffer: copy it once (slow path)
            self._write(lo, n, np.ascontiguousarray(batch))

    def _commit(self, hi: int) -> int:
        """Publish ``hi`` (data stores precede it: TSO), then wake sleepers (fence: store->load)."""
        hdr = self._hdr
        hdr[self._published_i] = hi
        self._next = hi + 1
        fence()
        self._wake_sleepers()
        return hi

    def _wake_sleepers(self) -> None:
        hdr = self._hdr
        for index, post in self._sleepers:
            if hdr[index]:
                post()

    def _checked(self, batch: np.ndarray) -> np.ndarray:
        """Slow path: the batch must be of the ring's dtype; made C-contiguous if it is not."""
        if batch.dtype != self._dtype:
            raise TypeError(f"ring {self.name}: batch dtype {batch.dtype} is not the ring dtype {self._dtype}")
        return np.ascontiguousarray(batch).view(self._dtype)

    def _chunks(self, batch: np.ndarray) -> int:
        """Publish in pieces of at most one lap; returns the last sequence."""
        batch, hi = self._checked(batch), self.published
        for start in range(0, len(batch), self._capacity):
            hi = self.publish(batch[start : start + self._capacity])
        return hi


class GatedSequencer(Sequencer):
    """Block policy: never overwrite a record some consumer has not read."""

    __slots__ = ("_limit", "_timeout_s")

    def __init__(self, *args: object, timeout_s: float = 1.0) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self._timeout_s = timeout_s
        self._limit = -1

    def publish(self, batch: np.ndarray) -> int:
        """Copy ``batch`` in and publish it; returns the last sequence. May raise RingFull."""
        n = len(batch)
        lo = self._next
        hi = lo + n - 1
        if hi > self._limit or batch.dtype is not self._dtype or not n:
            return self._slow(batch, hi)
        self._write(lo, n, batch)
        return self._commit(hi)

    def _slow(self, batch: np.ndarray, hi: int) -> int:
        if not len(batch):
            return self.published
        if len(batch) > self._capacity or batch.dtype is not self._dtype:
            return self._chunks(batch)
        self._await(hi)
        self._write(self._next, len(batch), batch)
        return self._commit(hi)

    def _await(self, hi: int) -> None:
        """Wait until ``hi`` fits (yield, then 50-500 us sleeps), bounded by the timeout."""
        hdr, cursors, cap = self._hdr, self._cursors, self._capacity
        deadline = time.monotonic() + self._timeout_s
        attempt = 0
        while True:
            attempt += 1
            self._limit = wrap_limit(min(hdr[i] for i in cursors), cap)
            if hi <= self._limit:
                return
            self._wake_sleepers()
            if time.monotonic() > deadline:
                raise RingFull(self._full_message(hi))
            if attempt < 50:
                os.sched_yield()
            else:
                time.sleep(min(0.0005, 0.00001 * attempt))

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
        """Claim, copy ``batch`` in, publish; returns the last sequence. Never waits."""
        n = len(batch)
        lo = self._next
        hi = lo + n - 1
        if n > self._capacity or batch.dtype is not self._dtype or not n:
            return self._chunks(batch) if n else self.published
        self._hdr[self._claimed_i] = hi if hi > self._restart_claimed else self._restart_claimed
        self._write(lo, n, batch)
        return self._commit(hi)
