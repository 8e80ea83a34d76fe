"""Append-only JSON-lines logs shared by the gate journal, the paper venue ledgers and PlaceOrder's log.

One ``os.write`` per entry on an O_APPEND descriptor: an entry is in the page cache before the
effect it records (a submit, an event) happens, so it survives ``kill -9`` of the writer (not a
power cut: there is no fsync per entry). A torn last line is cut off when the file is reopened.
A neutral module: the gate, execution/ and api/ all write such logs, none imports another for it.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final

import orjson

log = logging.getLogger(__name__)

KEEP_DECISIONS: Final = 65536
"""Decisions a compacted log keeps (the gate journal, a paper ledger) and ids PlaceOrder's log remembers;
the gate's memory holds at most twice as many. Far more than the intents and manual rings can redeliver."""


class AppendLog:
    """A JSON-lines file written one entry per syscall and read back in order."""

    __slots__ = ("_fd", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        _cut_torn_tail(self._fd)

    def append(self, entry: dict[str, Any]) -> None:
        """Raises OSError (disk full) with the log as it was: a short write is cut off again, so the
        next entry never lands behind a torn line."""
        line = orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE)
        written = os.write(self._fd, line)
        if written != len(line):
            os.ftruncate(self._fd, os.fstat(self._fd).st_size - written)
            raise OSError(errno.ENOSPC, f"short journal write to {self.path}: {written} of {len(line)} bytes")

    def rewrite(self, entries: Iterable[dict[str, Any]]) -> int:
        """Replace the log with ``entries`` (compaction): written to a temp file, fsynced, renamed over
        it (directory fsynced too); the log before it stays as ``<name>.prev``. Returns the count.
        On an error (disk full) the log is left as it was and the error raised."""
        tmp, count = self.path.with_name(self.path.name + ".tmp"), 0
        try:
            with open(tmp, "wb") as fh:
                for entry in entries:
                    fh.write(orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE))
                    count += 1
                fh.flush()
                os.fsync(fh.fileno())
            prev = self.path.with_name(self.path.name + ".prev")
            prev.unlink(missing_ok=True)
            os.link(self.path, prev)  # the old log stays whole under .prev; the name switches atomically
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)  # the log itself is untouched and still open for appends
            raise
        os.close(self._fd)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND, 0o644)
        return count

    def replay(self) -> Iterator[dict[str, Any]]:
        """Every entry so far; a corrupt line is logged and skipped, never fatal."""
        with open(self.path, "rb") as fh:
            for number, line in enumerate(fh, start=1):
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError:
                    log.error("%s:%d: corrupt journal line skipped: %r", self.path, number, line[:120])

    def close(self) -> None:
        os.close(self._fd)


def _cut_torn_tail(fd: int) -> None:
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    tail = os.pread(fd, min(size, 1 << 16), max(size - (1 << 16), 0))
    keep = size - len(tail) + tail.rfind(b"\n") + 1
    log.warning("journal ended in a torn line: cutting %d bytes", size - keep)
    os.ftruncate(fd, keep)
