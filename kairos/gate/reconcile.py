"""Reconciliation at gate start: make the journal's orders and the venue's agree, per venue.

For every order the journal still has open, the venue's view (its open-order list, else a query by
client order id) decides: fills the journal missed become FILL reports (price: the venue's average
if it gives one, else the order's limit; fee: the venue's cumulative fee pro rata), an order that
ended becomes its end report, and an order the venue never received is rejected NOT_RECONCILED
(never sent again: the strategy decides) - but only once the request's validity window has
passed since it was journaled, so a request still travelling cannot appear afterwards. Open orders
the journal does not know are adopted.
Balances are then taken from the venue's REST snapshot; balance pushes received before it are
dropped (the snapshot supersedes them). Every change goes through `Blotter.apply`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kairos.execution.base import ExecReport, Executor
from kairos.gate.blotter import Blotter
from kairos.gate.orders import Order
from kairos.records import ExecKind, OrderState, OrderType, RejectReason, Side, Tif
from kairos.risk.state import Grid

log = logging.getLogger(__name__)
EPS = 1e-12
_END = {OrderState.CANCELED: ExecKind.CANCELED, OrderState.EXPIRED: ExecKind.EXPIRED}

ReservePerQty = Callable[[int, int, float], float]
"""(venue, side, price) -> what one unit of an adopted resting order reserves."""


def reconcile(blotter: Blotter, executor: Executor, grid: Grid, reserve: ReservePerQty,
              window_ns: int) -> list[tuple[Order, ExecReport]]:
    """Blocking (venue calls). Returns the (order, report) pairs applied, for the caller to publish.

    ``window_ns``: how long after it was sent a request can still reach the venue (recvWindow; the
    paper latency). An order the venue does not know is asked about again once that has passed.
    """
    venue = int(executor.venue)
    executor.balance_pushes()  # older than the snapshot: superseded by it
    snap = executor.snapshot()
    on_venue = {r.client_order_id: r for r in snap.open_orders}
    mine = [o for o in blotter.orders.open.values() if o.venue == venue]
    views = {o.coid: on_venue.pop(o.coid.decode("latin-1"), None) or _ask(executor, grid, o) for o in mine}
    missing = [o for o in mine if views[o.coid] is None]
    if missing:
        _wait_out(missing, window_ns)
        views.update({o.coid: _ask(executor, grid, o) for o in missing})
    changed = [c for o in mine for c in _apply(blotter, o, catch_up(o, views[o.coid]))]
    adopted = [o for o in (adopt(view, venue, grid, reserve) for view in on_venue.values()) if o is not None]
    for order in adopted:
        blotter.accept(order, time.time_ns())
        changed += _apply(blotter, order, catch_up(order, on_venue[order.coid.decode("latin-1")]))
    blotter.book.set_balances(venue, snap.balances)
    log.info("%s reconciled: %d journal orders checked (%d unknown to the venue), %d changes, %d adopted, "
             "%d venue open orders", executor.venue.name, len(mine), len(missing), len(changed), len(adopted),
             len(snap.open_orders))
    return changed


def _ask(executor: Executor, grid: Grid, order: Order) -> ExecReport | None:
    return executor.query(order.coid.decode("latin-1"), grid.symbol[order.k])


def _wait_out(orders: list[Order], window_ns: int) -> None:
    """Sleep until the newest of these orders can no longer reach the venue (at most one window)."""
    remaining = max(o.accepted_ns for o in orders) + window_ns - time.time_ns()
    if remaining > 0:
        time.sleep(min(remaining, window_ns) / 1e9)


def _apply(blotter: Blotter, order: Order, reports: list[ExecReport]) -> list[tuple[Order, ExecReport]]:
    wall_ns = time.time_ns()
    return [(order, r) for r in reports if blotter.apply(r, wall_ns) is not None]


def catch_up(order: Order, view: ExecReport | None) -> list[ExecReport]:
    """The reports that move ``order`` from the journal's state to the venue's ``view``."""
    coid = order.coid.decode("latin-1")
    if view is None:
        return [ExecReport(coid, ExecKind.REJECT, OrderState.REJECTED, reason=RejectReason.NOT_RECONCILED,
                           message="not on the venue after a gate restart")]
    if view.state == OrderState.REJECTED:
        return [ExecReport(coid, ExecKind.REJECT, OrderState.REJECTED, reason=RejectReason.VENUE_REJECTED,
                           venue_order_id=view.venue_order_id)]
    out = []
    if order.state == OrderState.NEW:
        out.append(ExecReport(coid, ExecKind.ACK, OrderState.ACK, venue_order_id=view.venue_order_id))
    missed = view.cum_qty - order.cum_qty
    if missed > EPS:
        done = view.state == OrderState.FILLED
        fee = view.fee * missed / view.cum_qty
        out.append(ExecReport(coid, ExecKind.FILL, OrderState.FILLED if done else OrderState.PARTIAL,
                              view.last_px or order.price, missed, view.cum_qty, fee, view.venue_order_id,
                              ts_exchange_ns=view.ts_exchange_ns, fee_asset=view.fee_asset))
    if view.state in _END:
        out.append(ExecReport(coid, _END[view.state], view.state, cum_qty=view.cum_qty,
                              venue_order_id=view.venue_order_id))
    return out


def adopt(view: ExecReport, venue: int, grid: Grid, reserve: ReservePerQty) -> Order | None:
    """An open order the journal never saw (placed by hand, or before the journal): track it."""
    if not grid.valid(venue, view.instrument) or view.side not in (Side.BUY, Side.SELL):
        log.warning("venue %d open order %s: unknown instrument/side, not adopted", venue, view.client_order_id)
        return None
    return Order(view.client_order_id.encode("latin-1"), venue, view.instrument, grid.key(venue, view.instrument),
                 0, int(view.side), int(OrderType.LIMIT), int(Tif.GTC), view.price, view.qty,
                 reserve(venue, int(view.side), view.price), 0, 0)
