"""One venue's REST rate-limit budget in shared memory, spent by every process that calls the venue.

The supervisor creates ``/<prefix>.ratelimit.<venue>`` next to the rings; feeds (snapshots) and the
gate's executors (orders, cancels, reconciliation, rules) attach and spend from it::

    0    preamble (kairos/ring/segment.py: magic KAIROSRL, version, creator pid, creator start)
    32   ban until ns (CLOCK_MONOTONIC) | 40 ban status (429/418) | 48 bans | 56 reserve per mille
    64   windows | 72 deferred (background calls given up) | 80 refused (essential calls refused)
    88   reported (venue usage corrections) | 96 background wait ms | ... HEADER_LENGTH 128
    128 + i * 64, one per window: limit | window ms | window id | used | spent | blocked until ns | over | late

Windows are fixed and aligned to the wall clock, as the venues count them (Binance: the clock
minute; OKX: 2 s per endpoint). A call spent in a window's last ``EDGE_MS`` (at most a tenth of the window)
may reach the venue in the next one: its weight (``late``) is counted in both, so a burst either side of the
boundary cannot pass the venue's count of the next window.

A spend is a read-modify-write of (window id, used) by several processes and threads, so it runs under a
threading lock plus ``flock`` on the segment's fd: Python has no compare-and-swap on shared memory, the
critical section is a few integer loads and stores beside a REST call of milliseconds, and the kernel drops a
flock whose holder is killed (a POSIX semaphore held by a kill -9'd process would stay taken).

ESSENTIAL calls may use the whole window; BACKGROUND ones stop ``reserve`` short of it, wait a
bounded time for the next window, then give up (counted ``deferred``). A 429 (Retry-After) or 418
ban, recorded here, stops every process calling the venue until it ends; OKX's 50011 blocks only
that endpoint. The venue's own usage report (``X-MBX-USED-WEIGHT-1M``) raises ``used`` to match.
"""

from __future__ import annotations

import fcntl
import itertools
import logging
import os
import struct
import threading
import time
from collections.abc import Mapping
from typing import Final

from kairos.errors import ExecutionError, RingLayoutError, RingNotFound
from kairos.ratelimit.table import Cost, Priority, VenueLimits
from kairos.ring.segment import MAGIC_OFFSET, PREAMBLE_LENGTH, VERSION_OFFSET, Segment, unlink

log = logging.getLogger(__name__)

MAGIC: Final = int.from_bytes(b"KAIROSRL", "little")
VERSION: Final = 2  # 2: a window's late weight (offset 56) is carried into the next
BAN_UNTIL_OFFSET: Final = PREAMBLE_LENGTH
BAN_STATUS_OFFSET: Final = BAN_UNTIL_OFFSET + 8
BANS_OFFSET: Final = BAN_STATUS_OFFSET + 8
RESERVE_OFFSET: Final = BANS_OFFSET + 8
WINDOWS_OFFSET: Final = RESERVE_OFFSET + 8
DEFERRED_OFFSET: Final = WINDOWS_OFFSET + 8
REFUSED_OFFSET: Final = DEFERRED_OFFSET + 8
REPORTED_OFFSET: Final = REFUSED_OFFSET + 8
WAIT_MS_OFFSET: Final = REPORTED_OFFSET + 8
HEADER_LENGTH: Final = 128
LIMIT: Final = 0
SPAN: Final = 8
WINDOW_ID: Final = 16
USED: Final = 24
SPENT: Final = 32
BLOCKED_UNTIL: Final = 40
OVER: Final = 48
LATE: Final = 56
WINDOW_LENGTH: Final = 64
EDGE_MS: Final = 100
_WINDOW: Final = struct.Struct("<6q")  # limit, window ms, window id, used, spent, blocked until ns
_SPEND: Final = struct.Struct("<3q")  # window id, used, spent
_I64: Final = struct.Struct("<q")
_local_ids = itertools.count()


class RateDeferred(ExecutionError):
    """A call found no budget within its wait, so nothing was sent: try again after ``wait_s``. An
    ExecutionError, so callers that handle a failed venue call handle this too."""

    def __init__(self, venue: str, wait_s: float) -> None:
        super().__init__(f"{venue}: rate budget low, deferred {wait_s:.1f}s")
        self.wait_s = wait_s


