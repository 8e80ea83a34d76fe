"""Executors against injected venue faults: 429 + Retry-After, unknown outcomes (5xx, timeouts, -1007, 50004)."""

from __future__ import annotations

import time

import pytest

from kairos.execution.base import ExecReport
from kairos.execution.rest import RestExecution
from kairos.records import ExecKind, OrderState, RejectReason, Side, Tif
from tests.process.test_executors_sim import VENUES, Sim, collect, ended, of, order, sim, symbol, touch

__all__ = ["sim"]  # the fixture, re-used

ORDER_PATH = {"binance": "/api/v3/order", "okx": "/api/v5/trade/order", "bybit": "/v5/order/create"}
QUERY = {"binance": ("GET", "/api/v3/order"), "okx": ("GET", "/api/v5/trade/order"),
         "bybit": ("GET", "/v5/order/realtime")}
CANCEL = {"binance": ("DELETE", "/api/v3/order"), "okx": ("POST", "/api/v5/trade/cancel-order"),
          "bybit": ("POST", "/v5/order/cancel")}
RATE_CODE = {"binance": "-1003", "okx": "50011", "bybit": "10006"}
UNKNOWN_CODE = {"binance": "-1007", "okx": "50004", "bybit": "10016"}


@pytest.mark.parametrize("name", ORDER_PATH)
def test_429_blocks_new_orders_locally_and_delays_cancels(sim: Sim, name: str) -> None:
    ex = sim.executor(name)
    bid, _ = touch(sim, name)
    ex.submit(order(sim, name, "rest1", Side.BUY, bid * 0.99, 0.01))
    collect(ex, lambda rs: bool(of(rs, "rest1")))
    sim.arm(VENUES[name], kind="rate_limit", method="POST", path=ORDER_PATH[name], retry_after_s=2)
    ex.submit(order(sim, name, "rl1", Side.BUY, bid * 0.99, 0.01))
    first = collect(ex, ended("rl1"))[-1]
    assert (first.reason, first.venue_code) == (RejectReason.VENUE_RATE_LIMIT, RATE_CODE[name])
    place = ex.budget.limits.cost("POST", ORDER_PATH[name])
    assert ex.budget.blocked_s(place) > 0                   # binance: the whole venue (429); okx, bybit: that endpoint
    ex.submit(order(sim, name, "rl2", Side.BUY, bid * 0.99, 0.01))              # still banned: never sent
    second = collect(ex, ended("rl2"))[-1]
    assert (second.reason, second.venue_code) == (RejectReason.VENUE_RATE_LIMIT, "LOCAL")
    ex.cancel("rest1", 1, symbol(name))               # binance: waits out the ban; okx, bybit: another endpoint
    reports = collect(ex, ended("rest1"))
    assert of(reports, "rest1")[-1] == (ExecKind.CANCELED, OrderState.CANCELED)
    assert ex.query("rl2", symbol(name)) is None
    assert ex.budget.banned_s() == 0 and ex.stats()["budget_bans" if name == "binance" else "budget_over"] == 1


def test_binance_weight_headers_are_tracked(sim: Sim) -> None:
    ex = sim.executor("binance")
    ex.snapshot()
    assert ex.budget.used(0) >= 26                             # openOrders(all) 80 + account 20, as the venue says
    assert ex.budget.limit(0) == 6000


@pytest.mark.parametrize("name", ORDER_PATH)
@pytest.mark.parametrize("fault", [{"kind": "unknown", "when": "after"},
                                   {"kind": "timeout", "when": "after", "delay_s": 1.5},
                                   {"kind": "http_500", "when": "after"}])
