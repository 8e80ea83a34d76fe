"""Orders, book and journal changed together, by the same code live, on replay and on reconcile.

Write-ahead rules (docs/RISK.md, "exactly once"): an accepted order is journaled before it is
submitted; a rejected intent before its REJECT event; a trading-state change before its STATE
event. Execution reports are applied at once, published as events, and journaled after the publish
(`record`), so a crash in between re-derives them from the venue at the next start (at-least-once
events, never a lost one).

A journal that cannot be written (disk full, any OSError): `accept` (`write_accepted`) raises, so
the order is never sent; a rejection or a halt still takes effect (nothing is sent) and reports
stay queued, each reported to ``on_journal_error`` (the desk halts trading, DISK_FULL); leaving
HALTED raises. A halt that could not be journaled is written before any other entry once the
journal works again (`retry` each duty cycle), so a restart after the disk was freed still starts
HALTED.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kairos.execution.base import ExecReport
from kairos.gate import journal as J
from kairos.gate.book import Book
from kairos.gate.orders import Order, Orders, Rejected, can_move, is_terminal
from kairos.journal import AppendLog
from kairos.records import ExecKind, TradingState

_FILL, _CANCEL_REJECT = int(ExecKind.FILL), int(ExecKind.CANCEL_REJECT)
_HALTED = int(TradingState.HALTED)


class Blotter:
    __slots__ = ("book", "journal", "on_journal_error", "orders", "pending", "refused", "why")

    def __init__(self, orders: Orders, book: Book, journal: AppendLog) -> None:
        self.orders = orders
        self.book = book
        self.journal = journal
        self.why = ""  # the reason given for the current trading state
        self.refused = 0  # state changes refused because the journal could not be written
        self.pending: dict[str, Any] | None = None  # a halt not journaled yet
        self.on_journal_error: Callable[[OSError], None] = _raise

    def accept(self, order: Order, wall_ns: int, record: bool = True) -> None:
        """A new order: journal it (before the caller submits it), count it open, reserve funds."""
        if record:
            self.write_accepted(order, wall_ns)
        else:
            order.accepted_ns = wall_ns
        self.open(order)

    def write_accepted(self, order: Order, wall_ns: int) -> None:
        """Journal an accepted order; OSError: not written, so it must not be sent. The desk sends it
        before `open` books it (nothing reads the book in between: the hand-off comes sooner)."""
        order.accepted_ns = wall_ns
        self._flush()
        self.journal.append(J.accepted(order, wall_ns))

    def open(self, order: Order) -> None:
        """Count a journaled order open and reserve its funds."""
        self.orders.add(order)
        self.book.open(order)

    def reject(self, coid: bytes, ts_created_ns: int, rejected: Rejected, wall_ns: int, record: bool = True) -> None:
        if record:
            self._write(J.rejected(coid, ts_created_ns, rejected, wall_ns))
        self.orders.reject(coid, ts_created_ns, rejected)

    def trading(self, state: int, why: str, wall_ns: int, record: bool = True) -> None:
        """A halt applies even when it cannot be journaled; any other state raises OSError then (and
        does not apply): trading resumes only with a journal that works."""
        if record:
            entry = J.trading(state, why, wall_ns)
            try:
                self._flush()
                self.journal.append(entry)
            except OSError:
                if state != _HALTED:
                    self.refused += 1
                    raise
                self.pending = entry
        self.book.s.trading = state
        self.why = why

    def retry(self) -> None:
        """Journal a halt that could not be written, as soon as the journal works again."""
        if self.pending is not None:
            try:
                self._flush()
            except OSError as exc:
                self.on_journal_error(exc)

    def _flush(self) -> None:
        if self.pending is not None:
            self.journal.append(self.pending)
            self.pending = None

    def _write(self, entry: dict[str, Any]) -> bool:
        try:
            self._flush()
            self.journal.append(entry)
        except OSError as exc:
            self.on_journal_error(exc)
            return False
        return True

    def apply(self, r: ExecReport, wall_ns: int) -> Order | None:
        """Apply one report; None if it names no order of ours or is an illegal move (the desk logs it)."""
        order = self.orders.all.get(r.client_order_id.encode("latin-1"))
        if order is None:
            return None
        if r.kind == _CANCEL_REJECT:
            order.cancel_pending = False
            return order
        filled = r.kind == _FILL and r.last_qty > 0.0
        if not can_move(order, r.state, filled):
            return None
        if filled:
            self.book.fill(order, r.last_px, r.last_qty, r.fee, r.fee_asset, wall_ns, r.ts_exchange_ns)
            order.cum_qty += r.last_qty
        order.state = r.state
        order.venue_order_id = r.venue_order_id or order.venue_order_id
        if is_terminal(order.state):
            order.cancel_pending = False
            self.book.close(order)
            self.orders.close(order)
        return order

    def record(self, reports: list[ExecReport], wall_ns: int) -> None:
        """Journal reports already applied and published; those written leave ``reports``, the rest
        stay for the next call (a report is never journaled twice: a replay would apply it twice)."""
        written = 0
        for r in reports:
            if not self._write(J.report(r, wall_ns)):
                break
            written += 1
        del reports[:written]

    def replay(self) -> int:
        """Rebuild orders, positions, PnL and trading state from the journal; returns entries read."""
        count = 0
        for e in self.journal.replay():
            count += 1
            kind = e["t"]
            if kind == "A":
                self.accept(J.order_of(e), e["ts"], record=False)
            elif kind == "R":
                self.reject(e["c"].encode("latin-1"), e["tc"], J.rejection_of(e), e["ts"], record=False)
            elif kind == "E":
                self.apply(J.report_of(e), e["ts"])
            elif kind == "T":
                self.trading(e["s"], e["why"], e["ts"], record=False)
            elif kind == "O":
                self._restore(J.snapshot_of(e))
            elif kind == "B":
                self.book.restore({int(k): v for k, v in e["k"].items()}, e["rd"], e["day"],
                                  {(st, inst): net for st, inst, net in e["sn"]})
        return count

    def _restore(self, order: Order) -> None:
        """An order snapshot: open ones count and reserve again (what remains of them), closed ones are remembered."""
        if self.orders.restore(order):
            self.book.open(order)


def _raise(exc: OSError) -> None:
    raise exc
