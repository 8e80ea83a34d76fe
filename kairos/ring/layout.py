"""Byte layout of a ring segment, written once at create and checked at every attach.

Each line is LINE_LENGTH = 128 bytes (two cache lines, so the adjacent-line prefetcher does not
couple a writer to its neighbour). All fields are little-endian i64 read through one
``memoryview.cast('q')``; aligned 8-byte stores are atomic on x86-64::

    line 0  HEADER (written by the creator; MAGIC last)
      0 magic | 8 version | 16 creator pid | 24 creator start | 32 fingerprint | 40 record size
     48 capacity | 56 overflow (0 block, 1 overwrite) | 64 consumer count
    line 1  PRODUCER (written by the producer only)
    128 published seq | 136 claimed seq | 144 producer pid | 152 producer start
    line 2+i  CONSUMER i (written by consumer i only, except pid fields under the admin lock)
      +0 cursor | +8 sleeping | +16 overruns | +24 pid | +32 start | +64 name (NAME_LENGTH bytes)
    DATA_OFFSET (LINE_LENGTH-aligned)
      capacity records of the ring dtype; sequence s lives at index s & (capacity - 1)

Sequences start at -1 (nothing published / nothing consumed). ``claimed`` runs ahead of
``published`` while the producer of an overwrite ring copies a batch in (seqlock).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from kairos.errors import RingLayoutError
from kairos.ring.segment import CREATOR_PID_OFFSET, MAGIC_OFFSET, VERSION_OFFSET, Segment

MAGIC: Final = int.from_bytes(b"KAIROSRG", "little")
VERSION: Final = 1
LINE_LENGTH: Final = 128
NAME_LENGTH: Final = 48
MAX_CONSUMERS: Final = 16
INITIAL_SEQUENCE: Final = -1
NAME_PATTERN: Final = re.compile(rf"[A-Za-z0-9_.\-]{{1,{NAME_LENGTH}}}")

FINGERPRINT_OFFSET: Final = 32
RECORD_SIZE_OFFSET: Final = FINGERPRINT_OFFSET + 8
CAPACITY_OFFSET: Final = RECORD_SIZE_OFFSET + 8
OVERFLOW_OFFSET: Final = CAPACITY_OFFSET + 8
CONSUMER_COUNT_OFFSET: Final = OVERFLOW_OFFSET + 8
HEADER_LENGTH: Final = LINE_LENGTH

PUBLISHED_OFFSET: Final = HEADER_LENGTH
CLAIMED_OFFSET: Final = PUBLISHED_OFFSET + 8
PRODUCER_PID_OFFSET: Final = CLAIMED_OFFSET + 8
PRODUCER_START_OFFSET: Final = PRODUCER_PID_OFFSET + 8
PRODUCER_LENGTH: Final = LINE_LENGTH

CONSUMERS_OFFSET: Final = HEADER_LENGTH + PRODUCER_LENGTH
CURSOR_FIELD: Final = 0
SLEEPING_FIELD: Final = 8
OVERRUNS_FIELD: Final = 16
PID_FIELD: Final = 24
START_FIELD: Final = 32
NAME_FIELD: Final = 64
CONSUMER_LENGTH: Final = LINE_LENGTH

assert CREATOR_PID_OFFSET < FINGERPRINT_OFFSET and NAME_FIELD + NAME_LENGTH <= CONSUMER_LENGTH


class Overflow(IntEnum):
    """What the producer does when the slowest consumer is a full lap behind."""

    BLOCK = 0  # wait (bounded), then RingFull: nothing is ever dropped
    OVERWRITE = 1  # never wait: a lapped consumer counts what it missed and resyncs


def check_capacity(capacity: int) -> None:
    if capacity < 2 or capacity & (capacity - 1):
        raise ValueError(f"ring capacity must be a power of two >= 2, got {capacity}")


def check_name(kind: str, name: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"{kind} name {name!r} must be 1-{NAME_LENGTH} chars of [A-Za-z0-9_.-]")


def consumer_offset(slot: int) -> int:
    return CONSUMERS_OFFSET + slot * CONSUMER_LENGTH


def data_offset(consumers: int) -> int:
    return consumer_offset(consumers)


def segment_size(consumers: int, capacity: int, record_size: int) -> int:
    return data_offset(consumers) + capacity * record_size


@dataclass(frozen=True, slots=True)
class Header:
    """The immutable part of a ring's layout, as written by its creator."""

    fingerprint: int
    record_size: int
    capacity: int
    overflow: Overflow
    consumers: tuple[str, ...]

    @property
    def size(self) -> int:
        return segment_size(len(self.consumers), self.capacity, self.record_size)

    def write(self, seg: Segment) -> None:
        """Fill header, producer and consumer lines; the magic goes last (segment becomes live)."""
        for offset, value in (
            (FINGERPRINT_OFFSET, self.fingerprint),
            (RECORD_SIZE_OFFSET, self.record_size),
            (CAPACITY_OFFSET, self.capacity),
            (OVERFLOW_OFFSET, int(self.overflow)),
            (CONSUMER_COUNT_OFFSET, len(self.consumers)),
            (PUBLISHED_OFFSET, INITIAL_SEQUENCE),
            (CLAIMED_OFFSET, INITIAL_SEQUENCE),
        ):
            seg.write_i64(offset, value)
        for slot, name in enumerate(self.consumers):
            base = consumer_offset(slot)
            seg.write_i64(base + CURSOR_FIELD, INITIAL_SEQUENCE)
            seg.buf[base + NAME_FIELD : base + NAME_FIELD + NAME_LENGTH] = name.encode().ljust(NAME_LENGTH, b"\0")
        seg.publish_magic(MAGIC, VERSION)

    @classmethod
    def read(cls, seg: Segment) -> Header:
        """Parse a live segment's header; RingLayoutError if it is not a ring of this version."""
        if seg.size < CONSUMERS_OFFSET:
            raise RingLayoutError(f"{seg.name}: segment of {seg.size} bytes is too small for a ring header")
        _expect(seg.name, "magic", hex(MAGIC), hex(seg.read_i64(MAGIC_OFFSET)))
        _expect(seg.name, "layout version", VERSION, seg.read_i64(VERSION_OFFSET))
        count = seg.read_i64(CONSUMER_COUNT_OFFSET)
        if not 0 < count <= MAX_CONSUMERS:
            raise RingLayoutError(f"{seg.name}: consumer count {count} out of range 1..{MAX_CONSUMERS}")
        names = tuple(
            bytes(seg.buf[consumer_offset(i) + NAME_FIELD : consumer_offset(i) + NAME_FIELD + NAME_LENGTH])
            .rstrip(b"\0")
            .decode()
            for i in range(count)
        )
        header = cls(
            seg.read_i64(FINGERPRINT_OFFSET),
            seg.read_i64(RECORD_SIZE_OFFSET),
            seg.read_i64(CAPACITY_OFFSET),
            Overflow(seg.read_i64(OVERFLOW_OFFSET)),
            names,
        )
        _expect(seg.name, "segment size", header.size, seg.size)
        return header

    def check(self, name: str, fingerprint: int, record_size: int, capacity: int | None) -> None:
        """Refuse to attach with another record layout or capacity: never a silent misread."""
        _expect(name, "dtype fingerprint", hex(fingerprint), hex(self.fingerprint))
        _expect(name, "record size", record_size, self.record_size)
        if capacity is not None:
            _expect(name, "capacity", capacity, self.capacity)


def _expect(name: str, what: str, expected: object, found: object) -> None:
    if expected != found:
        raise RingLayoutError(f"ring {name}: {what} mismatch: expected {expected}, found {found}")
