"""The gate's published state: an orjson blob in a seqlock'd shm segment ``/{prefix}.gatestate``.

The gate writes it on change (at most every ``MIN_INTERVAL_NS``) and at least every 500 ms; every
reader takes it as the typed contract through ``GateStateReader.state()`` (kairos/gatestate.py): the
supervisor's gRPC (GetBalance / GetPositions / ListOrders), status and /metrics, the persister's
sampler, and the strategy host (open venues, restart recovery). Layout (i64 words)::

    0 magic | 8 version | 16 creator pid | 24 creator start     (the shared segment preamble)
    32 seq (odd while a write is in progress) | 40 length | 48 written at (wall ns) | 56 unused
    64 payload: ``length`` bytes of JSON, at most the segment size - 64

A restarted gate maps the same segment again (readers keep their mapping); a second live gate is
refused. Readers copy the payload between two reads of ``seq`` and retry if it moved.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final

import orjson

from kairos.errors import RingError, RingNotFound
from kairos.gatestate import GateState, GateStateError, parse
from kairos.ring.segment import (
    CREATOR_PID_OFFSET,
    CREATOR_START_OFFSET,
    MAGIC_OFFSET,
    Segment,
    held_by_other,
    self_identity,
    unlink,
)

log = logging.getLogger(__name__)
MAGIC: Final = int.from_bytes(b"KAIROSGS", "little")
VERSION: Final = 1
SEQ, LENGTH, WRITTEN = 4, 5, 6  # i64 word indexes
PAYLOAD_OFFSET: Final = 64
DEFAULT_SIZE: Final = 1 << 20
READ_TRIES: Final = 100


def segment_name(prefix: str) -> str:
    return f"/{prefix}.gatestate"


class GateStateWriter:
    """Owned by the gate; ``write`` replaces the whole blob (False if it did not fit)."""

    __slots__ = ("_hdr", "_seg", "capacity")

    def __init__(self, prefix: str, size: int = DEFAULT_SIZE) -> None:
        self._seg = _open_own(segment_name(prefix), size)
        self._hdr = memoryview(self._seg.buf)[:PAYLOAD_OFFSET].cast("q")
        self.capacity = self._seg.size - PAYLOAD_OFFSET

    def write(self, state: GateState) -> bool:
        payload = orjson.dumps(state)
        if len(payload) > self.capacity:
            return False
        hdr = self._hdr
        seq = hdr[SEQ] | 1
        hdr[SEQ] = seq
        self._seg.buf[PAYLOAD_OFFSET : PAYLOAD_OFFSET + len(payload)] = payload
        hdr[LENGTH] = len(payload)
        hdr[WRITTEN] = time.time_ns()
        hdr[SEQ] = seq + 1
        return True

    def close(self) -> None:
        self._hdr.release()
        self._seg.close()


def _open_own(name: str, size: int) -> Segment:
    """Map the existing segment again if its creator is gone (readers keep theirs), else create."""
    try:
        seg = Segment.open(name)
    except RingNotFound:
        seg = None
    if seg is not None and (seg.size < size or seg.read_i64(MAGIC_OFFSET) != MAGIC):
        seg.close()
        seg = None
    if seg is None:
        seg = Segment.create(name, size)
        seg.write_i64(SEQ * 8, 0)
        seg.publish_magic(MAGIC, VERSION)
        return seg
    pid, start = seg.read_i64(CREATOR_PID_OFFSET), seg.read_i64(CREATOR_START_OFFSET)
    if held_by_other(pid, start):
        seg.close()
        raise RingError(f"{name} is written by live pid {pid}: is another gate running?")
    me, my_start = self_identity()
    seg.write_i64(CREATOR_PID_OFFSET, me)
    seg.write_i64(CREATOR_START_OFFSET, my_start)
    if seg.read_i64(SEQ * 8) & 1:  # the previous gate died mid-write: make the word even again
        seg.write_i64(SEQ * 8, seg.read_i64(SEQ * 8) + 1)
    return seg


class GateStateReader:
    """``state()`` -> the last blob as the typed contract (kairos/gatestate.py), or None if there is none
    yet or it has the wrong shape; ``read()`` -> the raw JSON value (plus ``age_s``)."""

    __slots__ = ("_hdr", "_name", "_seg", "bad")

    def __init__(self, prefix: str) -> None:
        self._name = segment_name(prefix)
        self._seg: Segment | None = None
        self._hdr: memoryview | None = None
        self.bad = 0  # reads that found a blob of the wrong shape

    def state(self) -> GateState | None:
        """Parsed once per read; a wrong-shaped blob is counted and logged once until a good one comes back
        (a consumer then sees no gate state: fail closed)."""
        raw = self.read()
        if raw is None:
            return None
        try:
            state = parse(raw)
        except GateStateError as exc:
            if not self.bad:
                log.error("gate state of the wrong shape, treated as absent: %s", exc)
            self.bad += 1
            return None
        if self.bad:
            log.info("gate state readable again after %d bad read(s)", self.bad)
            self.bad = 0
        return state

    def read(self) -> dict[str, Any] | None:
        if self._hdr is None and not self._attach():
            return None
        hdr, buf = self._hdr, self._seg.buf  # type: ignore[union-attr]
        for attempt in range(READ_TRIES):
            seq = hdr[SEQ]
            if seq == 0:
                return None
            if not seq & 1:
                length, written = hdr[LENGTH], hdr[WRITTEN]
                payload = buf[PAYLOAD_OFFSET : PAYLOAD_OFFSET + length]
                if hdr[SEQ] == seq:
                    state = orjson.loads(payload)
                    state["age_s"] = max(time.time_ns() - written, 0) / 1e9
                    return state
            time.sleep(0 if attempt < 10 else 0.0001)
        return None

    def _attach(self) -> bool:
        try:
            seg = Segment.open(self._name)
        except RingNotFound:
            return False
        if seg.size <= PAYLOAD_OFFSET or seg.read_i64(MAGIC_OFFSET) != MAGIC:
            seg.close()
            return False
        self._seg, self._hdr = seg, memoryview(seg.buf)[:PAYLOAD_OFFSET].cast("q")
        return True

    def close(self) -> None:
        if self._hdr is not None and self._seg is not None:
            self._hdr.release()
            self._seg.close()
        self._hdr = self._seg = None

    @staticmethod
    def unlink(prefix: str) -> bool:
        """Remove the segment name (supervisor shutdown, tests)."""
        return unlink(segment_name(prefix))
