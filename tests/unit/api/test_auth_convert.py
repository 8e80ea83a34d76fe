"""Auth decisions and enum/record conversions (the interceptor over a real port is in tests/e2e)."""

from __future__ import annotations

from types import SimpleNamespace

import grpc
import numpy as np
import pytest

from kairos.api.auth import MUTATING, BearerAuth, no_token_message
from kairos.api.convert import exec_event, from_pb, to_pb
from kairos.api.pb import pb
from kairos.config import InstrumentConfig
from kairos.errors import InvalidRequest
from kairos.instruments import InstrumentTable
from kairos.records import (
    EXEC_EVENT,
    ChildState,
    ExecKind,
    OrderState,
    OrderType,
    RejectReason,
    Side,
    Tif,
    TradingState,
    Venue,
)


def test_mutating_methods_are_the_three_verbs() -> None:
    assert {m.rsplit("/", 1)[1] for m in MUTATING} == {"PlaceOrder", "CancelOrder", "SetTradingState"}
    assert all(m.startswith("/kairos.v1.TradingEngine/") for m in MUTATING)


def test_refusals() -> None:
    auth = BearerAuth("s3cret")
    assert auth.refusal("Bearer s3cret") is None
    assert "missing metadata" in auth.refusal(None)
    assert auth.refusal("Bearer wrong") == "invalid API token"
    assert auth.refusal("s3cret") == "invalid API token"
    assert BearerAuth("").refusal("Bearer ") == no_token_message(False)
    assert "health checks and reads are served" in BearerAuth("", open_reads=True).refusal(None)


def test_refused_calls_are_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    auth = BearerAuth("s3cret")
    details = SimpleNamespace(method="/kairos.v1.TradingEngine/GetPositions", invocation_metadata=())
    for _ in range(3):
        handler = auth.intercept_service(lambda d: grpc.unary_unary_rpc_method_handler(lambda r, c: r), details)
        assert not handler.request_streaming and not handler.response_streaming
    assert auth.tally.counts == {"unauthenticated call refused": 3}
    assert "GetPositions: missing metadata" in caplog.text


def test_what_is_guarded() -> None:
    closed, open_reads = BearerAuth("t"), BearerAuth("t", open_reads=True)
    status, place = "/kairos.v1.TradingEngine/GetSystemStatus", "/kairos.v1.TradingEngine/PlaceOrder"
    reflection = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
    for auth in (closed, open_reads):
        assert not auth.guarded("/grpc.health.v1.Health/Check") and auth.guarded(place)
    assert closed.guarded(status) and closed.guarded(reflection)
    assert not open_reads.guarded(status) and not open_reads.guarded(reflection)


@pytest.mark.parametrize("kind", [Venue, Side, OrderType, Tif, ExecKind, OrderState, TradingState, RejectReason,
                                  ChildState])
def test_every_enum_member_round_trips(kind: type) -> None:
    for member in kind:
        number = to_pb(member)
        if member.name == "NONE" and kind is not RejectReason:
            assert number == 0
            continue
        assert from_pb(kind, number, "f") is member


def test_from_pb_rejects_unknown_numbers() -> None:
    with pytest.raises(InvalidRequest, match="f: unknown value 99; expected one of SIDE_BUY, SIDE_SELL"):
        from_pb(Side, 99, "f")


def test_exec_event_record_to_message() -> None:
    table = InstrumentTable((InstrumentConfig("BTC-USDT", "BTC", "USDT", {"binance": "BTCUSDT"}),))
    rec = np.zeros(1, EXEC_EVENT)[0]
    rec["kind"], rec["state"], rec["side"], rec["venue"] = ExecKind.FILL, OrderState.FILLED, Side.SELL, Venue.BINANCE
    rec["client_order_id"], rec["instrument"], rec["price"], rec["qty"] = b"abc1", 1, 101.5, 0.25
    rec["reason"], rec["event_seq"] = RejectReason.NONE, 17
    msg = exec_event(rec, table)
    assert (msg.kind, msg.state, msg.side, msg.venue) == (pb.EXEC_KIND_FILL, pb.ORDER_STATE_FILLED, pb.SIDE_SELL,
                                                          pb.VENUE_BINANCE)
    assert (msg.client_order_id, msg.instrument, msg.price, msg.quantity, msg.event_seq) == (
        "abc1", "BTC-USDT", 101.5, 0.25, 17)
    rec["kind"], rec["flags"], rec["instrument"] = ExecKind.STATE, TradingState.HALTED, 0
    state = exec_event(rec, table)
    assert state.trading_state == pb.TRADING_STATE_HALTED and state.instrument == ""
