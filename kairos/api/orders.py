"""Idempotency for PlaceOrder: the first call with a client order id is the only one that sends.

A repeat (a client retrying after a timeout, a dropped connection or a supervisor restart) gets the
first call's outcome, waiting for it if it is still pending; a repeat with different parameters is
refused. Bounded LRU. With a log file the placements outlive the supervisor: each first call is
written before its order is queued, each outcome when it arrives, so after a restart a repeat gets
the recorded outcome, or ``pending`` when the outcome was never seen. The gate also rejects
duplicate ids (DUPLICATE_ORDER) as the last line of defence.

Log lines (JSON): ``{"c": id, "o": order}`` first call, ``{"c": id, "e": hex ExecutionEvent}`` its
outcome, ``{"c": id, "x": 1}`` abandoned (never queued). Rewritten to the live entries at start.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError

from kairos.api.events import PLACE_OUTCOMES, Outcome
from kairos.api.pb import pb
from kairos.api.validation import OrderCommand
from kairos.errors import SupervisorError
from kairos.journal import KEEP_DECISIONS, AppendLog
from kairos.logs import ErrorTally
from kairos.records import OrderType, Side, Tif, Venue

log = logging.getLogger(__name__)
LIMIT = KEEP_DECISIONS


class PlacementNotRecorded(SupervisorError):
    """The log could not be written (disk full): the order was not sent; PlaceOrder answers UNAVAILABLE."""


@dataclass(frozen=True, slots=True)
class Placement:
    cmd: OrderCommand
    outcome: Outcome


class Placements:
    __slots__ = ("_by_id", "_limit", "_lock", "_log", "_tally")

    def __init__(self, path: Path | None = None, limit: int = LIMIT) -> None:
        self._by_id: OrderedDict[str, Placement] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()
        self._log: AppendLog | None = None
        self._tally = ErrorTally(log)
        if path is not None:
            self._log = AppendLog(path)
            self._by_id = _restore(self._log, limit)

    def __len__(self) -> int:
        return len(self._by_id)

    def begin(self, cmd: OrderCommand, outcome: Outcome) -> tuple[Placement, bool]:
        """(placement, True) if this call must send the order; (the first placement, False) if not.
        Raises PlacementNotRecorded if the first call cannot be logged (then nothing is remembered)."""
        cid = cmd.client_order_id
        with self._lock:
            first = self._by_id.get(cid)
            if first is not None:
                self._by_id.move_to_end(cid)
                return first, False
            if self._log is not None:
                try:
                    self._log.append({"c": cid, "o": _order_row(cmd)})
                except OSError as exc:
                    raise PlacementNotRecorded(f"PlaceOrder log {self._log.path} not writable ({exc}): the order "
                                               f"was not sent; free space on risk.journal_dir and retry") from exc
                outcome.listener = lambda event: self._record(cid, outcome, event)
            placement = Placement(cmd, outcome)
            self._by_id[cid] = placement
            if len(self._by_id) > self._limit:
                self._by_id.popitem(last=False)
            return placement, True

    def abandon(self, placement: Placement) -> None:
        """The order never reached the ring (RingFull): a retry with this id may send it."""
        cid = placement.cmd.client_order_id
        with self._lock:
            if self._by_id.get(cid) is placement:
                del self._by_id[cid]
                if self._log is not None:
                    self._write({"c": cid, "x": 1})  # unwritten: a restart answers a retry pending

    def close(self) -> None:
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None

    def _record(self, cid: str, outcome: Outcome, event: Any) -> None:
        """Called by the event pump, which must never die of it: a failed write is logged and handed
        to the waiting call as ``outcome.error``."""
        with self._lock:
            if self._log is not None and not self._write({"c": cid, "e": event.SerializeToString().hex()}):
                outcome.error = (f"order {cid} was sent and answered, but its outcome could not be recorded in "
                                 f"{self._log.path} (disk full?): retry with the same client_order_id to read it "
                                 f"while the supervisor runs; free space on risk.journal_dir")

    def _write(self, entry: dict[str, Any]) -> bool:
        try:
            self._log.append(entry)  # type: ignore[union-attr]
        except OSError as exc:
            self._tally("PlaceOrder log not writable", f"{self._log.path}: {exc}")  # type: ignore[union-attr]
            return False
        return True


def _order_row(cmd: OrderCommand) -> dict[str, Any]:
    return {f.name: getattr(cmd, f.name) for f in dataclasses.fields(cmd)}


def _command(row: dict[str, Any]) -> OrderCommand:
    return OrderCommand(row["client_order_id"], Venue(row["venue"]), row["instrument"], Side(row["side"]),
                        OrderType(row["order_type"]), Tif(row["tif"]), row["price"], row["qty"], row["reduce_only"])


@dataclass(slots=True)
class _Logged:
    """One placement as read back: its command, its outcome (None: never seen) and the lines to keep."""

    cmd: OrderCommand
    lines: list[dict[str, Any]]
    event: Any = None


def _restore(journal: AppendLog, limit: int) -> OrderedDict[str, Placement]:
    """Read the log (bad lines are logged and skipped), keep the newest ``limit``; rewrite it compacted
    when that dropped anything."""
    rows: OrderedDict[str, _Logged] = OrderedDict()
    read = 0
    for entry in journal.replay():
        read += 1
        _fold(rows, entry, journal.path)
    while len(rows) > limit:
        rows.popitem(last=False)
    placements: OrderedDict[str, Placement] = OrderedDict()
    for cid, row in rows.items():
        outcome = Outcome(PLACE_OUTCOMES)
        outcome.set(row.event)  # None: the outcome was never seen, a repeat is answered pending at once
        placements[cid] = Placement(row.cmd, outcome)
    if read > sum(len(row.lines) for row in rows.values()):  # only when something is dropped
        try:
            journal.rewrite(line for row in rows.values() for line in row.lines)
        except OSError as exc:  # disk full: the log stays as it was (still correct, only longer)
            log.error("PlaceOrder log %s not compacted: %s", journal.path, exc)
    if placements:
        log.info("PlaceOrder idempotency: %d earlier placement(s) restored from %s", len(placements), journal.path)
    return placements


def _fold(rows: OrderedDict[str, _Logged], entry: Any, path: Path) -> None:
    """Apply one log line; a line that cannot be rebuilt is refused here, not at a client's repeat."""
    try:
        cid = entry["c"]
        if "o" in entry:
            rows[cid] = _Logged(_command(entry["o"]), [entry])
        elif "e" in entry and cid in rows:
            row = rows[cid]
            row.event = pb.ExecutionEvent.FromString(bytes.fromhex(entry["e"]))
            row.lines[1:] = [entry]
        elif "x" in entry:
            rows.pop(cid, None)
    except (KeyError, TypeError, ValueError, AttributeError, DecodeError) as exc:
        log.error("%s: unusable placement entry skipped (%r): %r", path, exc, str(entry)[:120])
