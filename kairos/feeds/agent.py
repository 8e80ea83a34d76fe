"""The feed process's Agent: read frames, parse, sync books, publish one batch per duty cycle.

Duty cycle (AgentRunner calls ``do_work`` then ``idle``)::

    connected?  no -> connect when the backoff allows (subscribe, books -> AWAIT)
    read every buffered frame (bounded) -> parse into `out` rows; book messages -> BookSync
    BookSync.poll: start due REST snapshots, splice finished ones
    keepalive / watchdog -> maybe disconnect (books -> STATUS DISCONNECTED)
    publish out[:rows] to the md ring in one call; latency (frame received -> published) recorded

Reconnects: a venue-requested close (close frame, Binance serverShutdown, OKX 64008) after a
session that delivered data reconnects at once; anything else waits `Backoff` (exponential with
jitter, from feeds.ws_reconnect_delay_ms up to ws_max_reconnect_delay_ms). Consecutive failures
beyond feeds.ws_max_reconnect_attempts (0 = never give up) raise FeedError and end the process.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Final, Protocol

import numpy as np
import orjson

from kairos.config import EndpointConfig, FeedConfig, Settings
from kairos.errors import ConfigError, FeedError, ProtocolError
from kairos.feeds import FEEDS
from kairos.feeds.base import BAD_INPUT, Backoff, BookMsg, FeedAdapter, Reconnect
from kairos.feeds.session import CLOSE, PING, PONG, TEXT, TRANSPORT_ERRORS, FrameTooLarge, WsSession
from kairos.feeds.stats import FeedStats
from kairos.feeds.sync import BookSync, Fetcher, SnapshotFetcher
from kairos.feeds.validate import FRAME_SIZE, VENUE_WIDE, QuoteGuard, Rejections
from kairos.instruments import VENUE_NAMES, InstrumentTable
from kairos.logs import ErrorTally
from kairos.ratelimit.budget import Budget
from kairos.records import MARKET_DATA

log = logging.getLogger(__name__)

BATCH_ROWS: Final = 4096
MAX_FRAMES: Final = 512
IDLE_MAX_S: Final = 0.05
SESSION_SLACK_NS: Final = 60_000_000_000
"""A drop within a minute (or 1 %) of the venue's session limit is that scheduled cut."""


SKIPPED: Final = (ProtocolError, *BAD_INPUT)
"""Bad input from the venue: counted by kind, logged rate-limited, skipped."""


def _bad_kind(exc: Exception) -> str:
    if isinstance(exc, ProtocolError):
        return "unexpected_message"
    return "malformed_json" if isinstance(exc, json.JSONDecodeError | orjson.JSONDecodeError) else "bad_message"


class Publisher(Protocol):
    def publish(self, batch: np.ndarray) -> int: ...


