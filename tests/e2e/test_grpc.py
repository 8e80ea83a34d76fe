"""The gRPC API over a real port: auth, validation, health, reflection, back-pressure, and the order
flow through the real rings to a gate process and back."""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from kairos.api.auth import no_token_message
from kairos.api.pb import SERVICE_NAME, pb, pb_grpc
from tests.process.support import AUTH, Supervised, child, wait_until

pytestmark = pytest.mark.slow
Start = Callable[..., Supervised]


def order(**kw: Any) -> Any:
    fields = dict(client_order_id="o1", venue=pb.VENUE_BINANCE, instrument="BTC-USDT", side=pb.SIDE_BUY,
                  order_type=pb.ORDER_TYPE_LIMIT, price=100.0, quantity=0.1)
    fields.update(kw)
    return pb.PlaceOrderRequest(**fields)


def code_of(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), err.value.details()


def test_health_is_serving(watch_engine: Start) -> None:
    sup = watch_engine()
    health = health_pb2_grpc.HealthStub(sup.channel)
    for service in ("", SERVICE_NAME):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_services(watch_engine: Start) -> None:
    sup = watch_engine()
    stub = reflection_pb2_grpc.ServerReflectionStub(sup.channel)
    replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    names = {s.name for reply in replies for s in reply.list_services_response.service}
    assert {SERVICE_NAME, "grpc.health.v1.Health"} <= names


def test_every_call_but_health_needs_the_bearer_token(watch_engine: Start) -> None:
    sup = watch_engine()
    stub = pb_grpc.TradingEngineStub(sup.bare)
    assert code_of(lambda: stub.PlaceOrder(order(), timeout=5)) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "missing metadata 'authorization: Bearer <token>' (kairosctl: KAIROS_API_TOKEN or --token)")
    bad = (("authorization", "Bearer nope"),)
    for call in (lambda: stub.PlaceOrder(order(), metadata=bad, timeout=5),
                 lambda: stub.CancelOrder(pb.CancelOrderRequest(client_order_id="x"), metadata=bad, timeout=5),
                 lambda: stub.SetTradingState(pb.SetTradingStateRequest(state=pb.TRADING_STATE_HALTED),
                                              metadata=bad, timeout=5)):
        assert code_of(call) == (grpc.StatusCode.UNAUTHENTICATED, "invalid API token")
    for read in (lambda **kw: stub.GetSystemStatus(pb.GetSystemStatusRequest(), timeout=5, **kw),
                 lambda **kw: stub.GetPositions(pb.GetPositionsRequest(), timeout=5, **kw),
                 lambda **kw: next(stub.StreamEvents(pb.StreamEventsRequest(), timeout=5, **kw))):
        assert code_of(read)[0] == grpc.StatusCode.UNAUTHENTICATED
        assert code_of(functools.partial(read, metadata=bad)) == (grpc.StatusCode.UNAUTHENTICATED, "invalid API token")
    assert sup.stub.GetSystemStatus(pb.GetSystemStatusRequest(), timeout=5).mode == "watch"  # with the token
    assert "unauthenticated call refused (total 1)" in sup.text()  # counted; later ones rate-limited
    health = health_pb2_grpc.HealthStub(sup.bare)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING


def test_without_a_configured_token_every_guarded_call_is_refused(watch_engine: Start) -> None:
    sup = watch_engine(supervisor__api_token="")
    assert code_of(lambda: sup.stub.PlaceOrder(order(), metadata=AUTH, timeout=5)) == (
        grpc.StatusCode.UNAUTHENTICATED, no_token_message(False))
    assert code_of(lambda: sup.stub.GetSystemStatus(pb.GetSystemStatusRequest(), timeout=5)) == (
        grpc.StatusCode.UNAUTHENTICATED, no_token_message(False))
    assert "API token not set" in sup.text()


@pytest.mark.parametrize(("fields", "message"), [
    ({"instrument": "DOGE-USDT"}, "unknown instrument 'DOGE-USDT'"),
    ({"quantity": 0.0}, "quantity must be a finite number > 0"),
    ({"quantity": -2.0}, "quantity must be a finite number > 0"),
    ({"quantity": math.nan}, "quantity must be a finite number > 0, got nan"),
    ({"price": math.inf}, "price must be a finite number > 0"),
    ({"side": 17}, "side: unknown value 17"),
    ({"order_type": 0}, "order_type is required"),
    ({"client_order_id": "x" * 33}, "at most 32"),
    ({"client_order_id": "no spaces"}, "ASCII letters and digits only"),
])
def test_malformed_requests_are_invalid_argument(watch_engine: Start, fields: dict, message: str) -> None:
    stub = watch_engine().stub
    code, details = code_of(lambda: stub.PlaceOrder(order(**fields), metadata=AUTH, timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message in details


def test_full_manual_ring_is_resource_exhausted(watch_engine: Start) -> None:
    stub = watch_engine(rings__manual_capacity=2, supervisor__order_timeout_s=0.2).stub
    first = [stub.PlaceOrder(order(client_order_id=f"q{i}"), metadata=AUTH, timeout=10) for i in range(2)]
    assert all(r.pending for r in first)  # no gate runs: queued, no outcome yet
    code, details = code_of(lambda: stub.PlaceOrder(order(client_order_id="q2"), metadata=AUTH, timeout=10))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "ring manual full" in details


def test_reads_without_a_gate_say_so(watch_engine: Start) -> None:
    stub = watch_engine().stub
    code, details = code_of(lambda: stub.GetBalance(pb.GetBalanceRequest(), timeout=5))
    assert code == grpc.StatusCode.UNAVAILABLE and "gate has not published" in details


def test_place_order_is_acked_once_per_client_order_id(gate_engine: Supervised) -> None:
    stub = gate_engine.stub
    first = stub.PlaceOrder(order(client_order_id="idem1"), metadata=AUTH, timeout=10)
    assert not first.pending and not first.duplicate
    assert first.event.kind == pb.EXEC_KIND_ACK and first.event.client_order_id == "idem1"
    assert first.event.instrument == "BTC-USDT" and first.event.venue == pb.VENUE_BINANCE
    again = stub.PlaceOrder(order(client_order_id="idem1"), metadata=AUTH, timeout=10)
    assert again.duplicate and again.event == first.event
    code, details = code_of(lambda: stub.PlaceOrder(order(client_order_id="idem1", quantity=0.2),
                                                    metadata=AUTH, timeout=10))
    assert code == grpc.StatusCode.ALREADY_EXISTS and "different order" in details
    news = [line for line in gate_engine.gate_log.read_text().splitlines() if line.startswith("gate NEW idem1 ")]
    assert len(news) == 1


def test_a_repeat_after_a_supervisor_restart_gets_the_first_result(engines: list[Supervised], shm_prefix: str,
                                                                  tmp_path: Path) -> None:
    gate_log = tmp_path / "gate.log"
    table = [child("gate", "gate", gate_log, phase=0, halts=True)]
    first_run = Supervised.harness(shm_prefix, tmp_path / "engine1.log", table)
    engines.append(first_run)
    first = first_run.connect().stub.PlaceOrder(order(client_order_id="keep1"), metadata=AUTH, timeout=10)
    assert first.event.kind == pb.EXEC_KIND_ACK and not first.duplicate
    assert first_run.stop() == 0
    second_run = Supervised.harness(shm_prefix, tmp_path / "engine2.log", table)
    engines.append(second_run)
    again = second_run.connect().stub.PlaceOrder(order(client_order_id="keep1"), metadata=AUTH, timeout=10)
    assert again.duplicate and not again.pending and again.event == first.event
    code, _ = code_of(lambda: second_run.stub.PlaceOrder(order(client_order_id="keep1", price=101.0),
                                                         metadata=AUTH, timeout=10))
    assert code == grpc.StatusCode.ALREADY_EXISTS
    news = [line for line in gate_log.read_text().splitlines() if line.startswith("gate NEW keep1 ")]
    assert len(news) == 1, "the repeat after the restart never reached the gate"


def test_server_assigns_an_id_when_none_is_given(gate_engine: Supervised) -> None:
    reply = gate_engine.stub.PlaceOrder(order(client_order_id=""), metadata=AUTH, timeout=10)
    assert reply.client_order_id.startswith("api") and reply.event.client_order_id == reply.client_order_id


def test_stream_events_fans_out_to_every_subscriber(gate_engine: Supervised) -> None:
    stub = gate_engine.stub
    streams = [stub.StreamEvents(pb.StreamEventsRequest(), timeout=30) for _ in range(2)]
    for stream in streams:
        assert dict(stream.initial_metadata())["kairos-subscribed"] == "1"
    got: list[list[Any]] = [[], []]

    def drain(i: int) -> None:
        for event in streams[i]:
            got[i].append(event)
            if event.client_order_id == "s2":
                return

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for coid in ("s1", "s2"):
        stub.PlaceOrder(order(client_order_id=coid), metadata=AUTH, timeout=10)
    for t in threads:
        t.join(15)
    for stream in streams:
        stream.cancel()
    assert [[e.client_order_id for e in events] for events in got] == [["s1", "s2"], ["s1", "s2"]]
    assert all(e.kind == pb.EXEC_KIND_ACK for events in got for e in events)


def test_cancel_order(gate_engine: Supervised) -> None:
    stub = gate_engine.stub
    stub.PlaceOrder(order(client_order_id="c1"), metadata=AUTH, timeout=10)
    done = stub.CancelOrder(pb.CancelOrderRequest(client_order_id="c1"), metadata=AUTH, timeout=10)
    assert not done.pending and done.event.kind == pb.EXEC_KIND_CANCELED
    unknown = stub.CancelOrder(pb.CancelOrderRequest(client_order_id="nope"), metadata=AUTH, timeout=10)
    assert unknown.event.kind == pb.EXEC_KIND_CANCEL_REJECT


def test_kill_switch_halts_cancels_and_resumes(gate_engine: Supervised) -> None:
    stub = gate_engine.stub
    stub.PlaceOrder(order(client_order_id="k1"), metadata=AUTH, timeout=10)
    wait_until(lambda: [o.client_order_id for o in stub.ListOrders(pb.ListOrdersRequest(), timeout=5).orders] == ["k1"],
               "the gate's published state to show the order (it may lag the ACK)")
    halt = pb.SetTradingStateRequest(state=pb.TRADING_STATE_HALTED, cancel_open_orders=True, reason="test")
    reply = stub.SetTradingState(halt, metadata=AUTH, timeout=10)
    assert (reply.previous, reply.current, reply.applied) == (pb.TRADING_STATE_ACTIVE, pb.TRADING_STATE_HALTED, True)
    wait_until(lambda: not stub.ListOrders(pb.ListOrdersRequest(), timeout=5).orders, "CANCEL_ALL to empty the book")
    rejected = stub.PlaceOrder(order(client_order_id="k2"), metadata=AUTH, timeout=10)
    assert rejected.event.kind == pb.EXEC_KIND_REJECT
    wait_until(lambda: stub.GetSystemStatus(pb.GetSystemStatusRequest(), timeout=5).trading_state
               == pb.TRADING_STATE_HALTED, "status to report HALTED (UNKNOWN while the gate's heartbeat is in doubt)")
    resume = stub.SetTradingState(pb.SetTradingStateRequest(state=pb.TRADING_STATE_ACTIVE), metadata=AUTH, timeout=10)
    assert resume.applied and resume.previous == pb.TRADING_STATE_HALTED


def test_balances_positions_orders_come_from_the_gate_state(gate_engine: Supervised) -> None:
    stub = gate_engine.stub
    stub.PlaceOrder(order(client_order_id="r1", side=pb.SIDE_SELL, price=123.5), metadata=AUTH, timeout=10)
    balances = stub.GetBalance(pb.GetBalanceRequest(venue=pb.VENUE_BINANCE), timeout=5)
    assert [(b.asset, b.free, b.locked) for b in balances.balances] == [("USDT", 1000.0, 5.0)]
    assert balances.state_age_s >= 0
    assert not stub.GetBalance(pb.GetBalanceRequest(venue=pb.VENUE_OKX), timeout=5).balances
    reply = stub.GetPositions(pb.GetPositionsRequest(), timeout=5)
    assert [(p.instrument, p.quantity, p.venue) for p in reply.positions] == [("BTC-USDT", 0.5, pb.VENUE_BINANCE)]
    assert [(n.strategy, n.instrument, n.net_quantity) for n in reply.strategy_nets] == [(1, "BTC-USDT", -0.002)]
    orders = wait_until(lambda: stub.ListOrders(pb.ListOrdersRequest(instrument="BTC-USDT"), timeout=5).orders,
                        "the order in the published gate state")
    assert [(o.client_order_id, o.side, o.price, o.state) for o in orders] == [
        ("r1", pb.SIDE_SELL, 123.5, pb.ORDER_STATE_ACK)]
    assert not stub.ListOrders(pb.ListOrdersRequest(instrument="ETH-USDT"), timeout=5).orders


def test_system_status_describes_every_process(gate_engine: Supervised) -> None:
    gate = gate_engine.wait_process("gate", lambda p: p.state == pb.CHILD_STATE_RUNNING and p.heartbeat_age_s >= 0,
                                    "RUNNING with a heartbeat")
    assert gate.managed and gate.pid > 0 and gate.self_state == "RUNNING"
    assert {(r.ring, r.consumer) for r in gate.rings} >= {("manual", "gate"), ("intents", "gate")}
    status = gate_engine.status()
    assert status.mode == "spawn" and {r.name for r in status.rings} >= {"manual", "events", "intents"}
    assert [p.role for p in status.processes] == ["gate", "supervisor"]


def test_a_taken_port_is_a_clear_startup_error(watch_engine: Start, engines: list[Supervised], shm_prefix: str,
                                               tmp_path: Any) -> None:
    first = watch_engine()
    second = Supervised.real(shm_prefix + "b", tmp_path / "second.log", "--watch", supervisor__grpc_port=first.port)
    engines.append(second)
    assert second.proc.wait(30) == 1
    assert f"cannot bind gRPC on 127.0.0.1:{first.port}" in second.text()
    assert "supervisor stopped (clean: shared memory removed)" in second.text()
