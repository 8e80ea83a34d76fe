"""Status board: rows per role, reclaim on restart, counters, log2 histograms, snapshots."""

from __future__ import annotations

import multiprocessing as mp

import numpy as np
import pytest

from kairos.errors import RingError, RingNotFound
from kairos.records import ProcState
from kairos.ring.segment import Segment
from kairos.status import BUCKETS, COUNTERS, ROWS, StatusBoard, quantile, segment_name


def test_claim_heartbeat_state_counters_visible_to_another_mapping(board: StatusBoard, shm_prefix: str) -> None:
    slot = board.claim("feed.binance")
    slot.set_state(ProcState.RUNNING)
    slot.heartbeat()
    msgs, errors = slot.counter("msgs"), slot.counter("errors")
    msgs.add(41)
    msgs.add()
    errors.set(7)
    other = StatusBoard.attach(shm_prefix)
    try:
        (row,) = other.snapshot()
    finally:
        other.close()
    assert row.role == "feed.binance" and row.alive and row.state is ProcState.RUNNING
    assert row.counters == {"msgs": 42, "errors": 7}
    assert row.heartbeat_ns >= row.start_ns > 0
    assert slot.counter("msgs").value == 42  # same name, same slot


def test_same_role_gets_its_row_back_reset(board: StatusBoard) -> None:
    board.claim("gate").counter("orders").add(5)
    board.claim("strategy")
    again = board.claim("gate")
    rows = {r.role: r for r in board.snapshot()}
    assert list(rows) == ["gate", "strategy"]
    assert rows["gate"].counters == {} and rows["gate"].state is ProcState.STARTING
    assert again.base == board.claim("gate").base


def _hold_role(prefix: str, ready: mp.Event, done: mp.Event) -> None:  # type: ignore[valid-type]
    board = StatusBoard.attach(prefix)
    board.claim("persister")
    ready.set()  # type: ignore[attr-defined]
    done.wait(10)  # type: ignore[attr-defined]
    board.close()


def test_role_held_by_a_live_process_is_refused_then_reclaimed(board: StatusBoard, shm_prefix: str) -> None:
    ctx = mp.get_context("spawn")
    ready, done = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold_role, args=(shm_prefix, ready, done))
    child.start()
    try:
        assert ready.wait(30)
        with pytest.raises(RingError, match="'persister' is held by live pid"):
            board.claim("persister")
        done.set()
        child.join(10)
        assert board.claim("persister").role == "persister"
        assert [r.pid for r in board.snapshot()] != [child.pid]
    finally:
        done.set()
        child.join(5)
        if child.is_alive():
            child.kill()
            child.join(5)


def test_board_full_and_counter_slots_full(board: StatusBoard) -> None:
    for i in range(ROWS):
        board.claim(f"role{i}")
    with pytest.raises(RingError, match="status board full"):
        board.claim("one.too.many")
    slot = board.claim("role0")
    for i in range(COUNTERS):
        slot.counter(f"c{i}")
    with pytest.raises(RingError, match=f"all {COUNTERS} slots used"):
        slot.counter("extra")
    with pytest.raises(ValueError, match="1-31 bytes"):
        slot.counter("x" * 40)


def test_histogram_buckets_and_quantiles(board: StatusBoard) -> None:
    hist = board.claim("sim").histogram("lat_ns")
    for value in (0, -5, 1, 2, 3, 1000, 2**62, 2**70):
        hist.record(value)
    hist.record_many(np.array([1000, 1023, 1024, 0], dtype=np.int64))
    buckets = hist._buckets
    assert buckets[0] == 3 and buckets[1] == 1 and buckets[2] == 2  # <=0 | 1 | 2-3
    assert buckets[10] == 3 and buckets[11] == 1  # 512-1023 | 1024-2047
    assert buckets[63] == 2 and hist.count == 12
    (row,) = board.snapshot()
    assert row.histograms["lat_ns"].count == 12


def test_quantile_estimates_stay_within_their_log2_bucket() -> None:
    values = np.arange(1, 100_001)
    buckets = np.bincount(np.frexp(values.astype(float))[1], minlength=BUCKETS).astype(np.uint64)
    for q in (0.5, 0.99, 0.999):
        exact = float(np.quantile(values, q))
        estimate = quantile(buckets, q)
        assert exact / 2 <= estimate <= exact * 2, (q, exact, estimate)
    assert quantile(np.zeros(BUCKETS, np.uint64), 0.5) == 0.0


def test_attach_missing_and_foreign_boards(shm_prefix: str) -> None:
    with pytest.raises(RingNotFound):
        StatusBoard.attach(shm_prefix)
    seg = Segment.create(segment_name(shm_prefix), 4096)
    seg.close()
    try:
        with pytest.raises(RingError, match="expected magic/version/geometry"):
            StatusBoard.attach(shm_prefix)
    finally:
        StatusBoard.unlink(shm_prefix)
