"""Orders over the venue's WebSocket against the real simulator (``procs.sim`` child), Binance (WS API
``order.place``/``order.cancel``), OKX (private WS ``order``/``cancel-order`` by instIdCode) and Bybit
(``/v5/trade`` ``order.create``/``order.cancel``): place and cancel go over the order socket, REST takes over
while it is down (or for an instrument the venue gave no instIdCode, or everywhere with
``execution.ws_orders: false``), and a reply lost mid-flight is resolved by a query, never by a second order.
"""

from __future__ import annotations

import functools
import threading

import pytest

from kairos.execution.rest import RestExecution
from kairos.records import ExecKind, OrderState, RejectReason, Side
from tests.process.test_executors_sim import Sim, collect, ended, of, order, sim, symbol, touch
from tests.process.test_private_streams import fault, streamed, wait_for

__all__ = ["sim"]
VENUES = ("binance", "okx", "bybit")
NO_BALANCE = {"binance": "-2010", "okx": "51008", "bybit": "170131"}


def ws_ready(sim: Sim, name: str, **exec_changes: object) -> RestExecution:
    ex = streamed(sim, name, **exec_changes)
    wait_for(lambda: ex.orders is not None and ex.orders.ready, "order socket connected")
    return ex


def venue_orders(ex: RestExecution) -> list[str]:
    """Client order ids of the orders resting at the simulator (its signed REST open orders)."""
    return [v.client_order_id for v in ex.parse_open_orders(ex._checked("open orders", ex.open_orders_call, None))]


def resting_price(sim: Sim, ex: RestExecution, name: str) -> float:
    bid, _ = touch(sim, name)
    return ex.filters(1).round_price(bid * 0.99, Side.BUY)


def place_and_cancel(sim: Sim, ex: RestExecution, name: str, coid: str) -> list[tuple[ExecKind, OrderState]]:
    ex.submit(order(sim, name, coid, Side.BUY, resting_price(sim, ex, name), 0.01))
    reports = collect(ex, lambda rs: (ExecKind.ACK, OrderState.ACK) in of(rs, coid))
    ex.cancel(coid, 1, symbol(name))
    return of(reports + collect(ex, ended(coid)), coid)


@pytest.mark.parametrize("name", VENUES)
def test_place_and_cancel_go_over_the_order_socket(sim: Sim, name: str) -> None:
    ex = ws_ready(sim, name)
    assert place_and_cancel(sim, ex, name, "w1")[-1] == (ExecKind.CANCELED, OrderState.CANCELED)
    stats = ex.stats()
    assert stats["ws_requests"] == 2 and stats["ws_replies"] == 2 and stats.get("ws_fallback", 0) == 0
    assert venue_orders(ex) == []


@pytest.mark.parametrize("name", VENUES)
def test_a_refusal_over_the_socket_is_the_venues_reject(sim: Sim, name: str) -> None:
    ex = ws_ready(sim, name)
    ex.submit(order(sim, name, "w2", Side.BUY, resting_price(sim, ex, name), 50.0))   # beyond the balance
    reject = collect(ex, ended("w2"))[-1]
    assert (reject.kind, reject.reason, reject.venue_code) == (ExecKind.REJECT,
                                                              RejectReason.VENUE_INSUFFICIENT_BALANCE, NO_BALANCE[name])
    assert "nsufficient" in reject.message
    assert ex.stats()["ws_replies"] == 1


@pytest.mark.parametrize("name", VENUES)
def test_orders_go_over_rest_while_the_socket_cannot_connect(sim: Sim, name: str) -> None:
    ex = streamed(sim, name, private_url="ws://127.0.0.1:9/nothing-listens", stream_backoff_max_s=0.2)
    ex.submit(order(sim, name, "w3", Side.BUY, resting_price(sim, ex, name), 0.01))
    reports = collect(ex, lambda rs: (ExecKind.ACK, OrderState.ACK) in of(rs, "w3"))
    assert of(reports, "w3")[0] == (ExecKind.ACK, OrderState.ACK)
    assert ex.orders is not None and not ex.orders.ready and ex.stats()["ws_requests"] == 0
    assert venue_orders(ex) == ["w3"]


@pytest.mark.parametrize("name", VENUES)
def test_ws_orders_false_keeps_orders_on_rest(sim: Sim, name: str) -> None:
    ex = streamed(sim, name, ws_orders=False)
    assert ex.orders is None                             # the order socket is not even opened
    assert place_and_cancel(sim, ex, name, "w5")[-1] == (ExecKind.CANCELED, OrderState.CANCELED)
    assert not any(key.startswith("ws_") for key in ex.stats())
    assert venue_orders(ex) == []