def segment_name(prefix: str, venue: str) -> str:
    return f"/{prefix}.ratelimit.{venue}"


class Budget:
    """A venue's shared budget; thread- and process-safe. ``limits`` gives call costs (not the limits:
    those live in the segment, written by its creator)."""

    __slots__ = ("_locked", "_seg", "limits")

    def __init__(self, seg: Segment, limits: VenueLimits) -> None:
        self._seg = seg
        self._locked = _BothLocks(seg.fd)
        self.limits = limits

    @classmethod
    def create(cls, prefix: str, limits: VenueLimits, reserve_pct: float, wait_s: float) -> Budget:
        """A fresh budget (a dead creator's leftover is reclaimed); live once its magic is written."""
        seg = Segment.create(segment_name(prefix, limits.venue), _size(limits))
        return cls._init(seg, limits, reserve_pct, wait_s)

    @classmethod
    def local(cls, limits: VenueLimits, reserve_pct: float, wait_s: float) -> Budget:
        """A budget for this process only (a tool or test without an engine): same code, name unlinked at once."""
        name = f"/kairos-local.ratelimit.{limits.venue}.{os.getpid()}.{next(_local_ids)}"
        budget = cls._init(Segment.create(name, _size(limits)), limits, reserve_pct, wait_s)
        unlink(name)
        return budget

    @classmethod
    def _init(cls, seg: Segment, limits: VenueLimits, reserve_pct: float, wait_s: float) -> Budget:
        seg.write_i64(RESERVE_OFFSET, round(reserve_pct * 10))
        seg.write_i64(WAIT_MS_OFFSET, round(wait_s * 1000))
        seg.write_i64(WINDOWS_OFFSET, len(limits.windows))
        for i, window in enumerate(limits.windows):
            seg.write_i64(_at(i, LIMIT), window.limit)
            seg.write_i64(_at(i, SPAN), window.window_ms)
        seg.publish_magic(MAGIC, VERSION)
        return cls(seg, limits)

    @classmethod
    def attach(cls, prefix: str, limits: VenueLimits) -> Budget:
        """Map the supervisor's budget; RingNotFound if absent or not live yet, RingLayoutError if it is
        another layout."""
        seg = Segment.open(segment_name(prefix, limits.venue))
        if seg.size < HEADER_LENGTH or seg.read_i64(MAGIC_OFFSET) == 0:
            seg.close()
            raise RingNotFound(f"rate budget {seg.name} exists but is not initialised yet")
        found = (seg.read_i64(MAGIC_OFFSET), seg.read_i64(VERSION_OFFSET), seg.read_i64(WINDOWS_OFFSET))
        if seg.size < _size(limits) or found != (MAGIC, VERSION, len(limits.windows)):
            seg.close()
            raise RingLayoutError(f"{seg.name}: (magic, version, windows) {found}, expected "
                                  f"{(MAGIC, VERSION, len(limits.windows))}")
        return cls(seg, limits)

    @staticmethod
    def unlink(prefix: str, venue: str) -> bool:
        return unlink(segment_name(prefix, venue))

    def close(self) -> None:
        self._seg.close()

    # -- spending --------------------------------------------------------------------------------

    def try_spend(self, cost: Cost) -> float:
        """Spend ``cost`` now if the budget allows: 0.0; else the seconds until it might (nothing spent). On the
        order path: the window is read in one unpack and written in one pack, under both locks."""
        buf, base = self._seg.buf, _at(cost.window, 0)
        now_ms = time.time_ns() // 1_000_000
        with self._locked:
            limit, span, wid_seen, used, spent, blocked_until = _WINDOW.unpack_from(buf, base)
            ban_until, reserve = _I64.unpack_from(buf, BAN_UNTIL_OFFSET)[0], _I64.unpack_from(buf, RESERVE_OFFSET)[0]
            mono = time.monotonic_ns()
            if ban_until > mono or blocked_until > mono:
                return (max(ban_until, blocked_until) - mono) / 1e9
            wid = now_ms // span
            if wid_seen != wid:  # rolled over: the last window's late weight is this one's start
                used = _I64.unpack_from(buf, base + LATE)[0] if wid == wid_seen + 1 else 0
                _I64.pack_into(buf, base + LATE, 0)
            cap = limit if cost.priority is Priority.ESSENTIAL else limit - limit * reserve // 1000
            if used + cost.weight > cap:
                _SPEND.pack_into(buf, base + WINDOW_ID, wid, used, spent)
                return ((wid + 1) * span - now_ms) / 1000
            _SPEND.pack_into(buf, base + WINDOW_ID, wid, used + cost.weight, spent + cost.weight)
            if (wid + 1) * span - now_ms <= min(EDGE_MS, span // 10):
                _I64.pack_into(buf, base + LATE, _I64.unpack_from(buf, base + LATE)[0] + cost.weight)
        return 0.0

    def acquire(self, cost: Cost, wait_s: float | None = None, stop: threading.Event | None = None) -> float:
        """Spend ``cost``, waiting at most ``wait_s`` for room (default: not at all for ESSENTIAL, the budget's
        background wait for BACKGROUND): 0.0 when spent, else the seconds it would still have to wait (counted:
        deferred if BACKGROUND, refused if ESSENTIAL)."""
        if wait_s is None:
            wait_s = 0.0 if cost.priority is Priority.ESSENTIAL else self._seg.read_i64(WAIT_MS_OFFSET) / 1000
        deadline = time.monotonic() + wait_s
        while True:
            left = self.try_spend(cost)
            if left == 0.0:
                return 0.0
            if time.monotonic() + left > deadline or (stop is not None and stop.wait(left)):
                self._add(DEFERRED_OFFSET if cost.priority is Priority.BACKGROUND else REFUSED_OFFSET, 1)
                return left
            if stop is None:
                time.sleep(left)

    def pay(self, method: str, url: str) -> Cost:
        """Spend for one call (``url`` with its query), waiting as `acquire` does; RateDeferred if it cannot."""
        cost = self.limits.cost(method, url)
        short_s = self.acquire(cost)
        if short_s:
            raise RateDeferred(self.limits.venue, short_s)
        return cost

    # -- what the venue said ---------------------------------------------------------------------

    def answered(self, cost: Cost, status: int, headers: Mapping[str, str], default_retry_s: float) -> None:
        """Correct the budget from one HTTP answer: the usage header, and a 429/418 with its Retry-After."""
        self.note_usage(headers)
        if status in (418, 429):
            self.penalise(cost, status, retry_after_s(headers, default_retry_s))

    def note_usage(self, headers: Mapping[str, str]) -> None:
        """The venue's usage header on any answer (``headers`` case-insensitive, as requests gives them)."""
        raw = headers.get(self.limits.usage_header, "") if self.limits.usage_header else ""
        if raw.isdigit():
            self.report_venue_count(int(raw))

    def report_venue_count(self, used: int) -> None:
        """The venue's own count of its first window (Binance REQUEST_WEIGHT: the usage header, WS API
        ``rateLimits``), from any process or stream."""
        self.report_used(0, used)

    def penalise(self, cost: Cost, status: int, retry_after_s: float) -> None:
        """The venue refused for rate: a 418, or a 429 where limits are per IP, bans the whole venue; a
        per-endpoint limit (OKX 50011) blocks that endpoint only."""
        if self.limits.per_endpoint and status != 418:
            self._block(_at(cost.window, BLOCKED_UNTIL), retry_after_s, _at(cost.window, OVER))
            return
        self._block(BAN_UNTIL_OFFSET, retry_after_s, BANS_OFFSET)
        self._seg.write_i64(BAN_STATUS_OFFSET, status)
        log.warning("%s: HTTP %d, every process stops calling it for %.1fs", self.limits.venue, status, retry_after_s)

    def report_used(self, window: int, used: int) -> None:
        """The venue's count for the current window: never believe ours is lower. Within a window our count only
        grows, so one read without the locks that already covers the venue's skips them (every order's reply)."""
        seg, base = self._seg, _at(window, 0)
        wid = time.time_ns() // 1_000_000 // seg.read_i64(base + SPAN)
        if seg.read_i64(base + WINDOW_ID) == wid and used <= seg.read_i64(base + USED):
            return
        with self._locked:
            mine = seg.read_i64(base + USED) if seg.read_i64(base + WINDOW_ID) == wid else 0
            if used > mine:
                if seg.read_i64(base + WINDOW_ID) != wid:
                    seg.write_i64(base + LATE, 0)
                seg.write_i64(base + WINDOW_ID, wid)
                seg.write_i64(base + USED, used)
                seg.write_i64(REPORTED_OFFSET, seg.read_i64(REPORTED_OFFSET) + 1)

    def lower_limit(self, window: int, limit: int) -> None:
        """The venue announced a lower limit (exchangeInfo ``rateLimits``): every process keeps to it."""
        with self._locked:
            if 0 < limit < self._seg.read_i64(_at(window, LIMIT)):
                self._seg.write_i64(_at(window, LIMIT), limit)

    # -- reading ---------------------------------------------------------------------------------

    def banned_s(self) -> float:
        """Seconds until the venue-wide ban ends (0 when none)."""
        return max(0, self._seg.read_i64(BAN_UNTIL_OFFSET) - time.monotonic_ns()) / 1e9

    def blocked_s(self, cost: Cost) -> float:
        """Seconds until the venue-wide ban, or this call's endpoint block (OKX 50011), ends (0 when none)."""
        until = max(self._seg.read_i64(BAN_UNTIL_OFFSET), self._seg.read_i64(_at(cost.window, BLOCKED_UNTIL)))
        return max(0, until - time.monotonic_ns()) / 1e9

    def limit(self, window: int) -> int:
        return self._seg.read_i64(_at(window, LIMIT))

    def used(self, window: int) -> int:
        """Weight counted in the window now current (once it rolled over: what the last one spent late)."""
        seg, base = self._seg, _at(window, 0)
        seen, wid = seg.read_i64(base + WINDOW_ID), time.time_ns() // 1_000_000 // seg.read_i64(base + SPAN)
        if seen == wid:
            return seg.read_i64(base + USED)
        return seg.read_i64(base + LATE) if wid == seen + 1 else 0

    def stats(self) -> dict[str, int]:
        """Counters for the status board: the ban (seconds left, its HTTP status), bans, deferrals."""
        seg = self._seg
        banned = self.banned_s()
        return {"ban_s": int(banned + 0.999), "ban_status": seg.read_i64(BAN_STATUS_OFFSET) if banned else 0,
                "bans": seg.read_i64(BANS_OFFSET), "deferred": seg.read_i64(DEFERRED_OFFSET),
                "refused": seg.read_i64(REFUSED_OFFSET),
                "over": sum(seg.read_i64(_at(i, OVER)) for i in range(len(self.limits.windows)))}

    # -- plumbing --------------------------------------------------------------------------------

    def _add(self, offset: int, n: int) -> None:
        with self._locked:
            self._seg.write_i64(offset, self._seg.read_i64(offset) + n)

    def _block(self, until_offset: int, seconds: float, count_offset: int) -> None:
        """Extend (never shorten) a quiet period, and count it."""
        until = time.monotonic_ns() + int(seconds * 1e9)
        with self._locked:
            self._seg.write_i64(until_offset, max(self._seg.read_i64(until_offset), until))
            self._seg.write_i64(count_offset, self._seg.read_i64(count_offset) + 1)


class _BothLocks:
    """Threads of this process (a lock), then other processes (``flock`` on the segment: the kernel drops it if
    its holder dies). A plain class: a generator context manager costs a few µs more per order."""

    __slots__ = ("_fd", "_lock")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        self._lock.acquire()
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._lock.release()


def retry_after_s(headers: Mapping[str, str], default_s: float) -> float:
    """The Retry-After header in seconds (delta form), or ``default_s`` if absent or unreadable."""
    raw = headers.get("Retry-After", "")
    try:
        return max(float(raw), 0.0) if raw else default_s
    except ValueError:
        return default_s


def _at(window: int, field: int) -> int:
    return HEADER_LENGTH + window * WINDOW_LENGTH + field


def _size(limits: VenueLimits) -> int:
    return HEADER_LENGTH + len(limits.windows) * WINDOW_LENGTH
