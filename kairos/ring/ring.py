"""A ring: one shared-memory segment, one producer, named consumers (see layout.py for the bytes).

The creator (the supervisor, or a test) fixes dtype, capacity, overflow policy and the consumer
names; every other process attaches and is refused on any mismatch. Producer and consumer slots
record their owner's pid, so a crashed owner's slot is reclaimed by its restart while a live one
is never shared.
"""

from __future__ import annotations

import platform
from typing import Final

import numpy as np

from kairos.errors import RingError, RingNotFound
from kairos.records import fingerprint
from kairos.ring import layout as L
from kairos.ring.poller import GatedPoller, OverwritePoller, Poller
from kairos.ring.segment import MAGIC_OFFSET, Segment, held_by_other, self_identity, unlink
from kairos.ring.sequencer import GatedSequencer, OverwritingSequencer, Sequencer
from kairos.ring.wait import bell_name, open_bell, unlink_bell

TSO_MACHINES: Final = ("x86_64", "AMD64")


def segment_name(prefix: str, name: str) -> str:
    return f"/{prefix}.ring.{name}"


def check_machine() -> None:
    """The ring relies on x86-64 TSO ordering (docs/RING.md); elsewhere it would misread silently."""
    if platform.machine() not in TSO_MACHINES:
        raise RingError(f"rings need x86-64 memory ordering (TSO); this is {platform.machine()}: see docs/RING.md")


