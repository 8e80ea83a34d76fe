"""Journal compaction: a gate started on a long journal rewrites it, and the rewritten journal
rebuilds exactly the state the long one did; in memory, decisions are bounded the same way."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from kairos.gate.agent import GateAgent
from kairos.gate.compact import compact
from kairos.gate.orders import Order, Orders, Rejected
from kairos.records import Action, ExecKind, OrderState, RejectReason, Side, Tif, TradingState

from .conftest import Harness, intent
from .test_desk import has


def state_of(gate: GateAgent) -> dict[str, object]:
    """Everything replay rebuilds (balances come from the venue at reconcile, so they are left out)."""
    blotter, s = gate.desk.blotter, gate.state
    orders = blotter.orders
    return {
        "position": list(s.position), "entry": list(blotter.book.entry), "realised": list(blotter.book.realised),
        "realised_day": blotter.book.realised_day, "day": blotter.book.day, "trading": s.trading,
        "nets": dict(blotter.book.nets),
        "reserved": [round(x, 9) for x in s.reserved], "open_buy": list(s.open_buy), "open_sell": list(s.open_sell),
        "open_orders": s.open_orders,
        "open": {c: (o.state, o.cum_qty, round(o.reserved, 9), o.venue_order_id) for c, o in orders.open.items()},
        "decided": dict(orders.decided), "rejected": dict(orders.rejected),
        "closed": {c: (o.state, o.cum_qty) for c, o in orders.all.items()},
    }


def lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def trade_a_while(h: Harness, gate: GateAgent) -> None:
    """Fills both ways (position, average cost, realised PnL), a resting order, rejects, a state change."""
    h.mark(100.0, 101.0)
    h.send(intent("b1", qty=0.3))
    h.run(gate, has(ExecKind.FILL, "b1"))
    h.send(intent("s1", side=Side.SELL, price=100.0, qty=0.1))
    h.run(gate, has(ExecKind.FILL, "s1"))
    h.send(intent("rest", price=99.0, qty=0.2, tif=Tif.GTC))
    h.run(gate, has(ExecKind.ACK, "rest"))
    h.send(intent("huge", qty=50.0))                        # over risk.max_order_qty
    h.run(gate, has(ExecKind.REJECT, "huge"))
    h.send(intent("", action=Action.SET_STATE, flags=TradingState.REDUCE_ONLY), ring="manual")
    h.run(gate, lambda _: gate.state.trading == TradingState.REDUCE_ONLY)


def test_a_long_journal_is_compacted_at_start_and_rebuilds_the_same_state(
        make_harness: Callable[..., Harness]) -> None:
    h = make_harness(risk__journal_compact_entries="5")
    first = h.gate()
    trade_a_while(h, first)
    before = state_of(first)
    assert before["open"] and before["rejected"] and any(before["realised"]) and before["nets"], "covers every part"
    path = first.desk.blotter.journal.path
    long = lines(path)

    second = h.gate()                                       # replays > 5 entries: compacts
    assert state_of(second) == before
    short = lines(path)
    assert lines(path.with_name(path.name + ".prev")) == long
    assert [e["t"] for e in short[:2]] == ["B", "T"] and {e["t"] for e in short[2:]} == {"O", "R"}
    assert len(short) < len(long)

    third = h.gate()                                        # the compacted journal replays to the same state
    assert state_of(third) == before
    h.run(third, lambda _: third._ready)
    h.send(intent("b1", qty=0.3))                           # a reused id: still a duplicate
    h.run(third, lambda seen: seen[-1]["reason"] == RejectReason.DUPLICATE_ORDER)
    assert h.seen[-1]["client_order_id"] == b"b1"
    ts = int(next(e["tc"] for e in long if e["t"] == "R"))
    h.send(intent("huge", qty=50.0, ts=ts))                 # a redelivered rejected intent: its REJECT again
    h.run(third, has(ExecKind.REJECT, "huge", count=2))
    assert h.seen[-1]["reason"] == RejectReason.MAX_ORDER_QTY


def test_compaction_keeps_the_newest_decisions_and_every_open_order(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(risk__journal_compact_entries="0")
    gate = h.gate()
    trade_a_while(h, gate)
    blotter = gate.desk.blotter
    compact(blotter, 1, keep=1)
    kept = [e["c"] for e in lines(blotter.journal.path) if e["t"] in ("O", "R")]
    assert kept == ["rest", "huge"], "the open order (older) and the newest decision"
    h.send(intent("after", qty=0.1))                        # the reopened journal takes new entries
    h.run(gate, has(ExecKind.ACK, "after"))
    assert lines(blotter.journal.path)[-1]["c"] == "after"


def test_compaction_is_off_at_zero(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(risk__journal_compact_entries="0")
    trade_a_while(h, h.gate())
    second = h.gate()
    path = second.desk.blotter.journal.path
    assert not path.with_name(path.name + ".prev").exists()
    assert pytest.approx(second.state.position[second.state.grid.key(1, 1)]) == 0.2


def test_memory_keeps_the_newest_decisions_and_every_open_order() -> None:
    orders = Orders(limit=4)
    opened = [order(f"open{i}") for i in range(2)]
    for o in opened:
        orders.add(o)
    for i in range(10):
        closed = order(f"c{i}")
        orders.add(closed)
        closed.state = OrderState.FILLED
        orders.close(closed)
        orders.reject(f"r{i}".encode(), i, Rejected(1, 1, 7, 1, 100.0, 0.1, 0, RejectReason.MAX_ORDER_QTY))
    assert len(orders.decided) == 4
    assert list(orders.decided) == [b"open0", b"open1", b"c9", b"r9"]
    assert set(orders.all) == {b"open0", b"open1", b"c9"} and set(orders.rejected) == {b"r9"}
    assert set(orders.open) == {b"open0", b"open1"}


def order(coid: str) -> Order:
    return Order(coid.encode(), 1, 1, 5, 7, 1, 1, 1, 100.0, 0.1, 100.0, 0, 1)
