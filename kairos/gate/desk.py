"""Intents in, orders out: dedupe, pre-trade risk, journal, submit; commands; post-trade exits.

One ring batch is one call (`on_intents` / `on_manual`); its events are published before the
handler returns, i.e. before the ring stores the consumer cursor. A batch redelivered after a
crash is recognised intent by intent (same client order id and creation time = a replay): an
accepted one is not sent again, a rejected one has its REJECT event sent again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from operator import itemgetter

import numpy as np

from kairos.execution.base import ExecReport, Executor, OrderRequest
from kairos.gate.blotter import Blotter
from kairos.gate.events import EventWriter
from kairos.gate.metrics import GateMetrics
from kairos.gate.orders import Order, Rejected
from kairos.logs import ErrorTally
from kairos.records import (
    INTENT_ACTION,
    INTENT_CLIENT_ORDER_ID,
    INTENT_FIELDS,
    INTENT_FLAGS,
    INTENT_INSTRUMENT,
    INTENT_ORDER_TYPE,
    INTENT_PRICE,
    INTENT_QTY,
    INTENT_SIDE,
    INTENT_STRATEGY,
    INTENT_TIF,
    INTENT_TS_CREATED_NS,
    INTENT_TS_ORIGIN_NS,
    INTENT_VENUE,
    ORDER_INTENT,
    Action,
    ExecKind,
    IntentFlag,
    OrderState,
    OrderType,
    RejectReason,
    Side,
    Tif,
    TradingState,
)
from kairos.risk import Exit, PostTrade, PreTrade

log = logging.getLogger(__name__)
R = RejectReason
NEW, CANCEL, CANCEL_ALL, SET_STATE = (int(a) for a in Action)
_REDUCE_ONLY, _MANUAL = int(IntentFlag.REDUCE_ONLY), int(IntentFlag.MANUAL)
_SIDES = (None, Side.BUY, Side.SELL)
_TYPES = (None, OrderType.LIMIT, OrderType.MARKET, OrderType.LIMIT_MAKER)
_TIFS = (None, Tif.GTC, Tif.IOC, Tif.FOK)
_DEFAULT_TIF = {int(OrderType.LIMIT): int(Tif.GTC), int(OrderType.MARKET): int(Tif.IOC),
                int(OrderType.LIMIT_MAKER): int(Tif.GTC)}
_OK, _INVALID = int(R.NONE), int(R.INVALID_ORDER)
_UNKNOWN_INSTRUMENT, _VENUE_UNAVAILABLE = int(R.UNKNOWN_INSTRUMENT), int(R.VENUE_UNAVAILABLE)
_NOT_RECONCILED = int(R.NOT_RECONCILED)
_FILL, _HALTED = int(ExecKind.FILL), int(TradingState.HALTED)
_STATES = frozenset(int(t) for t in TradingState)
_BAD_INPUT = frozenset(int(r) for r in (R.INVALID_ORDER, R.UNKNOWN_INSTRUMENT, R.NON_NORMAL_NUMBER, R.TICK_SIZE,
                                         R.LOT_SIZE, R.MIN_NOTIONAL))
_NEW_FIELDS = itemgetter(INTENT_TS_CREATED_NS, INTENT_TS_ORIGIN_NS, INTENT_PRICE, INTENT_QTY, INTENT_CLIENT_ORDER_ID,
                         INTENT_INSTRUMENT, INTENT_STRATEGY, INTENT_VENUE, INTENT_SIDE, INTENT_ORDER_TYPE, INTENT_TIF,
                         INTENT_FLAGS)
"""What a NEW intent carries, read in one call (names, not positions; as fast as unpacking the tuple)."""
_REJECTED_FIELDS = itemgetter(INTENT_VENUE, INTENT_INSTRUMENT, INTENT_STRATEGY, INTENT_SIDE, INTENT_PRICE, INTENT_QTY,
                              INTENT_TS_ORIGIN_NS)
EXIT_RETRY_NS = 1_000_000_000
DISK_FULL = "DISK_FULL"  # the halt reason (blob ``trading_reason``) when the journal cannot be written


class Desk:
    __slots__ = ("_boot", "_current", "_exit_at", "_exits", "_held", "_post", "_pre", "_seq", "_stride", "_symbol",
                 "_tally", "_unrecorded", "blotter", "dirty", "events", "executors", "metrics", "reconciled", "state")

    def __init__(self, blotter: Blotter, pre: PreTrade, post: PostTrade, executors: Sequence[Executor | None],
                 events: EventWriter, metrics: GateMetrics) -> None:
        self.blotter, self.events, self.metrics = blotter, events, metrics
        self.state = blotter.book.s
        self.executors = list(executors)
        self.reconciled = [e is not None for e in self.executors]
        """Per venue: orders may go out (the gate agent clears it until the venue is reconciled)."""
        self._pre, self._post = pre, post
        self._stride, self._symbol = self.state.grid.stride, self.state.grid.symbol
        self._exits = post.exits_enabled
        self._exit_at = [0] * self.state.grid.size
        self._boot, self._seq = time.time_ns() // 1_000_000, 0
        self._unrecorded: list[ExecReport] = []
        self._tally = ErrorTally(log)
        self._held: tuple[set[bytes], set[bytes]] = (set(), set())  # per ring: rejects of a batch not yet done
        self._current = self._held[0]
        self.dirty = True
        blotter.on_journal_error = self.disk_full

    def on_intents(self, view: np.ndarray) -> None:
        self._batch(view, False)

    def on_manual(self, view: np.ndarray) -> None:
        self._batch(view, True)

    def _batch(self, view: np.ndarray, manual: bool) -> None:
        t_read = time.monotonic_ns()
        held = self._current = self._held[manual]
        for rec in view.tolist():
            action = rec[INTENT_ACTION]
            if action == NEW:
                self.new(rec, t_read, manual)
            elif action == CANCEL:
                self.cancel(rec)
            elif action == CANCEL_ALL:
                self.cancel_all(rec[INTENT_VENUE], rec[INTENT_INSTRUMENT])
            elif action == SET_STATE and manual and rec[INTENT_FLAGS] in _STATES:
                self.set_trading(rec[INTENT_FLAGS], "manual SET_STATE", rec[INTENT_TS_ORIGIN_NS])
            else:
                self._tally("bad intent: unknown action or SET_STATE not from the manual ring",
                            repr(rec[:INTENT_FIELDS]))
                self._refuse(rec, R.INVALID_ORDER)
        self.metrics.intents.add(len(view))  # after the batch: counters are off the path to the executor
        self.flush()  # RingFull: the cursor stays, the batch comes again (its rejects are in ``held``)
        held.clear()

    def new(self, rec: tuple, t_read: int, manual: bool) -> None:
        """One NEW intent (hot path): every check, then journal and hand to the venue's executor."""
        ts_created, ts_origin, price, qty, coid, inst, strategy, venue, side, otype, tif, flags = _NEW_FIELDS(rec)
        if coid in self.blotter.orders.decided:
            return self._again(rec)
        k = venue * self._stride + inst if 0 < inst < self._stride and 0 <= venue < len(self.executors) else 0
        tif = tif or _DEFAULT_TIF.get(otype, 0)
        reason = self._shape(coid, k, venue, tif)
        now = time.monotonic_ns()
        reason = reason or self._pre.check(self.state, venue, k, side, otype, price, qty, flags & _REDUCE_ONLY, now)
        if reason:
            return self._reject(rec, reason)
        rules = self.state.rules  # the check left the order rounded to the venue's grid and its reserve per unit
        order = Order(coid, venue, inst, k, strategy, side, otype, tif, rules.price, rules.qty, self._pre.unit,
                      ts_origin, ts_created, flags | (_MANUAL if manual else 0))
        if not self._send(order, now, t_read):
            self._reject(rec, R.TRADING_HALTED)
        return None

    def _shape(self, coid: bytes, k: int, venue: int, tif: int) -> int:
        """What the risk rules do not cover: a usable id and tif, an instrument on an enabled, reconciled venue."""
        if not coid.isalnum() or not 0 < tif < 4:
            return _INVALID
        if not k or not self._symbol[k]:
            return _UNKNOWN_INSTRUMENT
        if self.executors[venue] is None:
            return _VENUE_UNAVAILABLE
        return _OK if self.reconciled[venue] else _NOT_RECONCILED

    def _send(self, order: Order, now: int, t_read: int) -> bool:
        """Journal, submit, then book (open orders, reservation, rate token: read by the next check, not by
        this hand-off, so they follow it); False if the journal could not be written (the order is not sent)."""
        blotter = self.blotter
        try:
            blotter.write_accepted(order, time.time_ns())
        except OSError as exc:
            self.disk_full(exc)
            return False
        try:
            self.executors[order.venue].submit(OrderRequest(  # type: ignore[union-attr]
                order.coid.decode(), order.instrument, self._symbol[order.k], _SIDES[order.side],
                _TYPES[order.order_type], _TIFS[order.tif], order.price, order.qty, order.ts_origin_ns))
            t_sent = time.monotonic_ns()
        finally:  # journaled, so booked even if the submit raised (as a replay would book it)
            blotter.open(order)
            self.state.buckets[order.venue].take(now)
        self.metrics.sent(order, t_read, t_sent)
        self.dirty = True
        return True

    def _again(self, rec: tuple) -> None:
        """A decided client order id: a replay is answered as before, a real duplicate is refused."""
        coid = rec[INTENT_CLIENT_ORDER_ID]
        if self.blotter.orders.decided[coid] == rec[INTENT_TS_CREATED_NS]:
            self.metrics.replayed.add(1)
            rejected = self.blotter.orders.rejected.get(coid)
            if rejected is not None and coid not in self._current:  # else its event is already queued
                self.events.reject(coid, rejected, rejected.ts_origin_ns)
            return
        order = self.blotter.orders.all.get(coid)
        self._refuse(rec, R.DUPLICATE_ORDER, order.state if order else OrderState.REJECTED)

    def _reject(self, rec: tuple, reason: int) -> None:
        """Journal the decision (when the id is usable), then the REJECT event."""
        if reason in _BAD_INPUT:
            self._tally(f"bad intent: {R(reason).name}", repr(rec[:INTENT_FIELDS]))
        rejected, coid = _rejected(rec, reason), rec[INTENT_CLIENT_ORDER_ID]
        if coid.isalnum():
            self.blotter.reject(coid, rec[INTENT_TS_CREATED_NS], rejected, time.time_ns())
            self._current.add(coid)
        self.events.reject(coid, rejected, rec[INTENT_TS_ORIGIN_NS])
        self.metrics.reject(reason)
        self.dirty = True

    def _refuse(self, rec: tuple, reason: int, state: int = OrderState.REJECTED,
                kind: int = ExecKind.REJECT) -> None:
        """An event only: nothing to remember (duplicates, bad commands, cancels of unknown orders)."""
        self.events.reject(rec[INTENT_CLIENT_ORDER_ID], _rejected(rec, reason), rec[INTENT_TS_ORIGIN_NS], state, kind)
        self.metrics.reject(reason)

    def cancel(self, rec: tuple) -> None:
        coid = rec[INTENT_CLIENT_ORDER_ID]
        order = self.blotter.orders.open.get(coid)
        if order is None:
            known = self.blotter.orders.all.get(coid)
            self._refuse(rec, R.UNKNOWN_ORDER, known.state if known else OrderState.UNKNOWN, ExecKind.CANCEL_REJECT)
        elif not self.reconciled[order.venue]:  # its executor is not started: reconciliation settles it first
            self._refuse(rec, R.NOT_RECONCILED, order.state, ExecKind.CANCEL_REJECT)
        else:
            self._cancel(order)

    def cancel_all(self, venue: int, instrument: int) -> None:
        """Every matching open order is cancelled; on a venue not reconciled yet, reconciliation settles it."""
        for order in self.blotter.orders.matching(venue, instrument):
            if self.reconciled[order.venue]:
                self._cancel(order)
            else:
                self._tally("cancel not sent: venue not reconciled yet", order.coid.decode("latin-1"))

    def _cancel(self, order: Order) -> None:
        if not order.cancel_pending:
            order.cancel_pending = True
            self.executors[order.venue].cancel(  # type: ignore[union-attr]
                order.coid.decode(), order.instrument, self._symbol[order.k])

    def set_trading(self, state: int, why: str, ts_origin_ns: int = 0) -> None:
        """Journal, apply and announce (EXEC_EVENT kind STATE) a trading state. Leaving HALTED while the
        journal cannot be written is refused: counted, logged, and the unchanged state announced."""
        before = self.state.trading
        try:
            self.blotter.trading(state, why, time.time_ns())
        except OSError as exc:
            log.error("trading stays %s (%s): %s refused, the journal still cannot be written: %s",
                      TradingState(before).name, self.blotter.why, TradingState(state).name, exc)
            self.events.trading(before, ts_origin_ns)
            self.dirty = True
            return
        self.events.trading(state, ts_origin_ns)
        self.metrics.trading_state.set(state)
        self.dirty = True
        log.warning("trading state %s -> %s: %s", TradingState(before).name, TradingState(state).name, why)

    def disk_full(self, exc: OSError) -> None:
        """The journal cannot be written: halt (DISK_FULL) and stay up to say so; no order goes out
        unjournaled. The operator resumes once there is space (SetTradingState / kairosctl resume)."""
        self._tally("gate journal not writable: trading HALTED (DISK_FULL)", str(exc))
        if self.state.trading != _HALTED or not self.blotter.why.startswith(DISK_FULL):
            self.set_trading(_HALTED, f"{DISK_FULL}: the journal cannot be written ({exc})")

    def on_reports(self, executor: Executor) -> int:
        """Apply what an executor reported and queue the events (journaled after they are published)."""
        reports = executor.drain()
        wall = time.time_ns()
        for r in reports:
            order = self.blotter.apply(r, wall)
            if order is None:
                self._tally("execution report not applied (unknown order or illegal move)",
                            f"{executor.venue.name} {r.client_order_id} {r.kind.name} {r.state.name}")
            else:
                self.report(order, r)
        pushed = executor.balance_pushes()  # after the fills: the book decides which pushes are the truth
        if (pushed or reports) and self.blotter.book.settle(int(executor.venue), pushed):
            self.dirty = True
        return len(reports) + len(pushed)

    def report(self, order: Order, r: ExecReport) -> None:
        self.events.report(order, r)
        self._unrecorded.append(r)
        if r.kind == _FILL:
            self.metrics.fills.add(1)
        self.dirty = True

    def flush(self) -> None:
        """Publish queued events, then journal the reports they carried. RingFull keeps both queued."""
        published = self.events.published
        try:
            self.events.flush()
        finally:
            self.metrics.events.add(self.events.published - published)
        self.blotter.retry()
        if self._unrecorded:
            self.blotter.record(self._unrecorded, time.time_ns())  # what it could not write stays queued
        self.metrics.open_orders.set(self.state.open_orders)
        self.metrics.flush()

    def scan(self, now: int) -> None:
        """Post-trade, after new marks: stop-loss / take-profit exits, then the daily loss limit."""
        s, book = self.state, self.blotter.book
        if self._exits and s.trading != _HALTED:
            for k, pos in enumerate(s.position):
                if pos and now >= self._exit_at[k] and self.reconciled[k // self._stride]:
                    self._exit(k, pos, now)
        book.roll(time.time_ns())
        if s.trading != _HALTED and self._post.loss_breached(book.realised_day, book.unrealised()):
            self.set_trading(_HALTED, f"daily loss limit: realised {book.realised_day:.2f} + unrealised "
                                      f"{book.unrealised():.2f} <= -{self._post.loss_limit:.2f}")

    def _exit(self, k: int, pos: float, now: int) -> None:
        """A reduce-only MARKET order closing what is not already being closed (one per second at most)."""
        s = self.state
        why = self._post.exit(pos, self.blotter.book.entry[k], s.mark(k))
        qty = abs(pos) - (s.open_sell[k] if pos > 0.0 else s.open_buy[k])
        if why == Exit.NONE or qty <= 1e-12:
            return
        self._exit_at[k] = now + EXIT_RETRY_NS
        venue, inst = divmod(k, self._stride)
        coid = f"KG{self._boot:x}{self._seq:x}".encode()
        self._seq += 1
        wall = time.time_ns()
        side = int(Side.SELL if pos > 0.0 else Side.BUY)
        log.warning("%s: closing %g of %s on venue %d (entry %g, mark %g)", why.name, qty, s.grid.symbol[k],
                    venue, self.blotter.book.entry[k], s.mark(k))
        rec = np.zeros((), ORDER_INTENT)
        rec["ts_created_ns"] = rec["ts_origin_ns"] = wall
        rec["qty"], rec["client_order_id"], rec["instrument"], rec["venue"] = qty, coid, inst, venue
        rec["side"], rec["order_type"], rec["tif"], rec["action"] = side, OrderType.MARKET, Tif.IOC, NEW
        rec["flags"] = _REDUCE_ONLY
        self.new(rec.tolist(), now, False)


def _rejected(rec: tuple, reason: int) -> Rejected:
    return Rejected(*_REJECTED_FIELDS(rec), reason)
