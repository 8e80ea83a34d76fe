"""Spool streams and the batches sinks write: frames read back from the spool, grouped by record type.

A stream id in each spool frame says which ring the records came from; the frame's dtype
fingerprint must match that stream's dtype, otherwise the frame is not decoded at all (a spool
written by another build is dead-lettered, never misread).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final

import numpy as np
import orjson

from kairos.persist.gatestate import GATE_STATE_FINGERPRINT, BalanceRow, PositionRow, balance_rows, position_rows
from kairos.persist.spool import Frame, Position, SpoolReader
from kairos.records import EXEC_EVENT, MARKET_DATA, fingerprint
from kairos.venues import VENUES

Stream = IntEnum("Stream", {**{f"MD_{spec.name.upper()}": spec.md_stream for spec in VENUES},
                             "EVENTS": 3, "GATE_STATE": 4})
"""Spool stream ids (written to disk: never reused): ``MD_<VENUE>`` from the venue table, then the engine's own."""

MD_STREAMS: Final = frozenset(Stream[f"MD_{spec.name.upper()}"] for spec in VENUES)
STREAM_DTYPES: Final = {**dict.fromkeys(MD_STREAMS, MARKET_DATA), Stream.EVENTS: EXEC_EVENT}
STREAM_FINGERPRINTS: Final = {stream: fingerprint(dtype) for stream, dtype in STREAM_DTYPES.items()}
RING_STREAMS: Final = {**{f"md.{spec.name}": Stream[f"MD_{spec.name.upper()}"] for spec in VENUES},
                       "events": Stream.EVENTS}

WaitForData = Callable[[Position, float], bool]
"""``wait(after, timeout_s)``: block until the spool grows past ``after``; False on timeout."""


def decode(frame: Frame) -> np.ndarray | None:
    """The frame's records (zero-copy), or None if its stream or layout is unknown to this build."""
    dtype = STREAM_DTYPES.get(frame.stream)
    if dtype is None or frame.fingerprint != STREAM_FINGERPRINTS[frame.stream] or len(frame.payload) % dtype.itemsize:
        return None
    return np.frombuffer(frame.payload, dtype)


def decode_state(frame: Frame) -> tuple[list[BalanceRow], list[PositionRow]] | None:
    """Balance and position rows of a gate-state frame, or None if it does not parse."""
    if frame.fingerprint != GATE_STATE_FINGERPRINT:
        return None
    try:
        state = orjson.loads(frame.payload)
        return balance_rows(state), position_rows(state)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None


@dataclass(slots=True)
class Batch:
    """Spool frames up to ``end``: market data, execution events and gate-state rows, in spool order."""

    md: list[np.ndarray] = field(default_factory=list)
    events: list[np.ndarray] = field(default_factory=list)
    balances: list[BalanceRow] = field(default_factory=list)
    positions: list[PositionRow] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)
    undecodable: list[Frame] = field(default_factory=list)
    rows: int = 0
    end: Position | None = None

    def add(self, frame: Frame) -> None:
        self.end = frame.end
        if frame.stream == Stream.GATE_STATE:
            self._add_state(frame)
            return
        records = decode(frame)
        if records is None:
            self.undecodable.append(frame)
            return
        self.frames.append(frame)
        (self.events if frame.stream == Stream.EVENTS else self.md).append(records)
        self.rows += len(records)

    def _add_state(self, frame: Frame) -> None:
        rows = decode_state(frame)
        if rows is None:
            self.undecodable.append(frame)
            return
        self.frames.append(frame)
        self.balances += rows[0]
        self.positions += rows[1]
        self.rows += len(rows[0]) + len(rows[1])

    def market_data(self) -> np.ndarray:
        return np.concatenate(self.md) if self.md else np.empty(0, MARKET_DATA)

    def exec_events(self) -> np.ndarray:
        return np.concatenate(self.events) if self.events else np.empty(0, EXEC_EVENT)

    def __bool__(self) -> bool:
        return self.end is not None


def collect(reader: SpoolReader, wait: WaitForData, max_rows: int, flush_s: float) -> Batch:
    """Frames until ``max_rows`` or ``flush_s`` after the first frame (a backlog fills at once)."""
    batch = Batch()
    deadline = 0.0
    while batch.rows < max_rows:
        frame = reader.next_frame()
        if frame is not None:
            batch.add(frame)
            deadline = deadline or time.monotonic() + flush_s
            continue
        remaining = (deadline or time.monotonic() + flush_s) - time.monotonic()
        if remaining <= 0 or not wait(reader.position, remaining):
            break
    return batch
