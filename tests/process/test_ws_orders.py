"""Orders over the WebSocket API against the real simulator (``procs.sim`` child): place and cancel go over the
order socket, REST takes over while it is down, and a reply lost mid-flight is resolved by a query, never by a
second order.
"""

from __future__ import annotations

from kairos.execution.rest import RestExecution
from kairos.records import ExecKind, OrderState, RejectReason, Side
from tests.process.test_executors_sim import Sim, collect, ended, of, order, sim, symbol, touch
from tests.process.test_private_streams import fault, streamed, wait_for

__all__ = ["sim"]
NAME = "binance"


def ws_ready(sim: Sim, **exec_changes: object) -> RestExecution:
    ex = streamed(sim, NAME, **exec_changes)
    wait_for(lambda: ex.orders is not None and ex.orders.ready, "order socket connected")
    return ex


def venue_orders(ex: RestExecution) -> list[str]:
    """Client order ids of the orders resting at the simulator (its signed REST openOrders)."""
    return [v.client_order_id for v in ex.parse_open_orders(ex._checked("open orders", ex.open_orders_call, None))]


def resting_price(sim: Sim, ex: RestExecution) -> float:
    bid, _ = touch(sim, NAME)
    return ex.filters(1).round_price(bid * 0.99, Side.BUY)


def test_place_and_cancel_go_over_the_order_socket(sim: Sim) -> None:
    ex = ws_ready(sim)
    ex.submit(order(sim, NAME, "w1", Side.BUY, resting_price(sim, ex), 0.01))
    reports = collect(ex, lambda rs: (ExecKind.ACK, OrderState.ACK) in of(rs, "w1"))
    ex.cancel("w1", 1, symbol(NAME))
    reports += collect(ex, ended("w1"))
    assert of(reports, "w1")[-1] == (ExecKind.CANCELED, OrderState.CANCELED)
    stats = ex.stats()
    assert stats["ws_requests"] == 2 and stats["ws_replies"] == 2 and stats.get("ws_fallback", 0) == 0
    assert venue_orders(ex) == []


def test_a_refusal_over_the_socket_is_the_venues_reject(sim: Sim) -> None:
    ex = ws_ready(sim)
    ex.submit(order(sim, NAME, "w2", Side.BUY, resting_price(sim, ex), 50.0))   # beyond the balance
    reject = collect(ex, ended("w2"))[-1]
    assert (reject.kind, reject.reason, reject.venue_code) == (ExecKind.REJECT,
                                                              RejectReason.VENUE_INSUFFICIENT_BALANCE, "-2010")
    assert "nsufficient" in reject.message
    assert ex.stats()["ws_replies"] == 1


def test_orders_go_over_rest_while_the_socket_cannot_connect(sim: Sim) -> None:
    ex = streamed(sim, NAME, private_url="ws://127.0.0.1:9/nothing-listens", stream_backoff_max_s=0.2)
    ex.submit(order(sim, NAME, "w3", Side.BUY, resting_price(sim, ex), 0.01))
    reports = collect(ex, lambda rs: (ExecKind.ACK, OrderState.ACK) in of(rs, "w3"))
    assert of(reports, "w3")[0] == (ExecKind.ACK, OrderState.ACK)
    assert ex.orders is not None and not ex.orders.ready and ex.stats()["ws_requests"] == 0
    assert venue_orders(ex) == ["w3"]


def test_a_reply_lost_mid_flight_is_resolved_by_query_and_never_sent_twice(sim: Sim) -> None:
    ex = ws_ready(sim, stream_backoff_max_s=0.2)
    fault(sim, NAME, "drop_reply", count=1)              # the simulator places it, then drops the connection
    ex.submit(order(sim, NAME, "w4", Side.BUY, resting_price(sim, ex), 0.01))
    reports = collect(ex, lambda rs: (ExecKind.ACK, OrderState.ACK) in of(rs, "w4"), timeout_s=15)
    stats = ex.stats()
    assert stats["ws_lost"] == 1 and stats["unknown_outcome"] == 1 and stats.get("unknown_not_placed", 0) == 0
    assert venue_orders(ex) == ["w4"]                    # one order at the venue, found by the query
    wait_for(lambda: ex.orders is not None and ex.orders.ready, "order socket reconnected")
    ex.cancel("w4", 1, symbol(NAME))
    reports += collect(ex, ended("w4"))
    assert [k for k, _ in of(reports, "w4")] == [ExecKind.ACK, ExecKind.CANCELED]
    assert venue_orders(ex) == []
