"""Ring behaviour in one process on real shm: publish/poll, wrap, policies, seqlock, ownership."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import posix_ipc
import pytest

from kairos.errors import RingError, RingFull
from kairos.records import MARKET_DATA, ORDER_INTENT
from kairos.ring import Overflow, Ring, Waiter
from kairos.ring import layout as L
from kairos.ring.poller import OverwritePoller
from kairos.ring.segment import proc_start_ticks
from kairos.ring.wait import bell_name, open_bell

MakeRing = Callable[..., Ring]


def batch(first: int, n: int) -> np.ndarray:
    out = np.zeros(n, MARKET_DATA)
    out["venue_seq"] = np.arange(first, first + n)
    out["price"] = out["venue_seq"] * 0.5
    return out


def drain(cons: object, limit: int = 1000) -> list[int]:
    seen: list[int] = []
    for _ in range(100):
        got = cons.read(limit)  # type: ignore[attr-defined]
        if not len(got):
            return seen
        seen.extend(got["venue_seq"].tolist())
    raise AssertionError("drain did not finish")


@pytest.mark.parametrize("overflow", [Overflow.BLOCK, Overflow.OVERWRITE])
def test_every_consumer_sees_every_record_in_order_across_wraps(make_ring: MakeRing, overflow: Overflow) -> None:
    ring = make_ring("md", MARKET_DATA, capacity=16, overflow=overflow, consumers=("a", "b"))
    prod, a, b = ring.producer(timeout_s=0.05), ring.consumer("a"), ring.consumer("b")
    expected: list[int] = []
    for i, n in enumerate([1, 5, 16, 3, 7, 11, 2]):
        first = len(expected)
        assert prod.publish(batch(first, n)) == first + n - 1
        expected.extend(range(first, first + n))
        if i % 2:
            assert a.lag == len(expected) - 1 - a.cursor
        got_a, got_b = drain(a, 4), drain(b)
        assert got_a == got_b == expected[len(expected) - n :]
    assert a.overruns == b.overruns == 0


def test_poll_hands_one_contiguous_view_and_stores_cursor_after_handler(make_ring: MakeRing) -> None:
    ring = make_ring("r", MARKET_DATA, capacity=8, overflow=Overflow.BLOCK, consumers=("a",))
    prod, cons = ring.producer(), ring.consumer("a")
    prod.publish(batch(0, 6))
    cons.read(5)
    prod.publish(batch(6, 5))  # seqs 6, 7 end the lap; 8..10 wrap to slots 0..2
    cursors: list[int] = []
    sizes: list[int] = []

    def handler(view: np.ndarray) -> None:
        sizes.append(len(view))
        cursors.append(cons.cursor)

    assert cons.poll(handler, 100) == 3  # seqs 5, 6, 7: stops at the wrap
    assert cons.poll(handler, 100) == 3  # seqs 8, 9, 10
    assert sizes == [3, 3] and cursors == [4, 7] and cons.cursor == 10
    assert cons.poll(handler, 100) == 0


def test_handler_exception_leaves_cursor_so_the_batch_is_handed_again(make_ring: MakeRing) -> None:
    ring = make_ring("r", MARKET_DATA, capacity=8, overflow=Overflow.OVERWRITE, consumers=("a",))
    prod, cons = ring.producer(), ring.consumer("a")
    prod.publish(batch(0, 3))

    def boom(view: np.ndarray) -> None:
        raise RuntimeError("handler bug")

    with pytest.raises(RuntimeError):
        cons.poll(boom, 10)
    assert cons.cursor == -1
    assert cons.read(10)["venue_seq"].tolist() == [0, 1, 2]


def test_block_ring_full_raises_naming_the_slow_consumer(make_ring: MakeRing) -> None:
    ring = make_ring("intents", ORDER_INTENT, capacity=4, overflow=Overflow.BLOCK, consumers=("gate", "persister"))
    prod, gate = ring.producer(timeout_s=0.02), ring.consumer("gate")
    prod.publish(np.zeros(4, ORDER_INTENT))
    gate.read(4)
    assert prod.remaining_capacity() == 0
    with pytest.raises(RingFull, match=r"ring intents full: consumer 'persister' is at sequence -1"):
        prod.publish(np.zeros(1, ORDER_INTENT))
    assert ring.published == 3  # nothing half-published
    ring.consumer("persister").read(2)
    assert prod.publish(np.zeros(2, ORDER_INTENT)) == 5


def test_overwrite_lapped_consumer_counts_exactly_what_it_missed(make_ring: MakeRing) -> None:
    ring = make_ring("md", MARKET_DATA, capacity=8, overflow=Overflow.OVERWRITE, consumers=("slow",))
    prod, slow = ring.producer(), ring.consumer("slow")
    prod.publish(batch(0, 3))
    assert drain(slow) == [0, 1, 2]
    prod.publish(batch(3, 30))  # seqs 3..32; only 25..32 still in the ring
    assert slow.lag == 30
    assert drain(slow) == list(range(25, 33))
    assert slow.overruns == 22


class ClaimDuringCopy(OverwritePoller):
    """Moves the producer's claim forward right after the copy, as a racing producer would."""

    __slots__ = ("claim_to",)

    def _copy(self, lo: int, hi: int, limit: int) -> int:
        n = super()._copy(lo, hi, limit)
        self._hdr[L.CLAIMED_OFFSET >> 3] = self.claim_to
        return n


