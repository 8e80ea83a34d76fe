"""Logging set-up and the rate-limited error counter every process uses at its edges.

Human lines on the console, JSON lines to ``{dir}/{role}.jsonl`` rotated daily. The hot path never
logs per message: it counts with `ErrorTally`, which logs the first occurrence of each kind (per
key, e.g. per book), then at most one line per interval, and prints what it suppressed at shutdown.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import os
import sys
import time
import weakref
from pathlib import Path

from pythonjsonlogger.json import JsonFormatter

from kairos.config import LoggingConfig

CONSOLE_FORMAT = "%(asctime)s %(levelname)-7s %(process_role)s[%(process)d] %(name)s: %(message)s"


class _RoleFilter(logging.Filter):
    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def filter(self, record: logging.LogRecord) -> bool:
        record.process_role = self.role
        return True


class UtcJsonFormatter(JsonFormatter):
    """``time`` as ISO 8601 UTC with milliseconds (2026-12-04T14:45:50.052Z): sortable, zone-free."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def setup_logging(role: str, cfg: LoggingConfig) -> None:
    """Configure the root logger for one process; ``KAIROS__LOGGING__LEVEL`` reaches here via config."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(cfg.level)
    role_filter = _RoleFilter(role)
    if cfg.console:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter(CONSOLE_FORMAT))
        console.addFilter(role_filter)
        root.addHandler(console)
    if cfg.json_files:
        directory = Path(cfg.dir)
        directory.mkdir(parents=True, exist_ok=True)
        files = logging.handlers.TimedRotatingFileHandler(
            directory / f"{role}.jsonl", when="midnight", backupCount=cfg.backup_days, utc=True
        )
        files.setFormatter(
            UtcJsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(process)d %(process_role)s",
                rename_fields={"asctime": "time", "levelname": "level", "process_role": "role"},
                static_fields={"host": os.uname().nodename},
            )
        )
        files.addFilter(role_filter)
        root.addHandler(files)


class ErrorTally:
    """Counts bad inputs by kind; logs the first of each (kind, key), then at most one line per interval.

    ``key`` names what went wrong (a book, a symbol): two books with the same kind of error are
    logged independently. A later line for a key says how many were suppressed since the last one;
    `flush` prints what is still suppressed: at interpreter exit for every live tally (`flush_all`),
    earlier where the owner closes (the feed's on_close), so no count is lost when a run ends.
    """

    __slots__ = ("__weakref__", "_interval_ns", "_last_log_ns", "_log", "_since_log", "counts")

    def __init__(self, logger: logging.Logger, interval_s: float = 10.0) -> None:
        self._log = logger
        self._interval_ns = int(interval_s * 1e9)
        self.counts: dict[str, int] = {}
        self._since_log: dict[tuple[str, str], int] = {}
        self._last_log_ns: dict[tuple[str, str], int] = {}
        _LIVE.add(self)

    def __call__(self, kind: str, detail: str = "", key: str = "") -> None:
        count = self.counts.get(kind, 0) + 1
        self.counts[kind] = count
        now = time.monotonic_ns()
        slot = (kind, key)
        last = self._last_log_ns.get(slot)
        if last is None or now - last >= self._interval_ns:
            suppressed = self._since_log.get(slot, 0)
            more = f" ({suppressed} more since last report)" if suppressed else ""
            self._log.warning("%s%s (total %d)%s: %s", kind, _named(key), count, more, detail[:300])
            self._last_log_ns[slot] = now
            self._since_log[slot] = 0
        else:
            self._since_log[slot] = self._since_log.get(slot, 0) + 1

    def flush(self) -> int:
        """Log every suppressed count not yet reported (one line per kind and key); returns how many."""
        pending = [(slot, n) for slot, n in self._since_log.items() if n]
        for (kind, key), suppressed in pending:
            self._log.warning("%s%s: %d more since last report (total %d)", kind, _named(key), suppressed,
                              self.counts[kind])
            self._since_log[(kind, key)] = 0
        return len(pending)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _named(key: str) -> str:
    return f" [{key}]" if key else ""


_LIVE: weakref.WeakSet[ErrorTally] = weakref.WeakSet()


def flush_all() -> int:
    """The shutdown summary of every live `ErrorTally` (registered with atexit); returns the lines logged."""
    return sum(tally.flush() for tally in list(_LIVE))


atexit.register(flush_all)  # after logging's own atexit hook was registered, so it runs before logging shuts down
