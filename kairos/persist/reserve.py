"""Disk space held back for executions: a pre-allocated file the spool gives up when the disk fills.

Market data could otherwise take the last free byte, and then an execution event could not be
spooled: ``events`` is a block ring, so the gate would wait on it. The agent releases the reserve
(unlink) the first time an execution or gate-state append fails, sheds market data from then on,
and the spool thread allocates it again once the disk has room for it and as much again.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

MIN_ROOM: Final = 64 << 10  # free bytes market data needs back when no reserve is configured


class Reserve:
    """``held`` while the file exists at its full size; thread-safe (drain thread vs spool thread)."""

    __slots__ = ("_lock", "held", "path", "size")

    def __init__(self, path: Path, size: int) -> None:
        self.path, self.size = path, size
        self.held = False
        self._lock = threading.Lock()
        if size:
            self.held = self._allocate()
            if not self.held:
                log.warning("spool reserve of %d bytes not allocated (%s is full): executions have no headroom",
                            size, path.parent)

    def release(self) -> bool:
        """Give the space back (to spool an execution); False if there was nothing to give."""
        with self._lock:
            if not self.held:
                return False
            self.path.unlink(missing_ok=True)
            self.held = False
        log.warning("spool disk full: reserve of %d bytes released for executions; market data is shed", self.size)
        return True

    def room(self) -> bool:
        """True once market data may be spooled again: the reserve is held (allocated again when the
        disk has room for it) and at least as much again is free."""
        with self._lock:
            need = max(self.size, MIN_ROOM)
            if not self.held and self.size and free_bytes(self.path.parent) >= 2 * self.size:
                self.held = self._allocate()
                if self.held:
                    log.info("spool reserve of %d bytes allocated again", self.size)
            return (self.held or not self.size) and free_bytes(self.path.parent) >= need

    def _allocate(self) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.posix_fallocate(fd, 0, self.size)
            finally:
                os.close(fd)
        except OSError:
            self.path.unlink(missing_ok=True)
            return False
        return True


def free_bytes(directory: Path) -> int:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize
