"""Running totals the supervisor keeps for /metrics from the batches it already reads.

The status board holds what each process counts about itself; two totals exist nowhere else:
per-stage order latencies over every traced order (the ``trace`` ring, exact stamps) and
execution events per venue and kind (the ``events`` ring). Both are fed one numpy batch at a
time by the thread that drains the ring and read (copied, under a lock) by scrapes.
"""

from __future__ import annotations

import threading

import numpy as np

from kairos.records import ExecKind, Venue
from kairos.status import BUCKETS, log2_counts

Stages = tuple[tuple[str, str, str], ...]


class TraceTotals:
    """Per stage of ORDER_TRACE rows: log2 ns bucket counts (the board's scheme) and the exact sum;
    per venue: orders handed to the executor."""

    __slots__ = ("_buckets", "_lock", "_sent", "_stages", "_sums")

    def __init__(self, stages: Stages) -> None:
        self._stages = stages
        self._buckets = np.zeros((len(stages), BUCKETS), np.uint64)
        self._sums = [0] * len(stages)
        self._sent = np.zeros(max(Venue) + 1, np.uint64)
        self._lock = threading.Lock()

    def add(self, rows: np.ndarray) -> None:
        spans = [rows[end] - rows[start] for _, end, start in self._stages]
        counts = [log2_counts(ns) for ns in spans]
        sent = np.bincount(_known(rows["venue"], len(self._sent)), minlength=len(self._sent))
        with self._lock:
            for k, ns in enumerate(spans):
                self._buckets[k] += counts[k]
                self._sums[k] += int(ns.sum())
            self._sent += sent.astype(np.uint64)

    def stages(self) -> list[tuple[str, np.ndarray, int]]:
        """(stage, bucket counts, sum in ns) per stage, copied."""
        with self._lock:
            return [(name, self._buckets[k].copy(), self._sums[k]) for k, (name, _, _) in enumerate(self._stages)]

    def sent(self) -> dict[Venue, int]:
        with self._lock:
            return {Venue(v): int(n) for v, n in enumerate(self._sent) if n}


class EventTally:
    """Execution events by (venue, kind) as the supervisor's event pump reads them (an id outside the
    enums, which only a gate bug could write, is counted under venue NONE / not at all)."""

    __slots__ = ("_counts", "_lock")

    def __init__(self) -> None:
        self._counts = np.zeros((max(Venue) + 1, max(ExecKind) + 1), np.uint64)
        self._lock = threading.Lock()

    def add(self, events: np.ndarray) -> None:
        rows, cols = self._counts.shape
        flat = _known(events["venue"], rows) * cols + _known(events["kind"], cols)
        counts = np.bincount(flat, minlength=rows * cols).reshape(rows, cols).astype(np.uint64)
        with self._lock:
            self._counts += counts

    def counts(self) -> dict[tuple[Venue, ExecKind], int]:
        with self._lock:
            counts = self._counts.copy()
        return {(Venue(v), ExecKind(k)): int(counts[v, k]) for v, k in zip(*np.nonzero(counts), strict=True) if k}


def _known(ids: np.ndarray, size: int) -> np.ndarray:
    """Enum ids as indexes; one outside the enum counts as 0 (Venue.NONE; a kind 0 is never shown)."""
    ids = ids.astype(np.int64)
    return np.where(ids < size, ids, 0)
