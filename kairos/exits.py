"""A process's last words: why it died, left where the supervisor reads them after the death.

``{logging.dir}/{shm_prefix}.{role}.exit`` holds one line, ``<ExceptionType>: <message>``. The
process edge (kairos/process.py) writes it next to the fatal log line; the supervisor removes it
before each spawn and takes it after the exit, so a note always belongs to the run that just ended.
A signal leaves no note: the exit status already names it. Writing is best effort: a full or
read-only disk must not turn a clean error exit into a second failure. In --watch mode systemd
reaps the processes, so nobody takes the note: the supervisor shows it as it stands, with its age.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from kairos.config import Settings

MAX_NOTE: int = 500
log = logging.getLogger(__name__)


def note_path(settings: Settings, role: str) -> Path:
    return Path(settings.logging.dir) / f"{settings.shm_prefix}.{role}.exit"


def describe(exc: BaseException) -> str:
    """``ValueError: boom`` on one line, cut to MAX_NOTE characters."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text[:MAX_NOTE]


def write(path: Path, exc: BaseException) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(describe(exc) + "\n")
    except OSError as err:
        log.error("could not leave the exit note %s: %s", path, err)


def take(path: Path) -> str:
    """The note of the run that just ended ('' if it left none), removed so the next run starts clean."""
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return ""
    clear(path)
    return text


def watched(settings: Settings) -> Callable[[str], str]:
    """--watch mode: role -> its last note and how old it is ('' if it left none)."""

    def peek(role: str) -> str:
        path = note_path(settings, role)
        try:
            text, age_s = path.read_text(errors="replace").strip(), time.time() - path.stat().st_mtime
        except OSError:
            return ""
        return f"last exit: {text} ({age_s:.0f}s ago)"

    return peek


def clear(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
