"""Spool framing, torn-tail repair, corruption skipping, rotation, checkpoints and the single-writer lock."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from kairos.errors import PersistError
from kairos.persist.spool import HEADER_LENGTH, Position, Spool, SpoolReader, segment_path, segments
from kairos.records import MARKET_DATA


def records(n: int, start: int = 0) -> np.ndarray:
    out = np.zeros(n, MARKET_DATA)
    out["venue_seq"] = np.arange(start, start + n)
    out["price"] = 100.0 + np.arange(n)
    return out


def read_all(spool: Spool, start: Position | None = None) -> list[np.ndarray]:
    reader = SpoolReader(spool, start or spool.checkpoint_of("t"))
    out = []
    while (frame := reader.next_frame()) is not None:
        out.append(np.frombuffer(frame.payload, MARKET_DATA))
    return out


def seqs(frames: list[np.ndarray]) -> list[int]:
    return [int(s) for f in frames for s in f["venue_seq"]]


def test_frames_read_back_in_order_with_stream_and_fingerprint(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for i in range(5):
        spool.append(2, 0xABC, records(3, 3 * i))
    reader = SpoolReader(spool, Position(0, 0))
    frame = reader.next_frame()
    assert (frame.stream, frame.fingerprint) == (2, 0xABC)
    assert seqs(read_all(spool)) == list(range(15))
    assert spool.end == Position(0, 5 * (HEADER_LENGTH + 3 * 64))
    spool.close()


def test_torn_tail_is_truncated_and_appends_continue(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for i in range(3):
        spool.append(1, 7, records(4, 4 * i))
    spool.close()
    path = segment_path(tmp_path, 0)
    size = path.stat().st_size
    os.truncate(path, size - 10)  # the last write was torn
    spool = Spool(tmp_path)
    assert spool.torn_bytes == HEADER_LENGTH + 4 * 64 - 10
    assert seqs(read_all(spool)) == list(range(8))
    spool.append(1, 7, records(2, 100))
    assert seqs(read_all(spool)) == [*range(8), 100, 101]
    spool.close()


def test_garbage_tail_without_frame_header_is_truncated(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(1, 7, records(2))
    spool.close()
    with open(segment_path(tmp_path, 0), "ab") as fh:
        fh.write(b"\x01\x02\x03")
    spool = Spool(tmp_path)
    assert spool.torn_bytes == 3
    assert seqs(read_all(spool)) == [0, 1]
    spool.close()


def test_corrupt_middle_frame_is_skipped_and_counted(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for i in range(3):
        spool.append(1, 7, records(2, 2 * i))
    spool.close()
    path = segment_path(tmp_path, 0)
    data = bytearray(path.read_bytes())
    frame_len = HEADER_LENGTH + 2 * 64
    data[frame_len + HEADER_LENGTH + 5] ^= 0xFF  # flip a payload byte of frame 2: CRC fails
    path.write_bytes(bytes(data))
    spool = Spool(tmp_path)
    assert spool.skipped_bytes == frame_len and spool.torn_bytes == 0
    reader = SpoolReader(spool, Position(0, 0))
    got = []
    while (frame := reader.next_frame()) is not None:
        got += list(np.frombuffer(frame.payload, MARKET_DATA)["venue_seq"])
    assert got == [0, 1, 4, 5]
    assert reader.skipped_bytes == frame_len
    spool.close()


def test_rotation_reader_crosses_segments_and_collect_drops_passed_ones(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=1000)
    for i in range(20):
        spool.append(1, 7, records(3, 3 * i))
    assert len(segments(tmp_path)) > 3
    assert seqs(read_all(spool, Position(0, 0))) == list(range(60))
    reader = SpoolReader(spool, Position(0, 0))
    for _ in range(10):
        last = reader.next_frame()
    spool.checkpoint("pg", last.end)
    removed = spool.collect(spool.checkpoint_of("pg"))
    assert removed == last.end.segment and segments(tmp_path)[0] == last.end.segment
    assert seqs(read_all(spool, spool.checkpoint_of("pg"))) == list(range(30, 60))
    spool.close()


def test_checkpoint_survives_reopen_and_resets_when_past_the_end(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    end = spool.append(1, 7, records(2))
    spool.checkpoint("redis", end)
    spool.close()
    spool = Spool(tmp_path)
    assert spool.checkpoint_of("redis") == end
    assert spool.checkpoint_of("never") == Position(0, 0)
    spool.checkpoint("redis", Position(0, end.offset + 999))  # spool repaired shorter after a crash
    assert spool.checkpoint_of("redis") == Position(0, 0)
    spool.close()


def test_second_writer_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    with pytest.raises(PersistError, match="in use"):
        Spool(tmp_path)
    spool.close()
    Spool(tmp_path).close()


def test_frame_bigger_than_the_read_chunk(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(1, 7, records(5000))
    spool.append(1, 7, records(1, 5000))
    reader = SpoolReader(spool, Position(0, 0), chunk_bytes=4096)
    sizes = []
    while (frame := reader.next_frame()) is not None:
        sizes.append(len(frame.payload) // 64)
    assert sizes == [5000, 1]
    spool.close()


def test_wait_wakes_a_reader_on_append(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    start = spool.end
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(spool.wait(start, 10.0)))
    waiter.start()
    spool.append(1, 7, records(1))
    waiter.join(10.0)
    assert woke == [True]
    assert spool.wait(spool.end, 0.01) is False
    spool.close()