def test_overwrite_seqlock_drops_records_claimed_during_the_copy(make_ring: MakeRing, shm_prefix: str) -> None:
    ring = make_ring("md", MARKET_DATA, capacity=8, overflow=Overflow.OVERWRITE, consumers=("c",))
    ring.producer().publish(batch(0, 8))
    cons = ClaimDuringCopy("md", "c", bell_name(shm_prefix, "c"), ring._seg.buf, ring._hdr, 0, MARKET_DATA)
    cons.claim_to = 10  # seqs 8..10 claimed mid-copy: slots of seqs 0..2 may be torn
    got: list[np.ndarray] = []
    assert cons.poll(lambda v: got.append(v.copy()), 100) == 5
    assert got[0]["venue_seq"].tolist() == [3, 4, 5, 6, 7]
    assert (cons.overruns, cons.cursor) == (3, 7)


def test_overwrite_claim_before_the_poll_resyncs_to_the_oldest_valid(make_ring: MakeRing) -> None:
    ring = make_ring("md", MARKET_DATA, capacity=8, overflow=Overflow.OVERWRITE, consumers=("c",))
    prod, cons = ring.producer(), ring.consumer("c")
    prod.publish(batch(0, 8))
    ring._hdr[L.CLAIMED_OFFSET >> 3] = 15  # a whole lap claimed, none published: nothing is intact

    def handler(view: np.ndarray) -> None:
        raise AssertionError("handler must never see a possibly torn record")

    assert cons.poll(handler, 100) == 0
    assert (cons.overruns, cons.cursor, cons.lag) == (8, 7, 0)


def test_overwrite_batch_larger_than_the_ring_publishes_in_laps(make_ring: MakeRing) -> None:
    ring = make_ring("md", MARKET_DATA, capacity=8, overflow=Overflow.OVERWRITE, consumers=("c",))
    prod, cons = ring.producer(), ring.consumer("c")
    assert prod.publish(batch(0, 20)) == 19
    assert drain(cons) == list(range(12, 20)) and cons.overruns == 12


def test_publish_rejects_other_dtypes_and_accepts_strided_batches(make_ring: MakeRing) -> None:
    ring = make_ring("r", MARKET_DATA, capacity=8, overflow=Overflow.BLOCK, consumers=("c",))
    prod, cons = ring.producer(), ring.consumer("c")
    with pytest.raises(TypeError, match="is not the ring dtype"):
        prod.publish(np.zeros(2, ORDER_INTENT))
    assert prod.publish(batch(0, 6)[::2]) == 2
    assert prod.publish(batch(0, 0)) == 2
    assert drain(cons) == [0, 2, 4]


def test_consumer_resumes_from_its_stored_cursor(make_ring: MakeRing, shm_prefix: str) -> None:
    ring = make_ring("events", MARKET_DATA, capacity=64, overflow=Overflow.BLOCK, consumers=("p",))
    ring.producer().publish(batch(0, 10))
    first = Ring.attach("events", MARKET_DATA, prefix=shm_prefix)
    assert first.consumer("p").read(4)["venue_seq"].tolist() == [0, 1, 2, 3]
    first.close()
    again = Ring.attach("events", MARKET_DATA, prefix=shm_prefix)
    try:
        assert drain(again.consumer("p")) == list(range(4, 10))
    finally:
        again.close()


def test_slots_held_by_a_live_process_are_refused(make_ring: MakeRing) -> None:
    ring = make_ring("r", MARKET_DATA, capacity=8, overflow=Overflow.BLOCK, consumers=("c",))
    with pytest.raises(RingError, match="unknown consumer 'x'"):
        ring.consumer("x")
    hdr = memoryview(ring._seg.buf)[: L.data_offset(1)].cast("q")
    pid_i = (L.consumer_offset(0) + L.PID_FIELD) >> 3
    hdr[pid_i], hdr[pid_i + 1] = 1, proc_start_ticks(1)  # init holds it
    with pytest.raises(RingError, match="consumer 'c' is held by live pid 1"):
        ring.consumer("c")
    hdr[pid_i + 1] = 0  # same pid, other start time: a recycled pid, the holder is gone
    assert ring.consumer("c").cursor == -1
    hdr[L.PRODUCER_PID_OFFSET >> 3], hdr[L.PRODUCER_START_OFFSET >> 3] = 1, proc_start_ticks(1)
    with pytest.raises(RingError, match="producer is held by live pid 1"):
        ring.producer()
    hdr.release()


