"""Order-book synchronisation for every instrument of one feed: buffer, snapshot, splice, live, resync.

Per instrument (one `_Track`)::

    IDLE --connect--> AWAIT --snapshot spliced--> LIVE --gap / desync--> AWAIT (STATUS RESYNCING)
      ^                 | in-stream snapshot (OKX) ---^                     |
      +----disconnect (STATUS DISCONNECTED)------------------------------------+

AWAIT buffers book messages and asks REST for a snapshot once the first one is buffered (Binance's
documented order). A snapshot valid at id S is spliced by dropping buffered messages with
``last <= S``; the first kept one must satisfy ``first <= S + 1 <= last`` (else the snapshot is too
old: fetch again). From then on every message must continue the chain, ``first == last + 1``;
anything else resyncs only that book. So does a desync (feeds/validate.py): a bad level, a bad book
message, or a top that is one-sided, crossed or jumped after an update; none of it is published.
A snapshot that is empty on a side, crossed or has a bad level fails like a failed fetch (the
buffer is kept for the next one). Snapshot failures retry with backoff; after
``feeds.snapshot_retries`` consecutive failures `BookSyncError` ends the process (the supervisor
restarts it). A snapshot the venue's shared rate budget defers (kairos/ratelimit: snapshots are
BACKGROUND calls) is no failure: it is asked again when the budget has room (``rate_deferred``).
A venue whose books only its stream can seed (``FeedCaps.stream_snapshots``: Bybit) is resubscribed
instead: the frames go to ``outbox`` for the connection to send, and the book waits for the snapshot
that answers them (asked again after a backoff step, failing like a fetch after ``snapshot_retries``).
Book records (STATUS, DEPTH bursts, book BBO) are written into the caller's array.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from enum import IntEnum
from typing import Final, Protocol
from urllib.parse import urlencode

import numpy as np
import requests

from kairos.config import FeedConfig
from kairos.errors import BookSyncError, ProtocolError
from kairos.feeds.base import BAD_INPUT, RECORD, UNSEQUENCED, Backoff, BookMsg, FeedAdapter, Snapshot
from kairos.feeds.book import BAD_LEVEL, L2Book
from kairos.feeds.validate import CROSSED, EMPTY_BOOK, INVALID_LEVEL, JUMP, REASONS, Rejections, book_problem, shape
from kairos.logs import ErrorTally
from kairos.ratelimit.budget import Budget, RateDeferred
from kairos.records import BookStatus, Kind

log = logging.getLogger(__name__)

MAX_BUFFER: Final = 10_000
STREAM_SNAPSHOT_WAIT_NS: Final = 2_000_000_000  # a resubscribed book waits this long for its snapshot
RETRY_S: Final = 5.0  # a 429/418 without Retry-After: quiet this long
_STATUS: Final = int(Kind.STATUS)


class State(IntEnum):
    IDLE = 0
    AWAIT = 1
    LIVE = 2


class _Track:
    __slots__ = ("book", "bridging", "buffer", "future", "last", "next_try_ns", "ref", "resyncs", "retries", "state",
                 "symbol", "top")

    def __init__(self, book: L2Book, symbol: str) -> None:
        self.book = book
        self.symbol = symbol
        self.state = State.IDLE
        self.last = UNSEQUENCED
        self.bridging = False
        self.buffer: list[BookMsg] = []
        self.future: Future[bytes] | None = None
        self.retries = 0
        self.next_try_ns = 0
        self.top = (0.0, 0.0, 0.0, 0.0)
        self.resyncs = 0  # this book's share of counts["resyncs"] (board: resyncs.<symbol>)
        self.ref = 0  # best bid key + best ask key when last published (0: none since the last snapshot)


class Fetcher(Protocol):
    """Where snapshot bodies come from (REST in production)."""

    def fetch(self, url: str, params: dict[str, str]) -> Future[bytes]: ...

    def close(self) -> None: ...


class SnapshotFetcher:
    """REST snapshots on worker threads, so a slow venue never stalls the socket loop. With a ``budget`` each
    one is paid for as BACKGROUND (a bounded wait for room, else RateDeferred) and its answer corrects it."""

    __slots__ = ("_budget", "_pool", "_session", "_timeout_s", "_wake_fd")

    def __init__(self, timeout_s: float, wake_fd: int = -1, budget: Budget | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="snapshot")
        self._session = requests.Session()
        self._timeout_s = timeout_s
        self._wake_fd = wake_fd
        self._budget = budget

    def fetch(self, url: str, params: dict[str, str]) -> Future[bytes]:
        future = self._pool.submit(self._get, url, params)
        if self._wake_fd >= 0:
            future.add_done_callback(self._wake)
        return future

    def _wake(self, _: Future[bytes]) -> None:
        with contextlib.suppress(OSError):  # pipe full (already awake) or closed at shutdown
            os.write(self._wake_fd, b"\0")

    def _get(self, url: str, params: dict[str, str]) -> bytes:
        budget = self._budget
        cost = budget.pay("GET", f"{url}?{urlencode(params)}") if budget else None
        response = self._session.get(url, params=params, timeout=self._timeout_s)
        if budget is not None and cost is not None:
            budget.answered(cost, response.status_code, response.headers, RETRY_S)
        if response.status_code >= 400:
            raise ProtocolError(f"HTTP {response.status_code}: {response.content[:200]!r}")
        return response.content

    def close(self) -> None:
        self._wake_fd = -1  # the owner closes the pipe next; late callbacks must not write to a reused fd
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._session.close()
        if self._budget is not None:
            self._budget.close()


Rebuilt = Callable[[int, float, float], None]
"""Told (instrument, best bid, best ask) whenever a book was seeded from a snapshot."""


class BookSync:
    __slots__ = (
        "_adapter",
        "_awaiting",
        "_backoff",
        "_book_bbo",
        "_fetcher",
        "_jump_bps",
        "_max_levels",
        "_rebuilt",
        "_reject",
        "_rest_url",
        "_retries",
        "_stream_snapshots",
        "_tally",
        "counts",
        "outbox",
        "row_need",
        "tracks",
    )

    def __init__(self, adapter: FeedAdapter, rest_url: str, cfg: FeedConfig, fetcher: Fetcher,
                 tally: ErrorTally, book_bbo: bool, rejections: Rejections | None = None,
                 rebuilt: Rebuilt | None = None) -> None:
        self._adapter = adapter
        self._rest_url = rest_url
        self._fetcher = fetcher
        self._tally = tally
        self._book_bbo = book_bbo
        self._retries = cfg.snapshot_retries
        self._backoff = Backoff(cfg.ws_reconnect_delay_ms, cfg.ws_max_reconnect_delay_ms)
        self._reject = rejections or Rejections(tally, {i: s for s, i in adapter.symbols.items()})
        self._rebuilt = rebuilt
        self._jump_bps = cfg.max_jump_bps
        self._max_levels = cfg.max_levels
        self._stream_snapshots = adapter.caps.stream_snapshots
        self.outbox: list[bytes] = []
        """Frames the connection must send (resubscriptions of stream-seeded books)."""
        venue = int(adapter.venue)
        self.tracks = {i: _Track(L2Book(i, venue, cfg.depth_levels, cfg.max_price, cfg.max_qty), s)
                       for s, i in adapter.symbols.items()}
        self._awaiting: set[int] = set()
        self.row_need = cfg.depth_levels + 3
        """Rows one book event may write (STATUS + DEPTH burst + BBO); callers keep that much room."""
        self.counts = {"gaps": 0, "resyncs": 0, "snapshots": 0, "rest_requests": 0, "snapshot_failures": 0,
                       "stale_dropped": 0, "crossed": 0, "unsequenced_dropped": 0, "rate_deferred": 0,
                       "resubscribes": 0}

    # -- connection edges ------------------------------------------------------------------------
    def start(self) -> None:
        """A new connection: every book waits for data and a snapshot."""
        for instrument, track in self.tracks.items():
            track.state, track.buffer, track.future, track.retries = State.AWAIT, [], None, 0
            self._awaiting.add(instrument)
        self.outbox.clear()  # a new connection subscribes afresh

    def stop(self, out: np.ndarray, at: int, recv_ns: int) -> int:
        """Connection lost: every book that was not idle is invalidated (STATUS DISCONNECTED)."""
        n = 0
        for track in self.tracks.values():
            if track.state != State.IDLE:
                n += _status(out, at + n, track, BookStatus.DISCONNECTED, recv_ns)
            track.state, track.buffer, track.future, track.last = State.IDLE, [], None, UNSEQUENCED
            track.book.clear()
        self._awaiting.clear()
        return n

    # -- stream ----------------------------------------------------------------------------------
    def on_book(self, msg: BookMsg, out: np.ndarray, at: int, recv_ns: int) -> int:
        """Hot path: one book message; returns rows written."""
        track = self.tracks[msg.instrument]
        problem = book_problem(msg, self._max_levels)
        if problem is not None:
            self._reject(msg.instrument, problem, f"{track.symbol}: {shape(msg)}")
            return self._resync(track, [], out, at, recv_ns) if track.state == State.LIVE else 0
        if msg.snapshot:
            return self._load(track, Snapshot(msg.last, msg.ts_exchange_ns, msg.bids, msg.asks), out, at, recv_ns)
        if track.state == State.LIVE:
            if msg.first == track.last + 1 or msg.first == UNSEQUENCED:
                return self._apply(track, msg, out, at, recv_ns)
            return self._bridge(track, msg, out, at, recv_ns)
        if track.state == State.AWAIT:
            if msg.first == UNSEQUENCED:
                self.counts["unsequenced_dropped"] += 1
            else:
                _append(track.buffer, msg)
        return 0

    def _bridge(self, track: _Track, msg: BookMsg, out: np.ndarray, at: int, recv_ns: int) -> int:
        if track.bridging and msg.last <= track.last:
            self.counts["stale_dropped"] += 1
            return 0
        if track.bridging and msg.first <= track.last + 1:
            return self._apply(track, msg, out, at, recv_ns)
        self.counts["gaps"] += 1
        self._tally("book_gap", f"expected first {track.last + 1}, got {msg.first}..{msg.last}", key=track.symbol)
        return self._resync(track, [msg], out, at, recv_ns)

    def _apply(self, track: _Track, msg: BookMsg, out: np.ndarray, at: int, recv_ns: int) -> int:
        try:
            changed = track.book.apply(msg.bids, msg.asks)
        except BAD_LEVEL as exc:
            self._reject(track.book.instrument, INVALID_LEVEL, f"{track.symbol}: {exc}")
            return self._resync(track, [], out, at, recv_ns)
        track.last, track.bridging = msg.last, False
        if not changed:
            return 0
        problem = self._top_problem(track, True)
        if problem is not None:
            self._reject(track.book.instrument, problem, f"{track.symbol}: top {track.book.top()} after {msg.last}")
            return self._resync(track, [], out, at, recv_ns)
        return self._publish(track, msg.ts_exchange_ns, recv_ns, out, at)

    def _top_problem(self, track: _Track, jump: bool) -> str | None:
        """A one-sided, crossed or (``jump``) jumped top is a desync, never published; else the new reference."""
        bids, asks = track.book.bid_ranks, track.book.ask_ranks
        if not bids or not asks:
            return EMPTY_BOOK
        bid, ask = -bids[0], asks[0]
        if bid >= ask:
            self.counts["crossed"] += 1
            return CROSSED
        ref = track.ref
        if jump and ref and abs(bid + ask - ref) * 10_000 > ref * self._jump_bps:
            return JUMP
        track.ref = bid + ask
        return None

    def _publish(self, track: _Track, ts_exchange_ns: int, recv_ns: int, out: np.ndarray, at: int) -> int:
        book, seq = track.book, max(track.last, 0)
        n = book.write_depth(out, at, ts_exchange_ns, recv_ns, seq)
        if self._book_bbo:
            top = book.top()
            if top != track.top:
                track.top = top
                n += book.write_bbo(out, at + n, ts_exchange_ns, recv_ns, seq)
        return n

    def _resync(self, track: _Track, keep: list[BookMsg], out: np.ndarray, at: int, recv_ns: int) -> int:
        """Invalidate one book and start over from a new snapshot (other books are untouched)."""
        self.counts["resyncs"] += 1
        track.resyncs += 1
        track.book.clear()
        track.state, track.buffer, track.future, track.top = State.AWAIT, keep, None, (0.0, 0.0, 0.0, 0.0)
        track.ref = 0
        self._awaiting.add(track.book.instrument)
        return _status(out, at, track, BookStatus.RESYNCING, recv_ns)

    # -- snapshots -------------------------------------------------------------------------------
    def poll(self, out: np.ndarray, at: int, room: int, recv_ns: int) -> int:
        """Start due snapshot requests and splice finished ones; writes at most ``room`` rows."""
        n, need, now = 0, self.row_need, time.monotonic_ns()
        for instrument in list(self._awaiting):
            track = self.tracks[instrument]
            if track.future is None:
                if track.buffer and now >= track.next_try_ns:
                    self._ask(track, now)
            elif track.future.done() and room - n >= need:
                n += self._finish(track, out, at + n, recv_ns)
        return n

    def _ask(self, track: _Track, now: int) -> None:
        """Ask for a snapshot: over REST, or by resubscribing a stream-seeded book (answered in the stream)."""
        if not self._stream_snapshots:
            request = self._adapter.snapshot_request(self._rest_url, track.symbol)
            track.future = self._fetcher.fetch(request.url, request.params)
            self.counts["rest_requests"] += 1
            return
        if track.retries >= self._retries:
            raise BookSyncError(f"{track.symbol}: no snapshot after {track.retries} resubscriptions")
        track.retries += 1
        self.outbox.extend(self._adapter.resubscribe_messages(track.symbol))
        self.counts["resubscribes"] += 1
        track.next_try_ns = now + max(self._backoff.delay_ns(track.retries), STREAM_SNAPSHOT_WAIT_NS)

    def _finish(self, track: _Track, out: np.ndarray, at: int, recv_ns: int) -> int:
        future, track.future = track.future, None
        try:
            snapshot = self._adapter.parse_snapshot(future.result())  # type: ignore[union-attr]
        except RateDeferred as exc:  # not a failure: the shared budget is saving room for orders
            self.counts["rate_deferred"] += 1
            track.next_try_ns = time.monotonic_ns() + int(exc.wait_s * 1e9)
            return 0
        except (requests.RequestException, ProtocolError, *BAD_INPUT) as exc:
            return self._failed(track, "snapshot_failed", repr(exc))
        problem = book_problem(BookMsg(track.book.instrument, 0, *snapshot, True), self._max_levels)
        if problem is not None:
            return self._failed(track, problem, f"{track.symbol}: snapshot {snapshot.last!r:.40}")
        first = next((m for m in track.buffer if m.last > snapshot.last), None)
        if first is not None and first.first > snapshot.last + 1:
            return self._failed(track, "snapshot_too_old", f"{track.symbol}: {snapshot.last} < {first.first - 1}")
        return self._load(track, snapshot, out, at, recv_ns)

    def _load(self, track: _Track, snap: Snapshot, out: np.ndarray, at: int, recv_ns: int) -> int:
        """Seed from a snapshot, replay what was buffered after it, publish SYNCED + the book."""
        problem = self._seed(track, snap)
        if problem is not None:  # the snapshot alone is unusable: the buffer stays for the next one
            return self._unusable(track, *problem, out, at, recv_ns)
        buffered, track.buffer = [m for m in track.buffer if m.last > snap.last], []
        ts = snap.ts_exchange_ns
        for index, msg in enumerate(buffered):
            if not (msg.first <= track.last + 1 if track.bridging else msg.first == track.last + 1):
                self.counts["gaps"] += 1
                return self._resync(track, buffered[index:], out, at, recv_ns)
            try:
                track.book.apply(msg.bids, msg.asks)
            except BAD_LEVEL as exc:
                self._reject(track.book.instrument, INVALID_LEVEL, f"{track.symbol}: {exc}")
                return self._resync(track, [], out, at, recv_ns)
            track.last, track.bridging, ts = msg.last, False, msg.ts_exchange_ns
        problem = self._top_problem(track, False)
        if problem is not None:  # what was buffered broke it
            return self._unusable(track, problem, f"{track.symbol}: top {track.book.top()} at {track.last}", out, at,
                                  recv_ns)
        return self._synced(track, ts, out, at, recv_ns)

    def _seed(self, track: _Track, snap: Snapshot) -> tuple[str, str] | None:
        """Load the snapshot; (reason, detail) when it has a bad level or an empty or crossed top."""
        try:
            track.book.load(snap.bids, snap.asks)
        except BAD_LEVEL as exc:
            return INVALID_LEVEL, f"{track.symbol}: snapshot {exc}"
        track.last, track.bridging, track.ref = snap.last, True, 0
        problem = self._top_problem(track, False)
        return None if problem is None else (problem, f"{track.symbol}: snapshot top {track.book.top()}")

    def _synced(self, track: _Track, ts_exchange_ns: int, out: np.ndarray, at: int, recv_ns: int) -> int:
        track.state, track.retries = State.LIVE, 0
        self._awaiting.discard(track.book.instrument)
        self.counts["snapshots"] += 1
        if self._rebuilt is not None:
            bid, _, ask, _ = track.book.top()
            self._rebuilt(track.book.instrument, bid, ask)
        n = _status(out, at, track, BookStatus.SYNCED, recv_ns)
        return n + self._publish(track, ts_exchange_ns, recv_ns, out, at + n)

    def _unusable(self, track: _Track, kind: str, detail: str, out: np.ndarray, at: int, recv_ns: int) -> int:
        """A snapshot that cannot seed the book: a LIVE book is invalidated, and the snapshot retried."""
        n = self._resync(track, [], out, at, recv_ns) if track.state == State.LIVE else 0
        track.book.clear()
        return n + self._failed(track, kind, detail)

    def _failed(self, track: _Track, kind: str, detail: str) -> int:
        self.counts["snapshot_failures"] += 1
        if kind in REASONS:
            self._reject(track.book.instrument, kind, detail)
        else:
            self._tally(kind, detail, key=track.symbol)
        track.retries += 1
        if track.retries > self._retries:
            raise BookSyncError(f"{track.symbol}: no usable snapshot after {self._retries} retries ({kind})")
        track.next_try_ns = time.monotonic_ns() + self._backoff.delay_ns(track.retries)
        return 0


def _append(buffer: list[BookMsg], msg: BookMsg) -> None:
    if len(buffer) >= MAX_BUFFER:
        del buffer[0]  # the splice will find the snapshot too old and fetch again
    buffer.append(msg)


def _status(out: np.ndarray, at: int, track: _Track, status: BookStatus, recv_ns: int) -> int:
    RECORD.pack_into(out, at << 6, 0, recv_ns, max(track.last, 0), 0.0, 0.0, 0.0, 0.0,
                     track.book.instrument, track.book.venue, _STATUS, int(status))
    return 1
