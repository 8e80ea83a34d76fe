"""Feed counters: plain ints on the hot path, copied to the status board row every 100 ms.

The feed publishes these counters (names are what `kairosctl status` shows)::

    msgs records publishes | malformed bad_input | reconnects connect_fail watchdog venue_close
    gaps resyncs snapshots snapshot_fail stale_dropped crossed | pings | rejected rej.other

and one ``rej.<reason>.<venue symbol>`` counter per (instrument, reason) seen, claimed on first use;
the row has room for a bounded number of them, and rejections of keys that found no room (or whose
name is too long for a slot) add up in ``rej.other``. The logs name the book of every rejection.
Likewise one ``resyncs.<venue symbol>`` per book on its first resync, while the row has room
(``resyncs`` is the venue's total either way; /metrics labels them by instrument).

and one histogram, ``latency_ns``: WS frame received (monotonic, after the frame is read) -> the
batch holding its records is published to the ring, one sample per frame that produced records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

from kairos.errors import RingError

if TYPE_CHECKING:
    from kairos.feeds.agent import FeedAgent
    from kairos.feeds.sync import BookSync
    from kairos.feeds.validate import Rejections

FLUSH_NS: Final = 100_000_000
OTHER: Final = "rej.other"
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
    __slots__ = ("_counters", "_hist", "_next_flush_ns", "_rej_names", "_resync_names", "_row", "connect_failures",
                 "connects", "disconnects", "frames", "pings", "pongs", "publishes", "reasons", "records")

    def __init__(self, row: BoardRow | None) -> None:
        self.frames = self.records = self.publishes = self.pings = self.pongs = 0
        self.connects = self.connect_failures = self.disconnects = 0
        self.reasons: dict[str, int] = {}
        self._next_flush_ns = 0
        self._hist = row.histogram("latency_ns") if row is not None else None
        names = ("msgs", "records", "publishes", "malformed", "bad_input", "reconnects", "connect_fail", "watchdog",
                 "venue_close", "gaps", "resyncs", "snapshots", "snapshot_fail", "stale_dropped", "crossed", "pings",
                 "rejected", OTHER)
        self._row = row
        self._counters = {n: row.counter(n) for n in names} if row is not None else {}
        self._rej_names: dict[tuple[int, str], str] = {}  # (instrument, reason) -> its board counter
        self._resync_names: dict[int, str | None] = {}  # instrument -> its resyncs counter (None: no room)

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
            "crossed": sync["crossed"], "pings": self.pings + agent.pings_sent, "rejected": agent.rejections.total,
        }

    def rejection_counters(self, rejections: Rejections) -> dict[str, int]:
        """Rejections by board counter name: one per (instrument, reason) while the row has room, then rej.other."""
        by_name: dict[str, int] = {}
        for key, count in rejections.counts.items():
            name = self._rej_names.get(key) or self._claim(key, rejections)
            by_name[name] = by_name.get(name, 0) + count
        return by_name

    def resync_counters(self, sync: BookSync) -> dict[str, int]:
        """Resyncs by board counter name, for each book that resynced and found room on the row."""
        out: dict[str, int] = {}
        for instrument, track in sync.tracks.items():
            if track.resyncs:
                if instrument not in self._resync_names:
                    self._resync_names[instrument] = self._board_counter(f"resyncs.{track.symbol}")
                name = self._resync_names[instrument]
                if name is not None:
                    out[name] = track.resyncs
        return out

    def maybe_flush(self, now_ns: int, agent: FeedAgent, force: bool = False) -> None:
        if not force and now_ns < self._next_flush_ns:
            return
        self._next_flush_ns = now_ns + FLUSH_NS
        if self._row is not None:
            values = self.values(agent)
            values.update(self.rejection_counters(agent.rejections))
            values.update(self.resync_counters(agent.sync))
            for name, counter in self._counters.items():
                counter.set(values.get(name, 0))

    def _claim(self, key: tuple[int, str], rejections: Rejections) -> str:
        name = f"rej.{key[1]}.{rejections.name(key[0])}"
        if self._row is not None:
            name = self._board_counter(name) or OTHER
        self._rej_names[key] = name
        return name

    def _board_counter(self, name: str) -> str | None:
        """Claim a row counter for ``name``; None when the row is full or the name does not fit a slot."""
        try:
            self._counters[name] = self._row.counter(name)  # type: ignore[union-attr]
        except (RingError, ValueError):
            return None
        return name
