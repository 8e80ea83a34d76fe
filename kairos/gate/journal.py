"""The gate journal's entries, written to a `kairos.journal.AppendLog`.

Gate entries (``t``): ``A`` accepted order (written before the submit), ``R`` rejected intent
(written before its REJECT event), ``E`` execution report applied, ``T`` trading-state change;
a compacted journal (`kairos.gate.compact`) starts with ``B`` (the book) and holds ``O`` (an order
as it stands) instead of ``A`` + ``E``.
"""

from __future__ import annotations

from typing import Any

from kairos.execution.base import ExecReport
from kairos.gate.orders import Order, Rejected
from kairos.records import ExecKind, OrderState, RejectReason


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
