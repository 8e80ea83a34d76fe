"""Feed counters: plain ints on the hot path, copied to the status board row every 100 ms.

The row has 16 counters, so the feed publishes these (names are what `kairosctl status` shows)::

    msgs records publishes | malformed bad_input | reconnects connect_fail watchdog venue_close
    gaps resyncs snapshots snapshot_fail stale_dropped crossed | pings

and one histogram, ``latency_ns``: WS frame received (monotonic, after the frame is read) -> the
batch holding its records is published to the ring, one sample per frame that produced records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from kairos.feeds.agent import FeedAgent

FLUSH_NS: Final = 100_000_000
WATCHDOG_REASONS: Final = ("watchdog", "pong_timeout")


class _Counter(Protocol):
    def set(self, value: int) -> None: ...


class _Histogram(Protocol):
    def record(self, ns: int) -> None: ...


class BoardRow(Protocol):
    """The part of kairos.status.Slot the feed uses."""

    def counter(self, name: str) -> _Counter: ...

    def histogram(self, name: str) -> _Histogram: ...


class FeedStats:
    __slots__ = ("_counters", "_hist", "_next_flush_ns", "connect_failures", "connects", "disconnects", "frames",
                 "pings", "pongs", "publishes", "reasons", "records")

    def __init__(self, row: BoardRow | None) -> None:
        self.frames = self.records = self.publishes = self.pings = self.pongs = 0
        self.connects = self.connect_failures = self.disconnects = 0
        self.reasons: dict[str, int] = {}
        self._next_flush_ns = 0
        self._hist = row.histogram("latency_ns") if row is not None else None
        names = ("msgs", "records", "publishes", "malformed", "bad_input", "reconnects", "connect_fail", "watchdog",
                 "venue_close", "gaps", "resyncs", "snapshots", "snapshot_fail", "stale_dropped", "crossed", "pings")
        self._counters = [(n, row.counter(n)) for n in names] if row is not None else []

    def published(self, rows: int, recv_mono_ns: list[int], now_ns: int) -> None:
        self.records += rows
        self.publishes += 1
        hist = self._hist
        if hist is not None:
            for received in recv_mono_ns:
                hist.record(now_ns - received)

    def disconnected(self, reason: str) -> None:
        self.disconnects += 1
        kind = reason.split(":", 1)[0]
        self.reasons[kind] = self.reasons.get(kind, 0) + 1

    def values(self, agent: FeedAgent) -> dict[str, int]:
        """Everything the feed counts, by board name (also what tests read)."""
        errors, sync = agent.tally.counts, agent.sync.counts
        malformed = errors.get("malformed_json", 0)
        return {
            "msgs": self.frames, "records": self.records, "publishes": self.publishes, "malformed": malformed,
            "bad_input": sum(errors.get(k, 0) for k in ("unexpected_message", "bad_message", "bad_level")),
            "reconnects": self.disconnects, "connect_fail": self.connect_failures,
            "watchdog": sum(self.reasons.get(r, 0) for r in WATCHDOG_REASONS),
            "venue_close": self.reasons.get("venue asked", 0),
            "gaps": sync["gaps"], "resyncs": sync["resyncs"], "snapshots": sync["snapshots"],
            "snapshot_fail": sync["snapshot_failures"], "stale_dropped": sync["stale_dropped"],
            "crossed": sync["crossed"], "pings": self.pings + agent.pings_sent,
        }

    def maybe_flush(self, now_ns: int, agent: FeedAgent, force: bool = False) -> None:
        if not force and now_ns < self._next_flush_ns:
            return
        self._next_flush_ns = now_ns + FLUSH_NS
        if self._counters:
            values = self.values(agent)
            for name, counter in self._counters:
                counter.set(values[name])
