"""The status board: one shared-memory row per process role, written only by that process.

Aeron's ``consumerHeartbeatTime`` idea: every process stamps its heartbeat (time.monotonic_ns),
state and counters into its row; the supervisor and tools read all rows without asking anyone.
A restarted role gets its old row back (same role -> same row), reset for the new process::

    HEADER (128 B)  magic | version | creator pid | creator start | rows | row length
                    | counters per row | histograms per row | buckets        (i64 each)
    ROW r at HEADER_LENGTH + r * ROW_LENGTH
      0 role (32 B, written last at claim: a row is visible once it has a role)
     32 pid | 40 pid start ticks | 48 state (ProcState) | 56 start ns | 64 heartbeat ns
    128 counter names   COUNTERS x NAME_LENGTH      | counter values     COUNTERS x u64
        histogram names HISTOGRAMS x NAME_LENGTH    | histogram buckets  HISTOGRAMS x BUCKETS x u64

Histogram bucket b counts values v with v.bit_length() == b (bucket 0: v <= 0): log2 buckets,
so quantiles are estimates within a factor of two, interpolated linearly inside the bucket.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

import numpy as np

from kairos.errors import RingError
from kairos.records import ProcState
from kairos.ring.segment import (
    MAGIC_OFFSET,
    PREAMBLE_LENGTH,
    VERSION_OFFSET,
    Segment,
    held_by_other,
    owner_alive,
    self_identity,
    unlink,
)

MAGIC: Final = int.from_bytes(b"KAIROSSB", "little")
VERSION: Final = 1
ROWS: Final = 32
NAME_LENGTH: Final = 32
COUNTERS: Final = 32
HISTOGRAMS: Final = 8
BUCKETS: Final = 64
QUANTILES: Final = (("p50", 0.5), ("p99", 0.99), ("p999", 0.999))

HEADER_LENGTH: Final = 128
PID_OFFSET: Final = 32
PID_START_OFFSET: Final = 40
STATE_OFFSET: Final = 48
START_NS_OFFSET: Final = 56
HEARTBEAT_OFFSET: Final = 64
COUNTER_NAMES_OFFSET: Final = 128
COUNTER_VALUES_OFFSET: Final = COUNTER_NAMES_OFFSET + COUNTERS * NAME_LENGTH
HISTOGRAM_NAMES_OFFSET: Final = COUNTER_VALUES_OFFSET + COUNTERS * 8
HISTOGRAM_BUCKETS_OFFSET: Final = HISTOGRAM_NAMES_OFFSET + HISTOGRAMS * NAME_LENGTH
ROW_LENGTH: Final = HISTOGRAM_BUCKETS_OFFSET + HISTOGRAMS * BUCKETS * 8
SIZE: Final = HEADER_LENGTH + ROWS * ROW_LENGTH
_GEOMETRY: Final = (ROWS, ROW_LENGTH, COUNTERS, HISTOGRAMS, BUCKETS)


def segment_name(prefix: str) -> str:
    return f"/{prefix}.status"


def quantile(buckets: np.ndarray, q: float) -> float:
    """Estimate the q-quantile from log2 bucket counts (0.0 when empty)."""
    total = int(buckets.sum())
    if not total:
        return 0.0
    rank = q * total
    cumulative = np.cumsum(buckets)
    b = int(np.searchsorted(cumulative, rank, side="left"))
    if b == 0:
        return 0.0
    below = int(cumulative[b - 1])
    lo = float(1 << (b - 1))
    return lo + lo * (rank - below) / int(buckets[b])


def log2_counts(values: np.ndarray) -> np.ndarray:
    """Per-bucket counts of a batch of ns values (bucket = bit length, the last one open-ended)."""
    exponents = np.frexp(np.maximum(values, 0).astype(np.float64))[1]
    return np.bincount(np.minimum(exponents, BUCKETS - 1), minlength=BUCKETS).astype(np.uint64)


def _name(raw: np.ndarray) -> str:
    return bytes(raw).rstrip(b"\0").decode()


class Counter:
    """A named u64 in the owner's row. ``add`` is one read-modify-write (single writer)."""

    __slots__ = ("_i", "_v", "name")

    def __init__(self, view: memoryview, index: int, name: str) -> None:
        self._v, self._i, self.name = view, index, name

    def add(self, n: int = 1) -> None:
        self._v[self._i] += n

    def set(self, value: int) -> None:
        self._v[self._i] = value

    @property
    def value(self) -> int:
        return self._v[self._i]


class Histogram:
    """Log2-bucket latency histogram in the owner's row."""

    __slots__ = ("_base", "_buckets", "_v", "name")

    def __init__(self, view: memoryview, index: int, buckets: np.ndarray, name: str) -> None:
        self._v, self._base, self._buckets, self.name = view, index, buckets, name

    def record(self, ns: int) -> None:
        b = ns.bit_length() if ns > 0 else 0
        self._v[self._base + (b if b < BUCKETS else BUCKETS - 1)] += 1

    def record_many(self, values: np.ndarray) -> None:
        """Record a batch (e.g. a column of latencies) with numpy, no per-value Python."""
        self._buckets += log2_counts(values)

    def quantile(self, q: float) -> float:
        return quantile(self._buckets, q)

    @property
    def count(self) -> int:
        return int(self._buckets.sum())


class Slot:
    """One process's row: heartbeat, state, counters and histograms (see module docstring)."""

    __slots__ = ("_heartbeat_i", "_row", "_state_i", "_u64", "base", "role")

    def __init__(self, u64: memoryview, row: np.ndarray, base: int, role: str) -> None:
        self._u64, self._row, self.base, self.role = u64, row, base, role
        self._heartbeat_i = (base + HEARTBEAT_OFFSET) >> 3
        self._state_i = (base + STATE_OFFSET) >> 3

    def heartbeat(self) -> None:
        self._u64[self._heartbeat_i] = time.monotonic_ns()

    def set_state(self, state: ProcState) -> None:
        self._u64[self._state_i] = int(state)

    def counter(self, name: str) -> Counter:
        """The named counter, registered on first use (at most COUNTERS per row)."""
        i = self._register(name, COUNTER_NAMES_OFFSET, COUNTERS)
        return Counter(self._u64, ((self.base + COUNTER_VALUES_OFFSET) >> 3) + i, name)

    def histogram(self, name: str) -> Histogram:
        """The named histogram, registered on first use (at most HISTOGRAMS per row)."""
        i = self._register(name, HISTOGRAM_NAMES_OFFSET, HISTOGRAMS)
        first = ((self.base + HISTOGRAM_BUCKETS_OFFSET) >> 3) + i * BUCKETS
        buckets = self._row.view(np.uint64)[(HISTOGRAM_BUCKETS_OFFSET >> 3) + i * BUCKETS :][:BUCKETS]
        return Histogram(self._u64, first, buckets, name)

    def _register(self, name: str, names_offset: int, count: int) -> int:
        raw = name.encode()
        if not 0 < len(raw) < NAME_LENGTH:
            raise ValueError(f"status name {name!r} must be 1-{NAME_LENGTH - 1} bytes")
        names = self._row[names_offset : names_offset + count * NAME_LENGTH].reshape(count, NAME_LENGTH)
        for i in range(count):
            found = _name(names[i])
            if found == name:
                return i
            if not found:
                names[i, : len(raw)] = np.frombuffer(raw, np.uint8)  # value slots were zeroed at claim
                return i
        raise RingError(f"status row {self.role!r}: all {count} slots used, cannot add {name!r}")


class StatusBoard:
    """The mapped board. The supervisor creates it; every process attaches and `claim`s its row."""

    __slots__ = ("_rows", "_seg", "_u64")

    def __init__(self, seg: Segment) -> None:
        self._seg = seg
        self._u64 = memoryview(seg.buf).cast("Q")
        self._rows = np.frombuffer(seg.buf, np.uint8, ROWS * ROW_LENGTH, HEADER_LENGTH).reshape(ROWS, ROW_LENGTH)

    @classmethod
    def create(cls, prefix: str) -> StatusBoard:
        """Create the board (reclaiming one left by a dead creator); live when this returns."""
        seg = Segment.create(segment_name(prefix), SIZE)
        for k, value in enumerate(_GEOMETRY):
            seg.write_i64(PREAMBLE_LENGTH + 8 * k, value)
        seg.publish_magic(MAGIC, VERSION)
        return cls(seg)

    @classmethod
    def attach(cls, prefix: str) -> StatusBoard:
        """Map the board; RingNotFound if absent, RingError if its layout differs from ours."""
        seg = Segment.open(segment_name(prefix))
        found = (seg.read_i64(MAGIC_OFFSET), seg.read_i64(VERSION_OFFSET)) if seg.size >= PREAMBLE_LENGTH else (0, 0)
        words = range(len(_GEOMETRY)) if seg.size == SIZE else range(0)
        geometry = tuple(seg.read_i64(PREAMBLE_LENGTH + 8 * k) for k in words)
        if found != (MAGIC, VERSION) or geometry != _GEOMETRY:
            seg.close()
            raise RingError(
                f"status board {seg.name}: expected magic/version/geometry "
                f"{(MAGIC, VERSION, _GEOMETRY)}, found {(*found, geometry)}"
            )
        return cls(seg)

    @staticmethod
    def unlink(prefix: str) -> bool:
        return unlink(segment_name(prefix))

    def claim(self, role: str) -> Slot:
        """This process's row for ``role``: its old row if the role ran before, else a free one."""
        raw = role.encode()
        if not 0 < len(raw) < NAME_LENGTH:
            raise ValueError(f"role {role!r} must be 1-{NAME_LENGTH - 1} bytes")
        with self._seg.lock():
            r = self._find(role)
            base = HEADER_LENGTH + r * ROW_LENGTH
            pid, start = self._u64[(base + PID_OFFSET) >> 3], self._u64[(base + PID_START_OFFSET) >> 3]
            if _name(self._rows[r, :NAME_LENGTH]) == role and held_by_other(pid, start):
                raise RingError(f"status role {role!r} is held by live pid {pid}")
            self._reset(r, base)
            self._rows[r, : len(raw)] = np.frombuffer(raw, np.uint8)
        return Slot(self._u64, self._rows[r], base, role)

    def _find(self, role: str) -> int:
        names = [_name(self._rows[r, :NAME_LENGTH]) for r in range(ROWS)]
        if role in names:
            return names.index(role)
        if "" in names:
            return names.index("")
        raise RingError(f"status board full: {ROWS} roles {names}")

    def _reset(self, r: int, base: int) -> None:
        self._rows[r, :] = 0
        pid, start = self_identity()
        u64 = self._u64
        u64[(base + PID_OFFSET) >> 3], u64[(base + PID_START_OFFSET) >> 3] = pid, start
        u64[(base + STATE_OFFSET) >> 3] = int(ProcState.STARTING)
        u64[(base + START_NS_OFFSET) >> 3] = u64[(base + HEARTBEAT_OFFSET) >> 3] = time.monotonic_ns()

    def snapshot(self) -> list[BoardRow]:
        """Every claimed row, typed (a copy, consistent per field, not across fields)."""
        rows = self._rows.copy()
        return [_board_row(row) for row in rows if row[0]]

    def close(self) -> None:
        self._u64.release()
        self._seg.close()


@dataclass(frozen=True, slots=True)
class HistogramView:
    """One row's log2 histogram as read: bucket counts and the quantile estimates (`QUANTILES`)."""

    count: int
    buckets: np.ndarray
    p50: float
    p99: float
    p999: float


@dataclass(frozen=True, slots=True)
class BoardRow:
    """One claimed row as read by `StatusBoard.snapshot`; ``alive``: its pid is still that process."""

    role: str
    pid: int
    alive: bool
    state: ProcState
    start_ns: int
    heartbeat_ns: int
    counters: dict[str, int]
    histograms: dict[str, HistogramView]


def _board_row(row: np.ndarray) -> BoardRow:
    words = row.view(np.uint64)
    pid, start = int(words[PID_OFFSET >> 3]), int(words[PID_START_OFFSET >> 3])
    cnames = row[COUNTER_NAMES_OFFSET:COUNTER_VALUES_OFFSET].reshape(COUNTERS, NAME_LENGTH)
    values = words[COUNTER_VALUES_OFFSET >> 3 :][:COUNTERS]
    hnames = row[HISTOGRAM_NAMES_OFFSET:HISTOGRAM_BUCKETS_OFFSET].reshape(HISTOGRAMS, NAME_LENGTH)
    buckets = words[HISTOGRAM_BUCKETS_OFFSET >> 3 :].reshape(HISTOGRAMS, BUCKETS)
    return BoardRow(
        role=_name(row[:NAME_LENGTH]),
        pid=pid,
        alive=owner_alive(pid, start),
        state=ProcState(int(words[STATE_OFFSET >> 3])),
        start_ns=int(words[START_NS_OFFSET >> 3]),
        heartbeat_ns=int(words[HEARTBEAT_OFFSET >> 3]),
        counters={_name(n): int(v) for n, v in zip(cnames, values, strict=True) if n[0]},
        histograms={_name(n): HistogramView(int(b.sum()), b, *(quantile(b, q) for _, q in QUANTILES))
                    for n, b in zip(hnames, buckets, strict=True) if n[0]},
    )
