"""Append-only JSON-lines journals: the gate's decision log and the paper venue's ledger.

One ``os.write`` per entry on an O_APPEND descriptor: an entry is in the page cache before the
effect it records (a submit, an event) happens, so it survives ``kill -9`` of the writer (not a
power cut: there is no fsync per entry). A torn last line is cut off when the file is reopened.

Gate entries (``t``): ``A`` accepted order (written before the submit), ``R`` rejected intent
(written before its REJECT event), ``E`` execution report applied, ``T`` trading-state change;
a compacted journal (`kairos.gate.compact`) starts with ``B`` (the book) and holds ``O`` (an order
as it stands) instead of ``A`` + ``E``.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from kairos.execution.base import ExecReport
from kairos.gate.orders import Order, Rejected
from kairos.records import ExecKind, OrderState, RejectReason

log = logging.getLogger(__name__)


class AppendLog:
    """A JSON-lines file written one entry per syscall and read back in order."""

    __slots__ = ("_fd", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        _cut_torn_tail(self._fd)

    def append(self, entry: dict[str, Any]) -> None:
        """Raises OSError (disk full) with the log as it was: a short write is cut off again, so the
        next entry never lands behind a torn line."""
        line = orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE)
        written = os.write(self._fd, line)
        if written != len(line):
            os.ftruncate(self._fd, os.fstat(self._fd).st_size - written)
            raise OSError(errno.ENOSPC, f"short journal write to {self.path}: {written} of {len(line)} bytes")

    def rewrite(self, entries: Iterable[dict[str, Any]]) -> int:
        """Replace the log with ``entries`` (compaction): written to a temp file, fsynced, renamed over
        it (directory fsynced too); the log before it stays as ``<name>.prev``. Returns the count.
        On an error (disk full) the log is left as it was and the error raised."""
        tmp, count = self.path.with_name(self.path.name + ".tmp"), 0
        try:
            with open(tmp, "wb") as fh:
                for entry in entries:
                    fh.write(orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE))
                    count += 1
                fh.flush()
                os.fsync(fh.fileno())
            prev = self.path.with_name(self.path.name + ".prev")
            prev.unlink(missing_ok=True)
            os.link(self.path, prev)  # the old log stays whole under .prev; the name switches atomically
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)  # the log itself is untouched and still open for appends
            raise
        os.close(self._fd)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND, 0o644)
        return count

    def replay(self) -> Iterator[dict[str, Any]]:
        """Every entry so far; a corrupt line is logged and skipped, never fatal."""
        with open(self.path, "rb") as fh:
            for number, line in enumerate(fh, start=1):
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError:
                    log.error("%s:%d: corrupt journal line skipped: %r", self.path, number, line[:120])

    def close(self) -> None:
        os.close(self._fd)


def _cut_torn_tail(fd: int) -> None:
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    tail = os.pread(fd, min(size, 1 << 16), max(size - (1 << 16), 0))
    keep = size - len(tail) + tail.rfind(b"\n") + 1
    log.warning("journal ended in a torn line: cutting %d bytes", size - keep)
    os.ftruncate(fd, keep)


def accepted(order: Order, wall_ns: int) -> dict[str, Any]:
    return {"t": "A", "c": order.coid.decode("latin-1"), "v": order.venue, "i": order.instrument, "k": order.k,
            "st": order.strategy, "s": order.side, "o": order.order_type, "f": order.tif, "p": order.price,
            "q": order.qty, "r": order.reserve_per_qty, "to": order.ts_origin_ns, "tc": order.ts_created_ns,
            "fl": order.flags, "ts": wall_ns}


def order_of(e: dict[str, Any]) -> Order:
    return Order(e["c"].encode("latin-1"), e["v"], e["i"], e["k"], e["st"], e["s"], e["o"], e["f"], e["p"], e["q"],
                 e["r"], e["to"], e["tc"], e["fl"])


def snapshot(order: Order, wall_ns: int) -> dict[str, Any]:
    return {**accepted(order, wall_ns), "t": "O", "st": order.state, "cq": order.cum_qty, "vo": order.venue_order_id,
            "an": order.accepted_ns}


def snapshot_of(e: dict[str, Any]) -> Order:
    order = order_of(e)
    order.state, order.cum_qty, order.venue_order_id, order.accepted_ns = e["st"], e["cq"], e["vo"], e["an"]
    return order


def rejected(coid: bytes, ts_created_ns: int, r: Rejected, wall_ns: int) -> dict[str, Any]:
    return {"t": "R", "c": coid.decode("latin-1"), "tc": ts_created_ns, "v": r.venue, "i": r.instrument,
            "st": r.strategy, "s": r.side, "p": r.price, "q": r.qty, "to": r.ts_origin_ns, "why": r.reason,
            "ts": wall_ns}


def rejection_of(e: dict[str, Any]) -> Rejected:
    return Rejected(e["v"], e["i"], e["st"], e["s"], e["p"], e["q"], e["to"], e["why"])


def report(r: ExecReport, wall_ns: int) -> dict[str, Any]:
    return {"t": "E", "c": r.client_order_id, "k": int(r.kind), "s": int(r.state), "px": r.last_px,
            "q": r.last_qty, "cq": r.cum_qty, "fee": r.fee, "fa": r.fee_asset, "vo": r.venue_order_id,
            "why": int(r.reason), "ts": wall_ns}


def report_of(e: dict[str, Any]) -> ExecReport:
    return ExecReport(e["c"], ExecKind(e["k"]), OrderState(e["s"]), e["px"], e["q"], e["cq"], e["fee"],
                      e["vo"], RejectReason(e["why"]), fee_asset=e["fa"])


def trading(state: int, why: str, wall_ns: int) -> dict[str, Any]:
    return {"t": "T", "s": state, "why": why, "ts": wall_ns}
