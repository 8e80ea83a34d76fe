"""The order of work on the gate's hot path: what is read in which duty cycle, what is booked when."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kairos.gate.agent import GateAgent
from kairos.records import OrderState, Side, Venue

from .conftest import Harness, intent


def ready(h: Harness) -> GateAgent:
    gate = h.gate()
    h.mark(100.0, 101.0)
    for _ in range(100):
        gate.do_work()
        if gate._ready:
            return gate
    raise AssertionError("the gate did not reconcile within 100 duty cycles")


def test_an_intent_is_read_in_the_cycle_that_applies_reports(make_harness: Callable[..., Harness]) -> None:
    """The previous order's ACK and FILL (this cycle's events) do not hold the next intent back a cycle."""
    h = make_harness()
    gate = ready(h)
    h.send(intent("o1"))
    gate.do_work()
    orders = gate.desk.blotter.orders
    assert orders.all[b"o1"].state == OrderState.NEW                  # sent; the paper venue answers at the next drain
    h.send(intent("o2", side=Side.SELL, price=100.0))
    assert gate.do_work() >= 3                             # o1's ACK and FILL, and o2
    assert b"o2" in orders.all and not orders.open.get(b"o1")
    assert [bytes(e["client_order_id"]) for e in h.run(gate, cycles=3)][:2] == [b"o1", b"o1"]


def test_an_order_whose_submit_raises_is_still_booked(make_harness: Callable[..., Harness]) -> None:
    """Journaled before the submit, booked after it: a submit that raises leaves it booked, as a replay would."""
    h = make_harness()
    gate = ready(h)
    paper = gate._executors[Venue.BINANCE]

    def broken(req: object) -> None:
        raise RuntimeError("venue adapter bug")

    paper.submit = broken
    h.send(intent("o1", qty=0.1))
    with pytest.raises(RuntimeError, match="adapter bug"):
        gate.do_work()
    s, k = gate.state, gate.state.grid.key(Venue.BINANCE, 1)
    assert b"o1" in gate.desk.blotter.orders.open and s.open_orders == 1
    assert s.open_buy[k] == pytest.approx(0.1)
    assert s.reserved[s.grid.quote_slot[k]] == pytest.approx(101.0 * 0.1 * 1.001)
    entries = list(gate.desk.blotter.journal.replay())
    assert [e["c"] for e in entries if e["t"] == "A"] == ["o1"]


def test_executor_reports_ring_the_gates_doorbell(make_harness: Callable[..., Harness]) -> None:
    """Each executor's ``wake`` is the doorbell the idle gate sleeps on: a report taken by the venue's threads
    ends that sleep at once (the next idle finds the bell rung and returns without waiting)."""
    agent = make_harness().gate()
    bell = agent._waiter.bell
    executors = [e for e in agent._executors if e is not None]
    assert bell is not None and executors and all(e.wake == bell.release for e in executors)
    executors[0].wake()
    assert bell.value == 1
    agent.idle(0)
    assert bell.value == 0
