"""A process's last words: why it died, left where the supervisor reads them after the death.

``{logging.dir}/{shm_prefix}.{role}.exit`` holds one line, ``<ExceptionType>: <message>``. The
process edge (kairos/process.py) writes it next to the fatal log line; the supervisor removes it
before each spawn and takes it after the exit, so a note always belongs to the run that just ended.
A signal leaves no note: the exit status already names it. Writing is best effort: a full or
read-only disk must not turn a clean error exit into a second failure.
"""

from __future__ import annotations

import contextlib
import logging
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


def clear(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
