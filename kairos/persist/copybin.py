"""PostgreSQL binary COPY buffers built from numpy columns: no per-row Python, one ``tobytes``.

Every staged column is fixed width, so one row of ``COPY ... (FORMAT binary)`` is a numpy
structured record (big-endian)::

    +--------+---------+-----------+---------+-----------+-----+
    | i2 ncol| i4 len0 | value0    | i4 len1 | value1    | ... |
    +--------+---------+-----------+---------+-----------+-----+

The buffer is the 19-byte signature/flags/extension header, the rows, and the ``-1`` trailer.
Unsigned record fields go to the signed PostgreSQL type of the same width (bit pattern kept);
``S<n>`` byte strings go to ``bytea`` of exactly n bytes. This is PostgreSQL's wire layout, not a
ring record, so it is a field list here and not a dtype in records.py.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

import numpy as np

COPY_HEADER: Final = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER: Final = struct.pack(">h", -1)

PG_TYPES: Final = {
    ">i2": "smallint",
    ">i4": "integer",
    ">i8": "bigint",
    ">f8": "double precision",
}


@dataclass(frozen=True, slots=True)
class StageColumn:
    """One staged column: the record field it comes from and its big-endian wire type (``S32`` = bytea)."""

    name: str
    wire: str
    source: str = ""

    @property
    def field(self) -> str:
        return self.source or self.name

    @property
    def pg_type(self) -> str:
        return PG_TYPES.get(self.wire, "bytea")


@dataclass(frozen=True, slots=True)
class StageLayout:
    """A staging table's columns and the row dtype that encodes them."""

    table: str
    columns: tuple[StageColumn, ...]
    row: tuple[tuple[str, str], ...] = field(init=False)

    def __post_init__(self) -> None:
        parts: list[tuple[str, str]] = [("ncol", ">i2")]
        for col in self.columns:
            parts += [(f"len_{col.name}", ">i4"), (col.name, col.wire)]
        object.__setattr__(self, "row", tuple(parts))

    def ddl(self) -> str:
        body = ", ".join(f"{c.name} {c.pg_type}" for c in self.columns)
        return f"CREATE TEMP TABLE IF NOT EXISTS {self.table} ({body})"

    def copy_sql(self) -> str:
        return f"COPY {self.table} ({', '.join(c.name for c in self.columns)}) FROM STDIN (FORMAT binary)"

    def encode(self, records: np.ndarray) -> bytes:
        """The whole COPY payload for ``records`` (any dtype that has the source fields)."""
        out = np.empty(len(records), list(self.row))
        out["ncol"] = len(self.columns)
        for col in self.columns:
            out[f"len_{col.name}"] = out.dtype[col.name].itemsize
            out[col.name] = records[col.field]
        return COPY_HEADER + out.tobytes() + COPY_TRAILER
