"""Named consumers: a cursor in the segment (a gating sequence), batch polls, one store per batch.

The cursor is the last sequence this consumer has fully handled. It is stored after the handler
returns, so a consumer killed at any point resumes at the first record it had not finished:
nothing lost, nothing finished handed again (a batch interrupted inside the handler is handed
again, whole).

- `GatedPoller` (block rings) hands the handler a zero-copy view into the ring: the producer
  cannot overwrite it until the cursor moves. Copy what you keep beyond the call.
- `OverwritePoller` (overwrite rings) copies into a private buffer, then re-reads ``claimed``
  (seqlock): records the producer may have touched meanwhile are dropped and counted as
  overruns, never handed on torn. A consumer a lap behind resyncs to the oldest valid record.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable
from typing import Final

import numpy as np

from kairos.ring import layout as L

VIEWS: Final = 64
"""Scratch views made once for batches up to this size (no view object made per poll)."""
Handler = Callable[[np.ndarray], object]
"""Called with one contiguous batch (a view valid only during the call). During the call the
consumer's ``cursor + 1`` is the sequence of ``view[0]``."""


class Poller:
    """Shared machinery; use `poll(handler, limit)` or `read(limit)`."""

    __slots__ = (
        "_cap", "_cursor", "_cursor_i", "_dtype", "_hdr", "_mask", "_published_i", "_records",
        "_sleeping_i", "bell", "name", "ring",
    )  # fmt: skip

    def __init__(
        self, ring: str, name: str, bell: str, buf: mmap.mmap, hdr: memoryview, slot: int, dtype: np.dtype
    ) -> None:
        """``hdr`` is the segment's header lines cast to i64; the caller has checked the layout."""
        self.ring, self.name, self.bell = ring, name, bell
        self._hdr = hdr
        self._cap = hdr[L.CAPACITY_OFFSET >> 3]
        self._mask = self._cap - 1
        self._published_i = L.PUBLISHED_OFFSET >> 3
        base = L.consumer_offset(slot)
        self._cursor_i = (base + L.CURSOR_FIELD) >> 3
        self._sleeping_i = (base + L.SLEEPING_FIELD) >> 3
        self._cursor = hdr[self._cursor_i]
        self._dtype = dtype
        self._records = np.frombuffer(buf, dtype, self._cap, L.data_offset(hdr[L.CONSUMER_COUNT_OFFSET >> 3]))

    @property
    def cursor(self) -> int:
        """Last sequence handled (-1 before the first)."""
        return self._cursor

    @property
    def lag(self) -> int:
        """Published records not yet handled (can exceed capacity on a lapped overwrite ring)."""
        return self._hdr[self._published_i] - self._cursor

    def pending(self) -> bool:
        return self._hdr[self._published_i] > self._cursor

    def flag(self) -> tuple[memoryview, int]:
        """Where this consumer raises its ``sleeping`` flag (for BlockingWait)."""
        return self._hdr, self._sleeping_i

    def poll(self, handler: Handler, limit: int) -> int:
        """Hand up to ``limit`` new records to ``handler`` (one call); returns how many."""
        raise NotImplementedError

    def read(self, limit: int) -> np.ndarray:
        """A copy of up to ``limit`` records (fewer at the ring's wrap point; empty if none)."""
        out: list[bytearray] = []
        if self.poll(lambda view: out.append(bytearray(view)), limit):  # copy before the cursor moves
            return np.frombuffer(out[0], self._dtype)
        return np.empty(0, self._dtype)


class GatedPoller(Poller):
    """Consumer of a block ring: zero-copy views; the producer waits for it."""

    __slots__ = ()

    def poll(self, handler: Handler, limit: int) -> int:
        lo = self._cursor + 1
        hi = self._hdr[self._published_i]
        if hi < lo:
            return 0
        if hi >= lo + limit:
            hi = lo + limit - 1
        if hi > lo | self._mask:
            hi = lo | self._mask  # stop at the wrap: the next poll continues from slot 0
        slot = lo & self._mask
        handler(self._records[slot : slot + hi - lo + 1])
        self._hdr[self._cursor_i] = self._cursor = hi
        return hi - lo + 1

    @property
    def overruns(self) -> int:
        """Always 0: a block ring never laps a consumer."""
        return 0