def test_producer_rings_the_bell_only_of_sleeping_consumers(make_ring: MakeRing, shm_prefix: str) -> None:
    ring = make_ring("r", MARKET_DATA, capacity=8, overflow=Overflow.BLOCK, consumers=("c", "d"))
    prod, c, _d = ring.producer(), ring.consumer("c"), ring.consumer("d")
    bell_c, bell_d = open_bell(bell_name(shm_prefix, "c")), open_bell(bell_name(shm_prefix, "d"))
    try:
        view, index = c.flag()
        view[index] = 1
        prod.publish(batch(0, 1))
        view[index] = 0
        prod.publish(batch(1, 1))
        assert (bell_c.value, bell_d.value) == (1, 0)
    finally:
        bell_c.close()
        bell_d.close()


def test_blocking_waiter_returns_at_once_with_work_and_after_timeout_without(
    make_ring: MakeRing, shm_prefix: str
) -> None:
    a = make_ring("a", MARKET_DATA, capacity=8, overflow=Overflow.BLOCK, consumers=("gate",))
    b = make_ring("b", ORDER_INTENT, capacity=8, overflow=Overflow.BLOCK, consumers=("gate",))
    ca, cb = a.consumer("gate"), b.consumer("gate")
    waiter = Waiter([ca, cb], prefix=shm_prefix, name="gate", timeout_s=0.001)
    try:
        for _ in range(3):
            waiter.idle(0)  # no work: sleeps at most the timeout, flags cleared afterwards
        assert ca.flag()[0][ca.flag()[1]] == 0 and cb.flag()[0][cb.flag()[1]] == 0
        b.producer().publish(np.zeros(1, ORDER_INTENT))
        waiter.idle(0)  # pending work: the re-check skips the sleep
        bell = open_bell(bell_name(shm_prefix, "gate"))
        assert bell.value == 0
        bell.close()
    finally:
        waiter.close()


def test_spin_then_block_takes_work_that_comes_during_the_spin_without_sleeping(
    make_ring: MakeRing, shm_prefix: str
) -> None:
    ring = make_ring("r", MARKET_DATA, capacity=8, overflow=Overflow.BLOCK, consumers=("gate",))
    cons = ring.consumer("gate")
    view, index = cons.flag()
    seen: list[int] = []

    def late_producer() -> None:
        time.sleep(0.02)  # the consumer is inside idle by now: spinning (flag down) or asleep (flag up)
        seen.append(view[index])
        ring.producer().publish(batch(0, 1))

    waiter = Waiter([cons], prefix=shm_prefix, name="gate", timeout_s=5.0, spin_us=5_000_000)
    producer = threading.Thread(target=late_producer)
    try:
        producer.start()
        waiter.idle(0)  # returns when the record lands (the spin is bounded by 5 s, the sleep by 5 s more)
        producer.join(10)
        assert seen == [0] and cons.pending()
        waiter.idle(0)  # pending work: returns at once
        short = Waiter([cons], prefix=shm_prefix, name="gate", timeout_s=0.001, spin_us=100)
        drain(cons)
        short.idle(0)  # nothing comes: spins 100 us, then sleeps at most the timeout, flag cleared
        short.close()
        assert view[index] == 0
    finally:
        waiter.close()
    with pytest.raises(ValueError, match="spin_us"):
        Waiter([cons], spin_us=-1)


def test_waiter_refuses_consumers_with_different_bells(make_ring: MakeRing, shm_prefix: str) -> None:
    ring = make_ring("r", MARKET_DATA, capacity=8, overflow=Overflow.BLOCK, consumers=("x", "y"))
    x, y = ring.consumer("x"), ring.consumer("y")
    with pytest.raises(ValueError, match="different doorbells"):
        Waiter([x, y], prefix=shm_prefix)
    with pytest.raises(ValueError, match="does not match"):
        Waiter([x], prefix=shm_prefix, name="y")
    with pytest.raises(ValueError, match="not one of"):
        Waiter([x], wait="nap")
    for wait in ("spin", "yield"):
        Waiter([x], wait=wait).idle(0)


def test_unlink_removes_segment_and_bells(shm_prefix: str) -> None:
    ring = Ring.create("r", MARKET_DATA, 8, Overflow.BLOCK, ("c",), prefix=shm_prefix)
    ring.producer()
    ring.close()
    assert Ring.unlink("r", shm_prefix)
    assert not Ring.unlink("r", shm_prefix)
    with pytest.raises(posix_ipc.ExistentialError):
        posix_ipc.Semaphore(bell_name(shm_prefix, "c"))


def test_restarted_overwrite_producer_never_moves_claimed_back(make_ring: MakeRing) -> None:
    ring = make_ring("md", MARKET_DATA, capacity=8, overflow=Overflow.OVERWRITE, consumers=("c",))
    ring.producer().publish(batch(0, 8))
    ring._hdr[L.CLAIMED_OFFSET >> 3] = 10  # the producer died copying seqs 8..10 over slots 0..2
    again = ring.producer()
    assert again.published == 7 and again.publish(batch(8, 1)) == 8
    assert ring._hdr[L.CLAIMED_OFFSET >> 3] == 10  # seqs 0..2 stay invalid
    cons = ring.consumer("c")
    assert drain(cons) == [3, 4, 5, 6, 7, 8] and cons.overruns == 3