def test_unknown_outcome_of_a_placed_order_is_resolved_by_query(sim: Sim, name: str, fault: dict) -> None:
    ex = sim.executor(name)
    _, ask = touch(sim, name)
    sim.arm(VENUES[name], method="POST", path=ORDER_PATH[name], **fault)
    ex.submit(order(sim, name, "u1", Side.BUY, ask * 1.001, 0.002, tif=Tif.IOC))
    reports = collect(ex, ended("u1"))
    kinds = of(reports, "u1")
    assert kinds[0] == (ExecKind.ACK, OrderState.ACK) and kinds.count((ExecKind.ACK, OrderState.ACK)) == 1
    assert kinds[-1] in ((ExecKind.FILL, OrderState.FILLED), (ExecKind.EXPIRED, OrderState.EXPIRED))
    assert any(kind is ExecKind.FILL for kind, _ in kinds)
    assert ex.stats()["unknown_outcome"] == 1 and "unknown_not_placed" not in ex.stats()


@pytest.mark.parametrize("name", ORDER_PATH)
@pytest.mark.parametrize(("fault", "code"), [({"kind": "unknown"}, None),
                                             ({"kind": "timeout", "delay_s": 1.5}, "ReadTimeout"),
                                             ({"kind": "http_500"}, "HTTP500")])
def test_unknown_outcome_of_an_order_never_placed_is_rejected_after_the_window(sim: Sim, name: str, fault: dict,
                                                                              code: str | None) -> None:
    ex = sim.executor(name)
    bid, _ = touch(sim, name)
    sim.arm(VENUES[name], method="POST", path=ORDER_PATH[name], when="before", **fault)
    ex.submit(order(sim, name, "u2", Side.BUY, bid * 0.99, 0.01))
    report = collect(ex, ended("u2"))[-1]
    assert (report.kind, report.reason) == (ExecKind.REJECT, RejectReason.VENUE_UNAVAILABLE)
    assert report.venue_code == (code or UNKNOWN_CODE[name]) and "no such order" in report.message
    assert ex.stats()["unknown_not_placed"] == 1
    assert query_given_room(ex, name, "u2") is None


def query_given_room(ex: RestExecution, name: str, coid: str) -> ExecReport | None:
    """``ex.query`` once the query endpoint's window has room: while the outcome was unknown, every 20 ms sync
    tick asked about the order, and a query is ESSENTIAL (never waits), so right after the verdict it could be
    refused locally (Bybit: 10 queries a second)."""
    cost = ex.budget.limits.cost(*QUERY[name])
    deadline = time.monotonic() + 2.0
    while ex.budget.used(cost.window) + cost.weight > ex.budget.limit(cost.window) and time.monotonic() < deadline:
        time.sleep(0.02)
    return ex.query(coid, symbol(name))


@pytest.mark.parametrize("name", ORDER_PATH)
def test_failed_queries_are_retried_until_the_outcome_is_known(sim: Sim, name: str) -> None:
    ex = sim.executor(name)
    bid, _ = touch(sim, name)
    sim.arm(VENUES[name], kind="unknown", when="after", method="POST", path=ORDER_PATH[name])
    method, path = QUERY[name]
    sim.arm(VENUES[name], kind="http_500", method=method, path=path, count=2)
    ex.submit(order(sim, name, "u3", Side.BUY, bid * 0.99, 0.01))
    reports = collect(ex, lambda rs: bool(of(rs, "u3")))
    assert of(reports, "u3") == [(ExecKind.ACK, OrderState.ACK)]


@pytest.mark.parametrize("name", ORDER_PATH)
def test_unknown_outcome_of_a_cancel_is_resolved_by_query(sim: Sim, name: str) -> None:
    ex = sim.executor(name)
    bid, _ = touch(sim, name)
    ex.submit(order(sim, name, "c1", Side.BUY, bid * 0.99, 0.01))
    collect(ex, lambda rs: bool(of(rs, "c1")))
    method, path = CANCEL[name]
    sim.arm(VENUES[name], kind="unknown", when="after", method=method, path=path)
    ex.cancel("c1", 1, symbol(name))
    reports = collect(ex, ended("c1"))
    assert of(reports, "c1")[-1] == (ExecKind.CANCELED, OrderState.CANCELED)
    assert not any(r.kind is ExecKind.CANCEL_REJECT for r in reports)