class OverwritePoller(Poller):
    """Consumer of an overwrite ring: copy, re-check ``claimed``, drop and count what was lapped."""

    __slots__ = ("_claimed_i", "_overruns", "_overruns_i", "_ring_bytes", "_scratch", "_scratch_bytes", "_size",
                 "_views")

    def __init__(
        self, ring: str, name: str, bell: str, buf: mmap.mmap, hdr: memoryview, slot: int, dtype: np.dtype
    ) -> None:
        super().__init__(ring, name, bell, buf, hdr, slot, dtype)
        self._claimed_i = L.CLAIMED_OFFSET >> 3
        self._overruns_i = (L.consumer_offset(slot) + L.OVERRUNS_FIELD) >> 3
        self._overruns = hdr[self._overruns_i]
        self._size = dtype.itemsize
        self._ring_bytes = self._records.view(np.uint8).data.cast("B")
        self._scratch = np.empty(0, dtype)
        self._scratch_bytes = self._scratch.view(np.uint8).data
        self._grow(min(self._cap, 256))

    @property
    def overruns(self) -> int:
        """Records this consumer name has lost to the producer lapping it (kept across restarts)."""
        return self._overruns

    def poll(self, handler: Handler, limit: int) -> int:
        hdr, cap = self._hdr, self._cap
        lo = self._cursor + 1
        hi = hdr[self._published_i]
        if hi < lo:
            return 0
        gone = hdr[self._claimed_i] - cap  # sequences <= gone are (being) overwritten
        if lo <= gone:
            lo = self._skip(gone)  # lapped before the copy: resync to the oldest valid record
        n = self._copy(lo, hi, limit)
        torn = hdr[self._claimed_i] - cap - lo + 1  # seqlock re-check: overwritten while copying
        if torn > 0:
            return self._salvage(handler, lo, torn, n)
        if n:
            handler(self._views[n] if n <= VIEWS else self._scratch[:n])
            hdr[self._cursor_i] = self._cursor = lo + n - 1
        return n

    def _copy(self, lo: int, hi: int, limit: int) -> int:
        """Copy lo..min(hi, limit, wrap) into scratch with one slice copy; returns the count."""
        mask = self._mask
        if hi >= lo + limit:  # readable_end, inlined
            hi = lo + limit - 1
        if hi > lo | mask:
            hi = lo | mask
        n = hi - lo + 1
        if n <= 0:
            return 0
        if n > len(self._scratch):
            self._grow(n)
        size, start = self._size, (lo & mask) * self._size
        self._scratch_bytes[: n * size] = self._ring_bytes[start : start + n * size]
        return n

    def _salvage(self, handler: Handler, lo: int, torn: int, n: int) -> int:
        """Drop the first ``torn`` copied records (count them lost), hand on the rest."""
        self._skip(lo + torn - 1)
        if torn >= n:
            return 0
        handler(self._scratch[torn:n])
        self._hdr[self._cursor_i] = self._cursor = lo + n - 1
        return n - torn

    def _skip(self, upto: int) -> int:
        """Count sequences up to ``upto`` as lost and move past them; returns the next sequence."""
        missed = upto - self._cursor
        if missed > 0:
            self._overruns += missed
            self._hdr[self._overruns_i] = self._overruns
            self._hdr[self._cursor_i] = self._cursor = upto
        return self._cursor + 1

    def _grow(self, n: int) -> None:
        self._scratch = np.empty(min(max(n, 2 * len(self._scratch)), self._cap), self._dtype)
        self._scratch_bytes = self._scratch.view(np.uint8).data
        self._views = [self._scratch[:k] for k in range(min(len(self._scratch), VIEWS) + 1)]
