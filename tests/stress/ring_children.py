"""Child-process bodies for the ring stress tests (spawned: top-level, picklable, real shm).

Every record's 64 bytes are derived from its sequence, so a consumer can check each one it is
handed against what the producer wrote: a torn, duplicated, reordered or shifted record differs.
"""

from __future__ import annotations

import multiprocessing.queues
import time
from collections.abc import Callable

import numpy as np

from kairos.records import MARKET_DATA
from kairos.ring import Ring, Waiter
from kairos.ring.segment import PREAMBLE_LENGTH, Segment

GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def fill(out: np.ndarray, first: int) -> None:
    """Write the payload of sequences first.. into ``out``."""
    seq = np.arange(first, first + len(out), dtype=np.int64)
    out["ts_exchange_ns"] = seq
    out["ts_recv_ns"] = ~seq
    out["venue_seq"] = seq.astype(np.uint64) * GOLDEN
    out["price"] = seq * 0.5
    out["qty"] = -seq
    out["price2"] = seq + 0.25
    out["qty2"] = seq * 3.0
    out["instrument"] = (seq * 7).astype(np.uint32)
    out["venue"] = (seq & 0xFFFF).astype(np.uint16)
    out["kind"] = (seq & 0xFF).astype(np.uint8)
    out["flags"] = ((seq >> 8) & 0xFF).astype(np.uint8)


def mismatches(view: np.ndarray, first: int) -> int:
    """How many records in ``view`` are not byte-for-byte the payload of sequences first.."""
    expected = np.zeros(len(view), MARKET_DATA)
    fill(expected, first)
    got = view.view(np.uint8).reshape(len(view), MARKET_DATA.itemsize)
    return int((got != expected.view(np.uint8).reshape(got.shape)).any(axis=1).sum())


def produce(
    prefix: str, ring_name: str, total: int, max_batch: int, seed: int, timeout_s: float, nap_s: float = 0.0
) -> None:
    """Publish sequences published+1..total-1 in random batch sizes 1..max_batch (a restarted
    producer continues where the dead one stopped); ``nap_s`` sleeps every 16 batches."""
    ring = Ring.attach(ring_name, MARKET_DATA, prefix=prefix)
    prod = ring.producer(timeout_s=timeout_s)
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, max_batch + 1, size=total)
    buf = np.zeros(max_batch, MARKET_DATA)
    sent, k = prod.published + 1, 0
    while sent < total:
        n = min(int(sizes[k]), total - sent)
        k += 1
        fill(buf[:n], sent)
        sent = prod.publish(buf[:n]) + 1
        if nap_s and k % 16 == 0:
            time.sleep(nap_s)
    ring.close()


class Checker:
    """Handler that checks order and payload and counts gaps (records skipped by overruns)."""

    def __init__(self, cursor: Callable[[], int], counts: np.ndarray | None = None) -> None:
        self.cursor, self.counts = cursor, counts
        self.next = cursor() + 1
        self.received = self.bad = self.gaps = self.batches = 0

    def __call__(self, view: np.ndarray) -> None:
        first = self.cursor() + 1
        self.gaps += first - self.next
        self.bad += mismatches(view, first) + (first < self.next)
        if self.counts is not None:
            self.counts[first : first + len(view)] += 1
        self.received += len(view)
        self.batches += 1
        self.next = first + len(view)


def consume(
    prefix: str,
    ring_name: str,
    consumer: str,
    total: int,
    limit: int,
    results: multiprocessing.queues.Queue,
    options: dict,
) -> None:
    """Poll until sequence total-1 is handled (or the deadline); put the tallies on ``results``.

    options: ``deadline_s``; ``nap_every``/``nap_s`` make a slow consumer; ``counts`` names a shm
    array (np.uint8[total]) where each handled sequence is counted, for kill -9 tests.
    """
    ring = Ring.attach(ring_name, MARKET_DATA, prefix=prefix)
    cons = ring.consumer(consumer)
    counts_seg = Segment.open(options["counts"]) if "counts" in options else None
    counts = np.frombuffer(counts_seg.buf, np.uint8, total, PREAMBLE_LENGTH) if counts_seg else None
    check = Checker(lambda: cons.cursor, counts)
    waiter = Waiter([cons], prefix=prefix, name=consumer, timeout_s=0.01)
    deadline = time.monotonic() + options.get("deadline_s", 60.0)
    nap_every, nap_s, polls = options.get("nap_every", 0), options.get("nap_s", 0.0), 0
    while cons.cursor < total - 1 and time.monotonic() < deadline:
        work = cons.poll(check, limit)
        polls += 1
        if nap_every and polls % nap_every == 0:
            time.sleep(nap_s)
        waiter.idle(work)
    results.put(
        {"consumer": consumer, "received": check.received, "bad": check.bad, "gaps": check.gaps,
         "overruns": cons.overruns, "cursor": cons.cursor, "batches": check.batches}
    )  # fmt: skip
    waiter.close()
    ring.close()


def wait_for_records(prefix: str, rings: list[str], consumer: str, total: int, timeout_s: float, out: object) -> None:
    """Consume ``total`` records from several rings under one name, sleeping on one doorbell."""
    import signal

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    attached = [Ring.attach(name, MARKET_DATA, prefix=prefix) for name in rings]
    cons = [ring.consumer(consumer) for ring in attached]
    waiter = Waiter(cons, prefix=prefix, name=consumer, timeout_s=timeout_s)
    got, idles = 0, 0
    out.put({"ready": True})  # type: ignore[attr-defined]
    while got < total and not stop:
        work = sum(c.poll(len, 100) for c in cons)
        got += work
        idles += not work
        waiter.idle(work)
    out.put({"got": got, "stopped": bool(stop), "idles": idles})  # type: ignore[attr-defined]


def create_and_hang(prefix: str, name: str, out: object) -> None:
    """Create a ring, say so, then wait to be killed (a crashed creator leaves a stale segment)."""
    Ring.create(name, MARKET_DATA, 64, 1, ("c",), prefix=prefix)
    out.put("created")  # type: ignore[attr-defined]
    time.sleep(60)


def attach_wrong_dtype(prefix: str, name: str) -> None:
    """Exit with the error's exit code, as a process entry point does at its edge."""
    import sys

    from kairos.errors import KairosError
    from kairos.records import ORDER_INTENT

    try:
        Ring.attach(name, ORDER_INTENT, prefix=prefix)
    except KairosError as exc:
        print(exc, file=sys.stderr)
        sys.exit(exc.exit_code)