class Ring:
    """A mapped ring. Obtain its single producer with `producer()`, consumers with `consumer(name)`."""

    __slots__ = ("_bells", "_hdr", "_owned", "_seg", "dtype", "header", "name", "prefix")

    def __init__(self, seg: Segment, name: str, prefix: str, dtype: np.dtype, header: L.Header) -> None:
        self._seg, self.name, self.prefix, self.dtype, self.header = seg, name, prefix, dtype, header
        self._hdr = memoryview(seg.buf)[: L.data_offset(len(header.consumers))].cast("q")
        self._owned: list[int] = []  # offsets of pid fields we hold
        self._bells: list[object] = []

    @classmethod
    def create(
        cls,
        name: str,
        dtype: np.dtype,
        capacity: int,
        overflow: L.Overflow,
        consumers: tuple[str, ...],
        prefix: str,
    ) -> Ring:
        """Create (or reclaim from a dead creator) and initialise; the segment is live when this returns."""
        check_machine()
        L.check_name("ring", name)
        L.check_capacity(capacity)
        if not 0 < len(consumers) <= L.MAX_CONSUMERS or len(set(consumers)) != len(consumers):
            raise ValueError(f"ring {name}: need 1-{L.MAX_CONSUMERS} distinct consumer names, got {consumers}")
        for consumer in consumers:
            L.check_name("consumer", consumer)
        header = L.Header(fingerprint(dtype), dtype.itemsize, capacity, L.Overflow(overflow), tuple(consumers))
        seg = Segment.create(segment_name(prefix, name), header.size)
        header.write(seg)
        return cls(seg, name, prefix, dtype, header)

    @classmethod
    def attach(cls, name: str, dtype: np.dtype, prefix: str, capacity: int | None = None) -> Ring:
        """Map an existing ring; RingNotFound if absent or not yet live, RingLayoutError on mismatch."""
        check_machine()
        seg = Segment.open(segment_name(prefix, name))
        try:
            if seg.size < 8 or seg.read_i64(MAGIC_OFFSET) == 0:
                raise RingNotFound(f"ring {name}: segment {seg.name} exists but is not initialised yet")
            header = L.Header.read(seg)
            header.check(name, fingerprint(dtype), dtype.itemsize, capacity)
        except BaseException:
            seg.close()
            raise
        return cls(seg, name, prefix, dtype, header)

    @staticmethod
    def unlink(name: str, prefix: str) -> bool:
        """Remove the segment and its consumers' doorbells. Returns False if it did not exist."""
        try:
            seg = Segment.open(segment_name(prefix, name))
        except RingNotFound:
            return False
        try:
            consumers = L.Header.read(seg).consumers
        except RingError:
            consumers = ()  # not live or not a ring: just remove the name
        finally:
            seg.close()
        for consumer in consumers:
            unlink_bell(bell_name(prefix, consumer))
        return unlink(segment_name(prefix, name))

    @property
    def capacity(self) -> int:
        return self.header.capacity

    @property
    def overflow(self) -> L.Overflow:
        return self.header.overflow

    @property
    def published(self) -> int:
        return self._hdr[L.PUBLISHED_OFFSET >> 3]

    def cursors(self) -> dict[str, int]:
        """Every consumer's stored cursor, read without attaching as it (for lag monitoring)."""
        hdr = self._hdr
        return {
            name: hdr[(L.consumer_offset(slot) + L.CURSOR_FIELD) >> 3]
            for slot, name in enumerate(self.header.consumers)
        }

    def lag(self) -> dict[str, tuple[int, int]]:
        """Every consumer's (depth, overruns): records published it has not read, records it lost."""
        hdr, published = self._hdr, self.published
        return {
            name: (max(published - cursor, 0), hdr[(L.consumer_offset(slot) + L.OVERRUNS_FIELD) >> 3])
            for slot, (name, cursor) in enumerate(self.cursors().items())
        }

    def producer(self, timeout_s: float = 1.0) -> Sequencer:
        """The ring's single producer; ``timeout_s`` bounds the wait on a full block ring."""
        self._take(L.PRODUCER_PID_OFFSET, "producer")
        consumers = []
        for slot, consumer in enumerate(self.header.consumers):
            base = L.consumer_offset(slot)
            consumers.append((consumer, (base + L.CURSOR_FIELD) >> 3, (base + L.SLEEPING_FIELD) >> 3))
        bells = [open_bell(bell_name(self.prefix, c)) for c in self.header.consumers]
        self._bells.extend(bells)
        layout = (self.dtype, self.capacity, L.data_offset(len(consumers)), L.PUBLISHED_OFFSET >> 3)
        args = (self.name, self._seg.buf, self._hdr, layout, consumers, [b.release for b in bells])
        if self.overflow is L.Overflow.BLOCK:
            return GatedSequencer(*args, timeout_s=timeout_s)
        return OverwritingSequencer(*args, claimed_index=L.CLAIMED_OFFSET >> 3)

    def consumer(self, name: str) -> Poller:
        """Attach as the named consumer; resumes at its stored cursor."""
        if name not in self.header.consumers:
            raise RingError(f"ring {self.name}: unknown consumer {name!r}; declared: {self.header.consumers}")
        slot = self.header.consumers.index(name)
        self._take(L.consumer_offset(slot) + L.PID_FIELD, f"consumer {name!r}")
        kind = GatedPoller if self.overflow is L.Overflow.BLOCK else OverwritePoller
        return kind(self.name, name, bell_name(self.prefix, name), self._seg.buf, self._hdr, slot, self.dtype)

    def _take(self, pid_offset: int, what: str) -> None:
        """Record this process as the slot's owner unless another live process holds it."""
        hdr, index = self._hdr, pid_offset >> 3
        with self._seg.lock():
            pid, start = hdr[index], hdr[index + 1]
            if held_by_other(pid, start):
                raise RingError(f"ring {self.name}: {what} is held by live pid {pid}")
            hdr[index], hdr[index + 1] = self_identity()
        self._owned.append(index)

    def close(self) -> None:
        """Give up owned slots and unmap (views handed out keep the mapping alive until freed)."""
        for index in self._owned:
            self._hdr[index] = 0
        self._owned.clear()
        for bell in self._bells:
            bell.close()  # type: ignore[attr-defined]
        self._bells.clear()
        self._hdr.release()
        self._seg.close()
