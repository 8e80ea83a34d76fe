"""POSIX shared-memory segments: create (reclaiming stale ones), open, lock, unlink.

Every KAIRÓS segment (rings, status board) starts with the same preamble, so a stale one can be
recognised without knowing its kind::

    0        8        16           24            32
    +--------+--------+------------+-------------+
    | magic  |version |creator pid |creator start|   (i64 each; magic is written LAST)
    +--------+--------+------------+-------------+

A segment is live only once its magic is non-zero. ``creator start`` is the creator's start time
in clock ticks (/proc/<pid>/stat field 22), so a recycled pid is not mistaken for the creator.
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import posix_ipc

from kairos.errors import RingError, RingNotFound

log = logging.getLogger(__name__)

MAGIC_OFFSET: Final = 0
VERSION_OFFSET: Final = 8
CREATOR_PID_OFFSET: Final = 16
CREATOR_START_OFFSET: Final = 24
PREAMBLE_LENGTH: Final = 32
MAGIC_FAMILY: Final = b"KAIROS"  # first 6 bytes of every KAIRÓS magic (little-endian i64 of b"KAIROSxx")
SHM_DIR: Final = Path("/dev/shm")


def proc_start_ticks(pid: int) -> int:
    """Start time of a live, non-zombie process in clock ticks; 0 if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0
    fields = stat[stat.rindex(")") + 2 :].split()
    return 0 if fields[0] in ("Z", "X") else int(fields[19])


def owner_alive(pid: int, start: int) -> bool:
    """True if ``pid`` is running and is the same process that recorded ``start``."""
    return pid > 0 and proc_start_ticks(pid) == start


_identity: tuple[int, int] = (0, 0)


def self_identity() -> tuple[int, int]:
    """(pid, start ticks) of this process, as recorded in owner fields (read once per pid: a fork
    gets its own)."""
    global _identity
    pid = os.getpid()
    if _identity[0] != pid:
        _identity = (pid, proc_start_ticks(pid))
    return _identity


def held_by_other(pid: int, start: int) -> bool:
    """An owner field naming a live process that is not this one."""
    return owner_alive(pid, start) and (pid, start) != self_identity()


class Segment:
    """One mapped segment. Keeps the shm fd open for `lock()` (flock dies with its holder)."""

    __slots__ = ("_shm", "buf", "name", "size")

    def __init__(self, shm: posix_ipc.SharedMemory, name: str) -> None:
        self._shm = shm
        self.name = name
        self.size = os.fstat(shm.fd).st_size
        self.buf = mmap.mmap(shm.fd, self.size)

    @classmethod
    def create(cls, name: str, size: int) -> Segment:
        """Create a zero-filled segment; an existing one is reclaimed if its creator is gone or is us."""
        try:
            shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, size=size)
        except posix_ipc.ExistentialError:
            _reclaim(name)
            shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, size=size)
        seg = cls(shm, name)
        pid, start = self_identity()
        seg.write_i64(CREATOR_PID_OFFSET, pid)
        seg.write_i64(CREATOR_START_OFFSET, start)
        return seg

    @classmethod
    def open(cls, name: str) -> Segment:
        """Map an existing segment; RingNotFound if there is none."""
        try:
            shm = posix_ipc.SharedMemory(name)
        except posix_ipc.ExistentialError:
            raise RingNotFound(f"shared-memory segment {name} does not exist") from None
        return cls(shm, name)

    @property
    def fd(self) -> int:
        """The shm descriptor, for callers that take `lock`'s flock themselves on a hot path."""
        return self._shm.fd

    def read_i64(self, offset: int) -> int:
        return int.from_bytes(self.buf[offset : offset + 8], "little", signed=True)

    def write_i64(self, offset: int, value: int) -> None:
        self.buf[offset : offset + 8] = value.to_bytes(8, "little", signed=True)

    def publish_magic(self, magic: int, version: int) -> None:
        """Make the segment live: version, then magic, after everything else is written."""
        self.write_i64(VERSION_OFFSET, version)
        self.write_i64(MAGIC_OFFSET, magic)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive advisory lock for rare admin changes (claiming slots); released if we die."""
        fcntl.flock(self._shm.fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._shm.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Unmap; if a caller still holds a numpy view, the mapping lives until that view is freed."""
        try:
            self.buf.close()
        except BufferError:
            log.debug("segment %s still has exported views; unmapped when they are freed", self.name)
        self._shm.close_fd()


def unlink(name: str) -> bool:
    """Remove a segment name (mappings stay valid until closed). False if it did not exist."""
    try:
        posix_ipc.unlink_shared_memory(name)
    except posix_ipc.ExistentialError:
        return False
    return True


def _reclaim(name: str) -> None:
    """Unlink an existing segment left by a dead creator (or by this very process); else refuse."""
    seg = Segment.open(name)
    try:
        if seg.size < PREAMBLE_LENGTH:
            pid, start = 0, 0
        else:
            pid, start = seg.read_i64(CREATOR_PID_OFFSET), seg.read_i64(CREATOR_START_OFFSET)
    finally:
        seg.close()
    if owner_alive(pid, start) and pid != os.getpid():
        raise RingError(f"segment {name} is owned by live pid {pid}; refusing to recreate it")
    log.warning("reclaiming stale segment %s (creator pid %d gone or recreating)", name, pid)
    unlink(name)


def sweep_stale(prefix: str) -> list[str]:
    """Unlink every KAIRÓS segment under ``prefix`` whose creator is dead; returns the names removed.

    Only segments whose magic starts with ``KAIROS`` are touched: anything else under the prefix
    (or a segment still being initialised) is not ours to judge.
    """
    removed = []
    for path in sorted(SHM_DIR.glob(f"{prefix}.*")):
        try:
            seg = Segment.open("/" + path.name)
        except RingNotFound:
            continue
        try:
            ours = seg.size >= PREAMBLE_LENGTH and bytes(seg.buf[:6]) == MAGIC_FAMILY
            pid, start = (seg.read_i64(CREATOR_PID_OFFSET), seg.read_i64(CREATOR_START_OFFSET)) if ours else (0, 0)
        finally:
            seg.close()
        if ours and not owner_alive(pid, start) and unlink("/" + path.name):
            removed.append("/" + path.name)
    return removed
