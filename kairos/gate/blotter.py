"""Orders, book and journal changed together, by the same code live, on replay and on reconcile.

Write-ahead rules (docs/RISK.md, "exactly once"): an accepted order is journaled before it is
submitted; a rejected intent before its REJECT event; a trading-state change before its STATE
event. Execution reports are applied at once, published as events, and journaled after the publish
(`record`), so a crash in between re-derives them from the venue at the next start (at-least-once
events, never a lost one).
"""

from __future__ import annotations

from collections.abc import Iterable

from kairos.execution.base import ExecReport
from kairos.gate import journal as J
from kairos.gate.book import Book
from kairos.gate.journal import AppendLog
from kairos.gate.orders import Order, Orders, Rejected, can_move, is_terminal
from kairos.records import ExecKind

_FILL, _CANCEL_REJECT = int(ExecKind.FILL), int(ExecKind.CANCEL_REJECT)


class Blotter:
    __slots__ = ("book", "journal", "orders")

    def __init__(self, orders: Orders, book: Book, journal: AppendLog) -> None:
        self.orders = orders
        self.book = book
        self.journal = journal

    def accept(self, order: Order, wall_ns: int, record: bool = True) -> None:
        """A new order: journal it (before the caller submits it), count it open, reserve funds."""
        order.accepted_ns = wall_ns
        if record:
            self.journal.append(J.accepted(order, wall_ns))
        self.orders.add(order)
        self.book.open(order)

    def reject(self, coid: bytes, ts_created_ns: int, rejected: Rejected, wall_ns: int, record: bool = True) -> None:
        if record:
            self.journal.append(J.rejected(coid, ts_created_ns, rejected, wall_ns))
        self.orders.reject(coid, ts_created_ns, rejected)

    def trading(self, state: int, why: str, wall_ns: int, record: bool = True) -> None:
        if record:
            self.journal.append(J.trading(state, why, wall_ns))
        self.book.s.trading = state

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
            self.book.fill(order, r.last_px, r.last_qty, r.fee, r.fee_asset, wall_ns)
            order.cum_qty += r.last_qty
        order.state = r.state
        order.venue_order_id = r.venue_order_id or order.venue_order_id
        if is_terminal(order.state):
            order.cancel_pending = False
            self.book.close(order)
            self.orders.close(order)
        return order

    def record(self, reports: Iterable[ExecReport], wall_ns: int) -> None:
        """Journal reports already applied and published."""
        for r in reports:
            self.journal.append(J.report(r, wall_ns))

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