class FeedAgent:
    """One venue's market data: a WsSession, its BookSync, and the md ring producer."""

    __slots__ = ("_adapter", "_attempts", "_backoff", "_books", "_cfg", "_drained", "_fetcher", "_guard",
                 "_next_connect_ns", "_out", "_publisher", "_recv", "_reserve", "_rows", "_session", "_url", "_wake",
                 "rejections", "role", "stats", "sync", "tally")

    def __init__(self, adapter: FeedAdapter, urls: EndpointConfig, cfg: FeedConfig, publisher: Publisher,
                 stats: FeedStats, fetcher: Fetcher | None = None, budget: Budget | None = None) -> None:
        self.role = f"feed.{adapter.venue.name.lower()}"
        self._adapter, self._cfg, self._publisher, self.stats = adapter, cfg, publisher, stats
        self._url = adapter.stream_url(urls.ws_url)
        self.tally = ErrorTally(log)
        self.rejections = Rejections(self.tally, {i: s for s, i in adapter.symbols.items()})
        self._guard = QuoteGuard(cfg, self.rejections)
        self._session = WsSession(adapter.caps, cfg)
        self._wake = os.pipe()  # a finished snapshot wakes the idle wait
        os.set_blocking(self._wake[0], False)
        os.set_blocking(self._wake[1], False)
        self._fetcher = fetcher or SnapshotFetcher(cfg.rest_timeout_s, self._wake[1], budget)
        self.sync = BookSync(adapter, urls.rest_url, cfg, self._fetcher, self.tally,
                             book_bbo="bbo" not in cfg.channels, rejections=self.rejections,
                             rebuilt=self._guard.rebase)
        self._backoff = Backoff(cfg.ws_reconnect_delay_ms, cfg.ws_max_reconnect_delay_ms)
        # room kept free before each frame: one book event, a trades message, a DISCONNECTED per book
        self._reserve = self.sync.row_need + 64 + len(adapter.symbols)
        self._out = np.zeros(max(BATCH_ROWS, 4 * self._reserve), MARKET_DATA)
        self._books: list[BookMsg] = []
        self._recv: list[int] = []
        self._rows = self._attempts = self._next_connect_ns = 0
        self._drained = False

    @classmethod
    def build(cls, settings: Settings, venue_name: str, publisher: Publisher, stats: FeedStats,
              budget: Budget | None = None) -> FeedAgent:
        """The feed of one configured venue (ConfigError: no such venue, no symbols, channels it cannot
        subscribe); the one way every feed is assembled (procs.feed, the queue pipeline baseline)."""
        venue_cfg = settings.venues.get(venue_name)
        if venue_name not in FEEDS or venue_cfg is None:
            raise ConfigError(f"no feed for venue {venue_name!r}", "venues")
        symbols = InstrumentTable(settings.instruments).venue_symbols(VENUE_NAMES[venue_name])
        if not symbols:
            raise ConfigError(f"no instrument has a {venue_name} symbol", "instruments")
        try:
            adapter = FEEDS[venue_name](symbols, settings.feeds.channels)
            adapter.check_subscriptions()
        except ValueError as exc:
            raise ConfigError(str(exc), "feeds.channels") from exc
        return cls(adapter, venue_cfg.urls, settings.feeds, publisher, stats, budget=budget)

    def on_start(self) -> None:
        log.info("%s: %s (%d instruments, channels %s)", self.role, self._url, len(self._adapter.symbols),
                 ",".join(self._cfg.channels))

    def do_work(self) -> int:
        if not self._session.connected:
            return self._connect()
        frames = self._read()
        spliced = self.poll_books()
        self._drained = self._drained and not spliced  # a splice may have stopped short of room
        work = frames + spliced
        now = time.monotonic_ns()
        if self._session.connected:  # the read above may have dropped the connection
            self._keepalive(now)
        self._publish()
        self.stats.maybe_flush(now, self)
        return work

    def _keepalive(self, now_ns: int) -> None:
        try:
            reason = self._session.due(now_ns)
        except TRANSPORT_ERRORS as exc:
            reason = f"send failed: {exc!r}"
        if reason is not None:
            self._disconnect(reason, venue_asked=False)

    def poll_books(self) -> int:
        """Start due REST snapshots and splice finished ones; returns rows written."""
        if not self._adapter.wants_depth:
            return 0
        rows = self.sync.poll(self._out, self._rows, len(self._out) - self._rows, time.time_ns())
        self._rows += rows
        if self.sync.outbox and self._session.connected:
            self._resend()
        return rows

    def _resend(self) -> None:
        """Send the resubscriptions BookSync asked for (stream-seeded books); a failed send is a lost connection."""
        frames, self.sync.outbox = self.sync.outbox, []
        try:
            for frame in frames:
                self._session.send(frame)
        except TRANSPORT_ERRORS as exc:
            self._disconnect(f"send failed: {exc!r}", venue_asked=False)

    def _read(self) -> int:
        """Drain buffered frames into rows; stop early when the batch is nearly full."""
        session, ingest, limit, frames = self._session, self.ingest, len(self._out) - self._reserve, 0
        self._drained = False
        while frames < MAX_FRAMES and self._rows < limit:
            try:
                item = session.read()
            except FrameTooLarge as exc:
                self.rejections(VENUE_WIDE, FRAME_SIZE, str(exc))
                self._disconnect(f"frame_too_large: {exc}", venue_asked=False)
                break
            except TRANSPORT_ERRORS as exc:
                self._disconnect(f"transport: {exc!r}", venue_asked=False)
                break
            if item is None:
                self._drained = True
                break
            frames += 1
            if item[0] != TEXT:
                if self._control(item[0]):
                    break
            elif not ingest(item[1], session.last_rx_ns):
                break
        self.stats.frames += frames
        return frames

    def ingest(self, raw: bytes, rx_mono_ns: int) -> bool:
        """Hot path, one text frame: parse and validate rows, book messages through BookSync; False = reconnecting."""
        start, books = self._rows, self._books
        try:
            end = start + self._adapter.parse(raw, self._out, start, time.time_ns(), books)
        except Reconnect as exc:
            self._disconnect(f"venue asked: {exc}", venue_asked=True)
            return False
        except SKIPPED as exc:
            self.tally(_bad_kind(exc), f"{exc!r} | {raw[:120]!r}")
            end = start
        if end > start:
            self._rows = self._guard.rows(self._out, start, end)
        if books:
            self._rows += self._apply_books(self._out, books)
        if self._rows > start:
            self._recv.append(rx_mono_ns)
        return True

    def flush(self) -> None:
        """Publish the rows gathered so far as one ring batch."""
        self._publish()

    def _apply_books(self, out: np.ndarray, books: list[BookMsg]) -> int:
        rows, recv_ns, on_book = self._rows, time.time_ns(), self.sync.on_book
        for msg in books:
            rows += on_book(msg, out, rows, recv_ns)
        books.clear()
        return rows - self._rows

    def _control(self, opcode: int) -> bool:
        """Non-data frames; True when the connection is gone."""
        if opcode == CLOSE:
            self._disconnect("venue asked: close frame", venue_asked=True)
            return True
        if opcode == PING:
            self.stats.pings += 1
        elif opcode == PONG:
            self.stats.pongs += 1
        return False

    def _publish(self) -> None:
        rows = self._rows
        if not rows:
            return
        self._publisher.publish(self._out[:rows])
        self._rows = 0
        self.stats.published(rows, self._recv, time.monotonic_ns())
        self._recv.clear()

    def _connect(self) -> int:
        now = time.monotonic_ns()
        if now < self._next_connect_ns:
            return 0
        limit = self._cfg.ws_max_reconnect_attempts
        if limit and self._attempts > limit:
            raise FeedError(f"{self.role}: gave up after {limit} consecutive failed connection attempts")
        frames = self._adapter.subscribe_messages()
        try:
            self._session.open(self._url, frames, self._cfg.rest_timeout_s)
        except TRANSPORT_ERRORS as exc:
            self.stats.connect_failures += 1
            self.tally("connect_failed", f"{self._url}: {exc!r}")
            self._schedule(self._attempts + 1)
            return 0
        self.stats.connects += 1
        self._drained = False
        if self._adapter.wants_depth:
            self.sync.start()
        return 1

    def _disconnect(self, reason: str, venue_asked: bool) -> None:
        """Close, invalidate every book, and schedule the next attempt."""
        if not self._session.connected:
            return
        limit_ns = int(self._adapter.caps.session_limit_s * 1e9)
        age_ns = time.monotonic_ns() - self._session.opened_ns
        if limit_ns and age_ns >= limit_ns - min(SESSION_SLACK_NS, limit_ns // 100):
            venue_asked = True  # the venue's scheduled cut (Binance 24 h): reconnect at once
        self._session.close()
        self._rows += self.sync.stop(self._out, self._rows, time.time_ns())
        self.stats.disconnected(reason)
        if venue_asked:
            log.info("%s: %s; reconnecting", self.role, reason)
        else:
            self.tally("disconnect", reason)
        healthy = self._session.last_data_ns > self._session.opened_ns  # the session delivered data
        attempts = 0 if healthy else self._attempts
        self._schedule(attempts if venue_asked and healthy else attempts + 1)

    def _schedule(self, attempts: int) -> None:
        self._attempts = attempts
        self._next_connect_ns = time.monotonic_ns() + self._backoff.delay_ns(attempts)

    def idle(self, work: int) -> None:
        """Wait for the socket, a finished snapshot or the next timer, at most IDLE_MAX_S.

        A cycle that drained the socket waits at once: one more cycle would only find it empty,
        and on a busy box its CPU delays the processes this feed just woke.
        """
        if work and not self._drained:
            return
        now = time.monotonic_ns()
        if not self._session.connected:
            time.sleep(min(max(self._next_connect_ns - now, 0) / 1e9, IDLE_MAX_S))
            return
        timeout = min(max(self._session.next_deadline_ns() - now, 0) / 1e9, IDLE_MAX_S)
        if self._session.wait(timeout, self._wake[0]):
            os.read(self._wake[0], 4096)

    @property
    def pings_sent(self) -> int:
        return self._session.pings_sent

    def on_close(self) -> None:
        if self._session.connected:
            self._session.close()
            self._rows += self.sync.stop(self._out, self._rows, time.time_ns())
        self._publish()
        self.stats.maybe_flush(0, self, force=True)
        self.tally.flush()
        self._fetcher.close()
        for fd in self._wake:
            os.close(fd)
