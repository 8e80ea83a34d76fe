"""The persister's local write-ahead spool: every drained ring batch lands here before its cursor moves.

A spool is a directory of append-only segment files ``{index:012d}.spool``; a frame is::

    0        4        8        12       13  16       20
    +--------+--------+--------+--------+---+--------+------------------------+
    | magic  | length | crc32  | stream |pad| fprint | records (length-8 B)   |
    +--------+--------+--------+--------+---+--------+------------------------+
    |<----- frame header 12 B ->|<----------- payload: length bytes --------->|

``crc32`` covers the payload. A torn tail (process or machine died mid-write) fails the length or
CRC check at open and is truncated; a corrupt frame in the middle is skipped by scanning for the
next magic and counted. Readers never read past `Spool.end`, the position of the last complete
append, so a frame being written is never seen half-done. Positions are ``(segment, offset)``.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
import threading
import time
import zlib
from pathlib import Path
from typing import Final, NamedTuple

import numpy as np

from kairos.errors import PersistError
from kairos.persist.reserve import Reserve

log = logging.getLogger(__name__)

MAGIC: Final = 0x4B535031  # "KSP1"
FRAME_HEADER: Final = struct.Struct("<III")
PAYLOAD_HEADER: Final = struct.Struct("<BxxxI")
HEADER_LENGTH: Final = FRAME_HEADER.size + PAYLOAD_HEADER.size
SUFFIX: Final = ".spool"
_MAGIC_BYTES: Final = struct.pack("<I", MAGIC)


class Position(NamedTuple):
    segment: int
    offset: int


class Frame(NamedTuple):
    stream: int
    fingerprint: int
    payload: memoryview
    end: Position


def segment_path(directory: Path, index: int) -> Path:
    return directory / f"{index:012d}{SUFFIX}"


def segments(directory: Path) -> list[int]:
    return sorted(int(p.name[: -len(SUFFIX)]) for p in directory.glob(f"*{SUFFIX}"))


def encode_frame(stream: int, fingerprint: int, payload: bytes | memoryview) -> list[bytes | memoryview]:
    """Header and body as separate buffers for one writev: the records are never copied."""
    head = PAYLOAD_HEADER.pack(stream, fingerprint)
    crc = zlib.crc32(payload, zlib.crc32(head))
    return [FRAME_HEADER.pack(MAGIC, len(head) + len(payload), crc) + head, payload]


def scan(data: bytes) -> tuple[list[tuple[int, int]], int, int]:
    """Valid frames in ``data`` as (offset, length); returns (frames, good_end, skipped_bytes).

    ``good_end`` is where the last valid frame ends; bytes after it are a torn tail. A bad frame
    followed by a valid one is skipped (counted in ``skipped_bytes``) by searching for the next magic.
    """
    view = memoryview(data)
    frames: list[tuple[int, int]] = []
    pos = good_end = 0
    skipped = 0
    while pos + HEADER_LENGTH <= len(view):
        length = _valid_frame(view, pos)
        if not length:
            pos = data.find(_MAGIC_BYTES, pos + 1, len(view))
            if pos < 0:
                break
            continue
        skipped += pos - good_end
        frames.append((pos, length))
        pos = good_end = pos + FRAME_HEADER.size + length
    return frames, good_end, skipped


def _valid_frame(view: memoryview, pos: int) -> int:
    magic, length, crc = FRAME_HEADER.unpack_from(view, pos)
    body = pos + FRAME_HEADER.size
    if magic != MAGIC or length < PAYLOAD_HEADER.size or body + length > len(view):
        return 0
    return length if zlib.crc32(view[body : body + length]) == crc else 0


def read_file(path: Path) -> list[Frame]:
    """Every valid frame of one file (a dead-letter file, or a segment for inspection)."""
    data = path.read_bytes()
    frames = []
    for offset, length in scan(data)[0]:
        stream, fprint = PAYLOAD_HEADER.unpack_from(data, offset + FRAME_HEADER.size)
        end = offset + FRAME_HEADER.size + length
        frames.append(Frame(stream, fprint, memoryview(data)[offset + HEADER_LENGTH : end], Position(0, end)))
    return frames


class Spool:
    """Single appender (the ring-draining thread), many readers (sink threads). Holds an flock."""

    def __init__(self, directory: str | Path, segment_bytes: int = 4 << 20, segment_s: float = 5.0,
                 reserve_bytes: int = 0) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock(self.directory / "LOCK")
        self._segment_bytes, self._segment_ns = segment_bytes, int(segment_s * 1e9)
        self._opened_ns = time.monotonic_ns()
        self.reserve = Reserve(self.directory / "RESERVE", reserve_bytes)
        self.torn_bytes = self.skipped_bytes = 0
        self.appended_bytes = 0
        self._new_data = threading.Condition()
        self._fd_lock = threading.Lock()
        self._synced = True
        existing = segments(self.directory)
        index = existing[-1] if existing else 0
        self._starts = _starts(self.directory, existing[:-1], index)  # segment -> spool-wide start byte
        self._fd = os.open(segment_path(self.directory, index), os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self.end = Position(index, self._repair_tail(index))

    def _repair_tail(self, index: int) -> int:
        data = Path(segment_path(self.directory, index)).read_bytes()
        _, good_end, skipped = scan(data)
        self.skipped_bytes += skipped
        if good_end < len(data):
            self.torn_bytes = len(data) - good_end
            log.warning("spool %s: torn tail of %d bytes truncated at %d", index, self.torn_bytes, good_end)
            os.ftruncate(self._fd, good_end)
        return good_end

    def append(self, stream: int, fingerprint: int, records: np.ndarray | bytes) -> Position:
        """One writev into the page cache; survives a process kill once it returns. A full disk
        raises OSError with the segment as it was (a short write is cut off again): retry later."""
        parts = encode_frame(stream, fingerprint, memoryview(records).cast("B"))
        offset = self.end.offset
        if offset >= self._segment_bytes or (offset and time.monotonic_ns() - self._opened_ns >= self._segment_ns):
            self._rotate()
            offset = 0
        size = sum(len(p) for p in parts)
        written = os.writev(self._fd, parts)
        if written != size:
            os.ftruncate(self._fd, offset)
            raise OSError(errno.ENOSPC, f"short spool write: {written} of {size} bytes (cut off, will retry)")
        self.appended_bytes += size
        self._synced = False
        with self._new_data:
            self.end = Position(self.end.segment, self.end.offset + size)
            self._new_data.notify_all()
        return self.end

    def _rotate(self) -> None:
        index = self.end.segment + 1
        fd = os.open(segment_path(self.directory, index), os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        with self._fd_lock:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = fd
        self._opened_ns = time.monotonic_ns()
        self._starts[index] = self._starts[self.end.segment] + self.end.offset
        with self._new_data:
            self.end = Position(index, 0)

    def sync(self) -> None:
        """fsync the open segment if anything was appended since the last sync (sink threads call
        this once per flush cycle, so the drain path never waits on the disk)."""
        if self._synced:
            return
        with self._fd_lock:
            self._synced = True
            os.fsync(self._fd)

    def wait(self, after: Position, timeout_s: float) -> bool:
        """Block a reader until the spool grows past ``after`` (or timeout); True if it did."""
        with self._new_data:
            return self._new_data.wait_for(lambda: self.end > after, timeout_s)

    def wake(self) -> None:
        with self._new_data:
            self._new_data.notify_all()

    def backlog_bytes(self, since: Position) -> int:
        """How much is spooled after ``since`` (a position in a segment still on disk)."""
        end, starts = self.end, self._starts
        return starts[end.segment] + end.offset - starts.get(since.segment, 0) - since.offset

    def collect(self, keep_from: Position) -> int:
        """Delete whole segments every reader has passed; returns how many were removed."""
        removed = 0
        for index in segments(self.directory):
            if index < min(keep_from.segment, self.end.segment):
                segment_path(self.directory, index).unlink(missing_ok=True)
                self._starts.pop(index, None)
                removed += 1
        return removed

    def disk_bytes(self) -> int:
        """What the segments take on disk now (the spool thread samples it for status)."""
        return sum(segment_path(self.directory, index).stat().st_size for index in segments(self.directory))

    def checkpoint(self, name: str, position: Position) -> None:
        """Atomically record that sink ``name`` has everything before ``position`` (rename is atomic)."""
        tmp = self.directory / f"{name}.ckpt.tmp"
        tmp.write_text(f"{position.segment} {position.offset}\n")
        os.replace(tmp, self.directory / f"{name}.ckpt")

    def checkpoint_of(self, name: str) -> Position:
        """Where sink ``name`` resumes: its checkpoint, or the oldest segment if it has none or it is
        past the end (the spool was repaired shorter after a crash: replaying is harmless)."""
        path = self.directory / f"{name}.ckpt"
        first = Position(segments(self.directory)[0], 0)
        if not path.exists():
            return first
        segment, offset = (int(x) for x in path.read_text().split())
        position = Position(segment, offset)
        return first if position > self.end or position < first else position

    def close(self) -> None:
        with self._fd_lock:
            os.fsync(self._fd)
            os.close(self._fd)
        os.close(self._lock_fd)


def _starts(directory: Path, sealed: list[int], last: int) -> dict[int, int]:
    """Spool-wide start byte of each segment (backlog sizes without a stat per append)."""
    starts, at = {}, 0
    for index in sealed:
        starts[index] = at
        at += segment_path(directory, index).stat().st_size
    starts[last] = at
    return starts


def _lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise PersistError(f"spool {path.parent} is in use by another persister") from None
    return fd


class SpoolReader:
    """A sink thread's cursor over the spool: frames from a position up to `Spool.end`, in order."""

    def __init__(self, spool: Spool, start: Position, chunk_bytes: int = 4 << 20) -> None:
        self._spool = spool
        self.position = start
        self._chunk = chunk_bytes
        self._buf = b""
        self._base = start.offset
        self._frames: list[tuple[int, int]] = []
        self._next = 0
        self.skipped_bytes = 0

    def next_frame(self) -> Frame | None:
        """The next complete frame, or None if the reader has caught up with the appender."""
        if self._next >= len(self._frames) and not self._fill():
            return None
        offset, length = self._frames[self._next]
        self._next += 1
        stream, fingerprint = PAYLOAD_HEADER.unpack_from(self._buf, offset + FRAME_HEADER.size)
        body = offset + HEADER_LENGTH
        end = offset + FRAME_HEADER.size + length
        self.position = Position(self.position.segment, self._base + end)
        return Frame(stream, fingerprint, memoryview(self._buf)[body:end], self.position)

    def _fill(self) -> bool:
        end = self._spool.end
        segment, offset = self.position
        sealed = segment < end.segment
        path = segment_path(self._spool.directory, segment)
        limit = (path.stat().st_size if path.exists() else 0) if sealed else end.offset
        if offset >= limit:
            if not sealed:
                return False
            self.position = Position(segment + 1, 0)
            return self._fill()
        return self._read(path, offset, limit, self._chunk)

    def _read(self, path: Path, offset: int, limit: int, chunk: int) -> bool:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read(min(chunk, limit - offset))
        frames, _, skipped = scan(data)
        if not frames and offset + len(data) < limit:
            return self._read(path, offset, limit, chunk * 2)
        if not frames:
            skipped = len(data)
        if skipped:
            self.skipped_bytes += skipped
            log.error("spool %s: %d corrupt bytes skipped near offset %d", path.name, skipped, offset)
        self._buf, self._base, self._frames, self._next = data, offset, frames, 0
        if frames:
            return True
        self.position = Position(self.position.segment, offset + len(data))
        return self._fill()