def test_an_okx_instrument_without_instidcode_goes_over_rest(sim: Sim) -> None:
    ex = ws_ready(sim, "okx")
    assert ex.inst_codes[symbol("okx")] > 0              # learned from the simulator's instruments endpoint
    del ex.inst_codes[symbol("okx")]                     # as if the venue had published none for it
    assert place_and_cancel(sim, ex, "okx", "w6")[-1] == (ExecKind.CANCELED, OrderState.CANCELED)
    stats = ex.stats()
    assert stats["ws_unroutable"] == 2 and stats["ws_requests"] == 0
    assert venue_orders(ex) == []


@pytest.mark.parametrize("name", VENUES)
def test_a_reply_lost_mid_flight_is_resolved_by_query_and_never_sent_twice(sim: Sim, name: str) -> None:
    ex = ws_ready(sim, name, stream_backoff_max_s=0.2)
    fault(sim, name, "drop_reply", count=1)              # the simulator places it, then drops the connection
    ex.submit(order(sim, name, "w4", Side.BUY, resting_price(sim, ex, name), 0.01))
    reports = collect(ex, lambda rs: (ExecKind.ACK, OrderState.ACK) in of(rs, "w4"), timeout_s=15)
    wait_for(lambda: ex.stats().get("unknown_outcome", 0) == 1, "the lost reply taken as unknown")  # the stream's
    stats = ex.stats()                                                   # ACK may come before the pool's query
    assert stats["ws_lost"] == 1 and stats["unknown_outcome"] == 1 and stats.get("unknown_not_placed", 0) == 0
    assert venue_orders(ex) == ["w4"]                    # one order at the venue, found by the query
    wait_for(lambda: ex.orders is not None and ex.orders.ready, "order socket reconnected")
    ex.cancel("w4", 1, symbol(name))
    reports += collect(ex, ended("w4"))
    assert [k for k, _ in of(reports, "w4")] == [ExecKind.ACK, ExecKind.CANCELED]
    assert venue_orders(ex) == []


@pytest.mark.parametrize("ws_orders", [True, False], ids=["ws", "rest"])
def test_every_report_rings_the_wake_before_drain_is_called(sim: Sim, ws_orders: bool) -> None:
    """The gate sleeps on its doorbell (``Executor.wake``): the ACK and the cancel ring it from the executor's own
    threads (order socket reader, REST worker, stream), each with its report (or balance push) already waiting."""
    ex = streamed(sim, "binance", ws_orders=ws_orders)
    if ws_orders:
        wait_for(lambda: ex.orders is not None and ex.orders.ready, "order socket connected")
    rung: list[tuple[int, int]] = []
    bell = threading.Semaphore(0)

    def wake() -> None:
        rung.append((threading.get_ident(), len(ex._reports) + len(ex.stream_sink._pushed)))  # a report or a push
        bell.release()

    ex.wake = wake
    ex.submit(order(sim, "binance", "k1", Side.BUY, resting_price(sim, ex, "binance"), 0.01))
    assert bell.acquire(timeout=10), "no wake for the ACK"
    assert of(ex.drain(), "k1") == [(ExecKind.ACK, OrderState.ACK)]
    ex.cancel("k1", 1, symbol("binance"))
    assert bell.acquire(timeout=10), "no wake for the cancel"
    reports = collect(ex, ended("k1"))
    assert of(reports, "k1")[-1] == (ExecKind.CANCELED, OrderState.CANCELED)
    assert all(waiting >= 1 for _, waiting in rung)
    assert threading.get_ident() not in {thread for thread, _ in rung}


@pytest.mark.parametrize("name", VENUES)
def test_the_order_socket_pays_its_connects_from_the_executors_budget(sim: Sim, name: str) -> None:
    """Its connect is charged as the private stream's (the venue counts connections per IP), before it is made."""
    ex = ws_ready(sim, name)
    assert ex.orders is not None and ex.stream is not None
    toll = ex.orders._tolls.connect
    assert isinstance(toll, functools.partial) and toll.func == ex._pay_all
    assert toll.args[0] == [ex.budget.limits.cost(*type(ex.stream).open_routes[0])]  # an HMAC key logs on nowhere
    assert ex.orders.counts["budget_deferred"] == 0 and ex.orders.counts["connects"] == 1
