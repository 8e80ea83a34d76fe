"""Multi-process ring invariants on real shm with spawned processes (Disruptor jcstress spirit).

Every record carries a payload derived from its sequence; consumers check each record byte for
byte, its position (cursor + 1 during the handler), and count gaps. Nothing here is timed.
"""

from __future__ import annotations

import os
import queue
import signal
import time

import numpy as np
import pytest

from kairos.records import MARKET_DATA
from kairos.ring import Overflow
from kairos.ring.segment import PREAMBLE_LENGTH, Segment
from tests.stress.conftest import Lab
from tests.stress.ring_children import consume, produce

pytestmark = pytest.mark.slow


def collect(results: object, count: int, timeout_s: float) -> dict[str, dict]:
    out: dict[str, dict] = {}
    deadline = time.monotonic() + timeout_s
    while len(out) < count:
        try:
            got = results.get(timeout=max(0.1, deadline - time.monotonic()))  # type: ignore[attr-defined]
        except queue.Empty:
            raise AssertionError(f"only {len(out)} of {count} consumers reported: {out}") from None
        out[got["consumer"]] = got
    return out


def test_block_two_consumers_get_every_record_exactly_once_in_order(lab: Lab) -> None:
    total = 2_000_000
    lab.ring("md", MARKET_DATA, capacity=4096, overflow=Overflow.BLOCK, consumers=("a", "b"))
    results = lab.ctx.Queue()
    for name, limit in (("a", 1000), ("b", 37)):
        lab.start(consume, lab.prefix, "md", name, total, limit, results, {"deadline_s": 100.0})
    producer = lab.start(produce, lab.prefix, "md", total, 256, 1, 30.0)
    got = collect(results, 2, 110.0)
    producer.join(10)
    assert producer.exitcode == 0
    for name in ("a", "b"):
        assert got[name] | {"batches": 0} == {
            "consumer": name, "received": total, "bad": 0, "gaps": 0, "overruns": 0, "cursor": total - 1, "batches": 0
        }  # fmt: skip


def test_overwrite_slow_consumer_counts_exactly_what_it_missed(lab: Lab) -> None:
    total = 400_000
    lab.ring("md", MARKET_DATA, capacity=256, overflow=Overflow.OVERWRITE, consumers=("fast", "slow"))
    results = lab.ctx.Queue()
    lab.start(consume, lab.prefix, "md", "fast", total, 4096, results, {"deadline_s": 60.0})
    slow_opts = {"deadline_s": 60.0, "nap_every": 5, "nap_s": 0.001}  # <= 320k records/s
    lab.start(consume, lab.prefix, "md", "slow", total, 64, results, slow_opts)
    producer = lab.start(produce, lab.prefix, "md", total, 64, 2, 30.0)
    got = collect(results, 2, 70.0)
    producer.join(10)
    assert producer.exitcode == 0
    for name in ("fast", "slow"):
        r = got[name]
        assert r["bad"] == 0, r  # no torn, reordered or duplicated record was handed on
        assert r["cursor"] == total - 1, r
        assert r["received"] + r["overruns"] == total, r  # exactly what it missed ...
        assert r["gaps"] == r["overruns"], r  # ... and exactly where
    assert got["slow"]["overruns"] > 0, got["slow"]  # the slow one really was lapped


def test_kill_9_consumer_mid_stream_restart_resumes_without_loss_or_duplicate(lab: Lab) -> None:
    total = 300_000
    ring = lab.ring("events", MARKET_DATA, capacity=1024, overflow=Overflow.BLOCK, consumers=("victim",))
    counts = []
    for i in range(2):
        name = f"/{lab.prefix}.counts{i}"
        lab.segments.append(name)
        seg = Segment.create(name, PREAMBLE_LENGTH + total)
        counts.append(np.frombuffer(seg.buf, np.uint8, total, PREAMBLE_LENGTH))
    results = lab.ctx.Queue()
    producer = lab.start(produce, lab.prefix, "events", total, 64, 3, 60.0)
    opts = {"deadline_s": 60.0, "counts": f"/{lab.prefix}.counts0", "nap_every": 10, "nap_s": 0.001}
    victim = lab.start(consume, lab.prefix, "events", "victim", total, 50, results, opts)
    deadline = time.monotonic() + 60
    while ring.cursors()["victim"] < total // 4 and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(10)
    committed = ring.cursors()["victim"]
    assert total // 4 <= committed < total - 1
    opts |= {"counts": f"/{lab.prefix}.counts1", "nap_every": 0}
    lab.start(consume, lab.prefix, "events", "victim", total, 50, results, opts)
    report = collect(results, 1, 70.0)["victim"]
    producer.join(10)
    before, after = counts[0].copy(), counts[1].copy()
    assert report["bad"] == 0 and report["gaps"] == 0 and report["cursor"] == total - 1, report
    assert (before[: committed + 1] == 1).all()  # handled before the kill, each once
    assert not after[: committed + 1].any()  # never handed again after the restart
    assert (after[committed + 1 :] == 1).all()  # everything after the cursor, each once
    assert np.count_nonzero(before[committed + 1 :]) <= 50  # at most the batch the kill interrupted
    del before, after, counts


@pytest.mark.parametrize("overflow", [Overflow.BLOCK, Overflow.OVERWRITE])
def test_kill_9_producer_mid_stream_restart_continues_the_sequence(lab: Lab, overflow: Overflow) -> None:
    total = 600_000
    ring = lab.ring("md", MARKET_DATA, capacity=1024, overflow=overflow, consumers=("c",))
    results = lab.ctx.Queue()
    lab.start(consume, lab.prefix, "md", "c", total, 256, results, {"deadline_s": 60.0})
    first = lab.start(produce, lab.prefix, "md", total, 64, 4, 30.0, 0.001)  # >= 1 s in all
    deadline = time.monotonic() + 60
    while ring.published < total // 4 and time.monotonic() < deadline:
        time.sleep(0.002)
    os.kill(first.pid, signal.SIGKILL)
    first.join(10)
    assert ring.published < total - 1, "producer finished before the kill"
    second = lab.start(produce, lab.prefix, "md", total, 64, 5, 30.0)  # takes over the dead slot
    report = collect(results, 1, 70.0)["c"]
    second.join(10)
    assert second.exitcode == 0 and report["bad"] == 0 and report["cursor"] == total - 1, report
    assert report["received"] + report["overruns"] == total and report["gaps"] == report["overruns"], report
    if overflow is Overflow.BLOCK:
        assert report["overruns"] == 0, report
