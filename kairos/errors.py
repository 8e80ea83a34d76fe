"""The one error hierarchy. Processes turn these into exit codes and log lines at their edge.

Exit codes follow gunicorn's boot-error idea: a process that cannot start because of its
configuration or a shared-memory layout mismatch exits with EXIT_BOOT_ERROR, and the supervisor
marks it FATAL instead of restarting it in a loop.
"""

from __future__ import annotations

from typing import Final

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_BOOT_ERROR: Final = 3


class KairosError(Exception):
    """Base of every error KAIRÓS raises on purpose."""

    exit_code: int = EXIT_FAILURE


class ConfigError(KairosError):
    """Configuration is invalid: names the key and the file it came from."""

    exit_code = EXIT_BOOT_ERROR

    def __init__(self, message: str, key: str = "", source: str = "") -> None:
        place = " ".join(part for part in (f"key {key!r}" if key else "", f"in {source}" if source else "") if part)
        super().__init__(f"{message} [{place}]" if place else message)
        self.message = message
        self.key = key
        self.source = source


class RingError(KairosError):
    """Shared-memory ring failure."""


class RingLayoutError(RingError):
    """A segment's header does not match what the attaching process expects."""

    exit_code = EXIT_BOOT_ERROR


class RingFull(RingError):
    """A `block` ring stayed full past the producer's bounded wait."""


class RingNotFound(RingError):
    """The segment does not exist (its creator has not started yet, or was cleaned up)."""


class FeedError(KairosError):
    """Market-data feed failure (connection, protocol, book sync)."""


class BookSyncError(FeedError):
    """An order book lost continuity and must be resynchronised."""


class ProtocolError(FeedError):
    """A venue message could not be understood."""


class RiskRejected(KairosError):
    """A pre-trade check refused an order; carries the reason code sent in the execution event."""

    def __init__(self, reason: int, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ExecutionError(KairosError):
    """A venue order call failed."""


class VenueRejected(ExecutionError):
    """The venue answered with a definite rejection (its own code and message kept)."""

    def __init__(self, reason: int, venue_code: str, message: str) -> None:
        super().__init__(f"{venue_code}: {message}")
        self.reason = reason
        self.venue_code = venue_code


class OutcomeUnknown(ExecutionError):
    """The venue may or may not have acted (5xx, timeout, -1007, 50004): query, never assume."""


class RateLimited(ExecutionError):
    """The venue asked us to slow down (429/418/-1003/50011)."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PersistError(KairosError):
    """Database or cache write failure (the persister spools instead)."""


class SpoolCorrupt(PersistError):
    """A spool file has a torn or corrupt record."""


class SinkUnavailable(PersistError):
    """PostgreSQL or Redis cannot be reached right now: keep the batch, retry after a backoff."""


class BatchRejected(PersistError):
    """The database refused a batch for its content: retrying the same batch cannot succeed."""


class SupervisorError(KairosError):
    """Process supervision failure."""


class InvalidRequest(SupervisorError):
    """An API request that can never succeed as sent (gRPC INVALID_ARGUMENT); the message says why."""
