"""Header layout: written once, magic last, every mismatch named on attach."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kairos.errors import RingError, RingLayoutError, RingNotFound
from kairos.records import EXEC_EVENT, MARKET_DATA, ORDER_INTENT, fingerprint
from kairos.ring import Overflow, Ring, segment_name
from kairos.ring import layout as L
from kairos.ring.segment import (
    CREATOR_PID_OFFSET,
    CREATOR_START_OFFSET,
    MAGIC_OFFSET,
    Segment,
    proc_start_ticks,
    sweep_stale,
    unlink,
)


def test_offsets_are_aligned_and_lines_do_not_overlap() -> None:
    offsets = [
        L.FINGERPRINT_OFFSET, L.RECORD_SIZE_OFFSET, L.CAPACITY_OFFSET, L.OVERFLOW_OFFSET,
        L.CONSUMER_COUNT_OFFSET, L.PUBLISHED_OFFSET, L.CLAIMED_OFFSET, L.PRODUCER_PID_OFFSET,
    ]  # fmt: skip
    assert all(o % 8 == 0 for o in offsets)
    assert L.CONSUMER_COUNT_OFFSET < L.HEADER_LENGTH <= L.PUBLISHED_OFFSET
    assert L.PRODUCER_START_OFFSET < L.CONSUMERS_OFFSET
    assert L.consumer_offset(1) - L.consumer_offset(0) == L.LINE_LENGTH
    assert L.data_offset(3) % L.LINE_LENGTH == 0
    assert L.segment_size(3, 1024, 64) == L.data_offset(3) + 1024 * 64


def test_header_round_trip(make_ring: Callable[..., Ring], shm_prefix: str) -> None:
    make_ring("intents", ORDER_INTENT, capacity=256, overflow=Overflow.BLOCK, consumers=("gate", "persister"))
    ring = Ring.attach("intents", ORDER_INTENT, prefix=shm_prefix, capacity=256)
    try:
        assert ring.header == L.Header(fingerprint(ORDER_INTENT), 128, 256, Overflow.BLOCK, ("gate", "persister"))
        assert ring.published == -1
        assert ring.consumer("gate").cursor == -1
    finally:
        ring.close()


@pytest.mark.parametrize(
    ("dtype", "capacity", "what"),
    [(ORDER_INTENT, None, "fingerprint"), (EXEC_EVENT, None, "fingerprint"), (MARKET_DATA, 512, "capacity")],
)
def test_attach_mismatch_names_expected_and_found(
    make_ring: Callable[..., Ring], shm_prefix: str, dtype: object, capacity: int | None, what: str
) -> None:
    make_ring("md.x", MARKET_DATA, capacity=1024, overflow=Overflow.OVERWRITE, consumers=("strategy",))
    with pytest.raises(RingLayoutError, match=f"{what} mismatch: expected .*, found ") as err:
        Ring.attach("md.x", dtype, prefix=shm_prefix, capacity=capacity)  # type: ignore[arg-type]
    assert "md.x" in str(err.value)


def test_attach_refuses_other_version_and_magic(make_ring: Callable[..., Ring], shm_prefix: str) -> None:
    make_ring("events", EXEC_EVENT, capacity=64, overflow=Overflow.BLOCK, consumers=("strategy",))
    seg = Segment.open(segment_name(shm_prefix, "events"))
    try:
        seg.write_i64(8, L.VERSION + 1)
        with pytest.raises(RingLayoutError, match=f"layout version mismatch: expected {L.VERSION}, found"):
            Ring.attach("events", EXEC_EVENT, prefix=shm_prefix)
        seg.write_i64(MAGIC_OFFSET, 12345)
        with pytest.raises(RingLayoutError, match="magic mismatch"):
            Ring.attach("events", EXEC_EVENT, prefix=shm_prefix)
    finally:
        seg.close()


def test_missing_and_unfinished_segments_are_not_found(shm_prefix: str) -> None:
    with pytest.raises(RingNotFound, match="does not exist"):
        Ring.attach("nope", MARKET_DATA, prefix=shm_prefix)
    name = segment_name(shm_prefix, "half")
    seg = Segment.create(name, L.segment_size(1, 8, 64))  # creator "crashed" before writing the magic
    try:
        with pytest.raises(RingNotFound, match="not initialised"):
            Ring.attach("half", MARKET_DATA, prefix=shm_prefix)
    finally:
        seg.close()
        unlink(name)


def test_create_reclaims_a_segment_left_by_a_dead_creator(shm_prefix: str) -> None:
    name = segment_name(shm_prefix, "md.y")
    seg = Segment.create(name, 4096)
    seg.write_i64(CREATOR_PID_OFFSET, 2**22 + 12345)  # beyond pid_max: certainly not running
    seg.close()
    ring = Ring.create("md.y", MARKET_DATA, 64, Overflow.OVERWRITE, ("a",), prefix=shm_prefix)
    try:
        assert ring.capacity == 64 and ring.header.consumers == ("a",)
    finally:
        ring.close()
        Ring.unlink("md.y", shm_prefix)


def test_create_refuses_a_segment_of_a_live_creator(shm_prefix: str) -> None:
    name = segment_name(shm_prefix, "busy")
    seg = Segment.create(name, 4096)
    seg.write_i64(CREATOR_PID_OFFSET, 1)  # pid 1 (init) with its real start time: alive, not us
    seg.write_i64(CREATOR_START_OFFSET, proc_start_ticks(1))
    seg.close()
    try:
        with pytest.raises(RingError, match="owned by live pid 1"):
            Ring.create("busy", MARKET_DATA, 64, Overflow.OVERWRITE, ("a",), prefix=shm_prefix)
    finally:
        unlink(name)


def test_sweep_removes_only_dead_creators_segments(shm_prefix: str) -> None:
    live = Ring.create("live", MARKET_DATA, 8, Overflow.BLOCK, ("a",), prefix=shm_prefix)
    for name, magic in (("dead", L.MAGIC), ("foreign", 0x1234), ("unfinished", 0)):
        seg = Segment.create(segment_name(shm_prefix, name), 4096)
        seg.write_i64(CREATOR_PID_OFFSET, 2**22 + 1)
        seg.write_i64(MAGIC_OFFSET, magic)
        seg.close()
    try:
        assert sweep_stale(shm_prefix) == [segment_name(shm_prefix, "dead")]
        Ring.attach("live", MARKET_DATA, prefix=shm_prefix).close()
    finally:
        live.close()
        Ring.unlink("live", shm_prefix)
        for name in ("foreign", "unfinished"):
            assert unlink(segment_name(shm_prefix, name))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"capacity": 100}, "power of two"),
        ({"consumers": ()}, "distinct consumer names"),
        ({"consumers": ("a", "a")}, "distinct consumer names"),
        ({"consumers": ("bad name",)}, "consumer name"),
    ],
)
def test_create_validates_arguments(make_ring: Callable[..., Ring], kwargs: dict, message: str) -> None:
    args = {"capacity": 64, "overflow": Overflow.BLOCK, "consumers": ("a",)} | kwargs
    with pytest.raises(ValueError, match=message):
        make_ring("r", MARKET_DATA, **args)


def test_rings_refuse_machines_without_tso(monkeypatch: pytest.MonkeyPatch, shm_prefix: str) -> None:
    import platform

    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    with pytest.raises(RingError, match="x86-64 memory ordering"):
        Ring.create("r", MARKET_DATA, 8, Overflow.BLOCK, ("c",), prefix=shm_prefix)
