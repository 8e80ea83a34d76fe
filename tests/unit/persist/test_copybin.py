"""Binary COPY encoding: parsed back field by field with struct, the way PostgreSQL reads it."""

from __future__ import annotations

import struct

import numpy as np

from kairos.persist.copybin import COPY_HEADER, StageColumn, StageLayout
from kairos.persist.schema import STAGE_EVENTS, STAGE_MD
from kairos.records import EXEC_EVENT, MARKET_DATA


def parse(buf: bytes, formats: list[str]) -> list[tuple]:
    assert buf.startswith(COPY_HEADER) and buf.endswith(b"\xff\xff")
    pos, rows = len(COPY_HEADER), []
    while True:
        (ncol,) = struct.unpack_from(">h", buf, pos)
        pos += 2
        if ncol == -1:
            break
        row = []
        for fmt in formats:
            (length,) = struct.unpack_from(">i", buf, pos)
            pos += 4
            row.append(struct.unpack_from(fmt, buf, pos)[0] if fmt[1] != "s" else buf[pos : pos + length])
            pos += length
        assert ncol == len(formats)
        rows.append(tuple(row))
    assert pos == len(buf)
    return rows


def test_market_data_rows_round_trip() -> None:
    md = np.zeros(3, MARKET_DATA)
    md["ts_recv_ns"] = [1, 2, 3]
    md["venue_seq"] = [7, 2**63 + 5, 2**64 - 1]  # unsigned above i64 keeps its bit pattern
    md["price"] = [1.5, -2.25, np.inf]
    md["instrument"], md["venue"], md["kind"], md["flags"] = 9, 2, 3, [0, 1, 255]
    rows = parse(STAGE_MD.encode(md), [">q", ">q", ">q", ">d", ">d", ">d", ">d", ">i", ">h", ">h", ">h"])
    assert [r[0] for r in rows] == [1, 2, 3]
    assert [r[2] for r in rows] == [7, -(2**63) + 5, -1]
    assert [r[3] for r in rows] == [1.5, -2.25, float("inf")]
    assert [r[7:] for r in rows] == [(9, 2, 3, 0), (9, 2, 3, 1), (9, 2, 3, 255)]


def test_exec_event_client_order_id_is_32_raw_bytes() -> None:
    ev = np.zeros(1, EXEC_EVENT)
    ev["client_order_id"] = b"abc123"
    ev["event_seq"] = 42
    names = [c.name for c in STAGE_EVENTS.columns]
    fmts = [">32s" if c.wire == "S32" else ">" + {">i8": "q", ">f8": "d", ">i4": "i", ">i2": "h"}[c.wire]
            for c in STAGE_EVENTS.columns]
    (row,) = parse(STAGE_EVENTS.encode(ev), fmts)
    assert row[names.index("client_order_id")] == b"abc123".ljust(32, b"\0")
    assert row[names.index("event_seq")] == 42


def test_empty_batch_is_header_and_trailer_only() -> None:
    layout = StageLayout("t", (StageColumn("a", ">i8", "ts_recv_ns"),))
    assert layout.encode(np.zeros(0, MARKET_DATA)) == COPY_HEADER + b"\xff\xff"
    assert layout.ddl() == "CREATE TEMP TABLE IF NOT EXISTS t (a bigint)"
