"""kairos.v1.TradingEngine: validate, enqueue into the `manual` ring, read shared state. Nothing else.

The servicer never touches child processes. Orders and the kill switch reach the gate only as
ORDER_INTENT records; their outcomes come back as EXEC_EVENTs through the EventHub. Reads come
from the gate's published state blob and the supervisor's status view.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

import grpc

from kairos.api import gatestate
from kairos.api.commands import ManualOrders
from kairos.api.convert import to_pb
from kairos.api.events import CANCEL_OUTCOMES, PLACE_OUTCOMES, EventHub
from kairos.api.orders import Placement, PlacementNotRecorded, Placements
from kairos.api.pb import pb, pb_grpc
from kairos.api.validation import Validator, trading_state
from kairos.errors import InvalidRequest, RingFull, SupervisorError
from kairos.gatestate import GateState
from kairos.logs import ErrorTally

log = logging.getLogger(__name__)
T = TypeVar("T")


class StatusSource(Protocol):
    def system_status(self) -> Any: ...

    def trading_blocked(self) -> str | None: ...


class GateSource(Protocol):
    def state(self) -> GateState | None: ...


class TradingEngineServicer(pb_grpc.TradingEngineServicer):
    def __init__(self, validator: Validator, manual: ManualOrders, hub: EventHub, gate: GateSource,
                 status: StatusSource, timeout_s: float, placements: Placements) -> None:
        self._validator, self._manual, self._hub = validator, manual, hub
        self._gate, self._status, self._timeout_s = gate, status, timeout_s
        self._placements = placements
        self._tally = ErrorTally(log)

    def PlaceOrder(self, request: Any, context: grpc.ServicerContext) -> Any:
        cmd = self._checked(context, "PlaceOrder", self._validator.place, request)
        self._refuse_if_blocked(context)
        outcome = self._hub.expect(cmd.client_order_id, PLACE_OUTCOMES)
        try:
            placement, first = self._placements.begin(cmd, outcome)
        except PlacementNotRecorded as exc:
            self._hub.forget(cmd.client_order_id, outcome)
            self._tally("PlaceOrder refused: its log is not writable", str(exc))
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
            raise  # abort raised already
        if not first:
            self._hub.forget(cmd.client_order_id, outcome)
            if placement.cmd != cmd:
                context.abort(grpc.StatusCode.ALREADY_EXISTS,
                              f"client_order_id {cmd.client_order_id} was already used for a different order")
            return self._placed(placement, True, context)
        try:
            self._manual.place(cmd)
        except RingFull as exc:
            self._placements.abandon(placement)
            self._hub.forget(cmd.client_order_id, outcome)
            self._abort_full(context, exc)
        return self._placed(placement, False, context)

    def _placed(self, placement: Placement, duplicate: bool, context: grpc.ServicerContext) -> Any:
        """The outcome; UNAVAILABLE for the call whose outcome could not be logged (a retry reads it)."""
        event = placement.outcome.wait(self._timeout_s)
        if placement.outcome.error and not duplicate:
            context.abort(grpc.StatusCode.UNAVAILABLE, placement.outcome.error)
        return pb.PlaceOrderResponse(client_order_id=placement.cmd.client_order_id, pending=event is None,
                                     duplicate=duplicate, event=event)

    def CancelOrder(self, request: Any, context: grpc.ServicerContext) -> Any:
        cmd = self._checked(context, "CancelOrder", self._validator.cancel, request)
        self._refuse_if_blocked(context)
        outcome = self._hub.expect(cmd.client_order_id, CANCEL_OUTCOMES)
        try:
            self._manual.cancel(cmd)
        except RingFull as exc:
            self._hub.forget(cmd.client_order_id, outcome)
            self._abort_full(context, exc)
        event = outcome.wait(self._timeout_s)
        if event is None:
            self._hub.forget(cmd.client_order_id, outcome)
        return pb.CancelOrderResponse(client_order_id=cmd.client_order_id, pending=event is None, event=event)

    def SetTradingState(self, request: Any, context: grpc.ServicerContext) -> Any:
        state = self._checked(context, "SetTradingState", trading_state, request.state)
        before = self._gate.state()
        previous, refused = gatestate.trading_state(before), gatestate.refused(before)
        log.warning("API: trading state -> %s%s (reason: %s, peer %s)", state.name,
                    " and cancel all open orders" if request.cancel_open_orders else "",
                    request.reason[:200] or "none given", context.peer())
        try:
            self._manual.set_state(state)
            if request.cancel_open_orders:
                self._manual.cancel_all()
        except RingFull as exc:
            self._abort_full(context, exc)
        applied = self._await_state(state, refused)
        if applied is None:
            now = self._gate.state()
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"the gate refused {state.name}: trading stays {now.trading_state if now else None} "
                          f"({gatestate.reason(now) or 'no reason given'})")
        return pb.SetTradingStateResponse(previous=to_pb(previous) if previous is not None else 0,
                                          current=to_pb(state), applied=applied)

    def _await_state(self, state: Any, refused: int) -> bool | None:
        """True once the gate applied ``state``, None if it refused it (its refusal count moved), False
        if neither happened within the timeout."""
        deadline = time.monotonic() + self._timeout_s
        while time.monotonic() < deadline:
            now = self._gate.state()
            if gatestate.trading_state(now) is state:
                return True
            if gatestate.refused(now) > refused:
                return None
            time.sleep(0.02)
        return False

    def GetBalance(self, request: Any, context: grpc.ServicerContext) -> Any:
        venue = self._checked(context, "GetBalance", self._validator.venue, request.venue, False)
        blob = self._gate_blob(context)
        return pb.GetBalanceResponse(balances=gatestate.balances(blob, venue), state_age_s=blob.age_s)

    def ListOrders(self, request: Any, context: grpc.ServicerContext) -> Any:
        venue = self._checked(context, "ListOrders", self._validator.venue, request.venue, False)
        symbol = request.instrument
        self._checked(context, "ListOrders", self._validator.instrument, symbol, venue, False)
        blob = self._gate_blob(context)
        orders = gatestate.orders(blob, venue, symbol)
        return pb.ListOrdersResponse(orders=orders, state_age_s=blob.age_s)

    def GetPositions(self, request: Any, context: grpc.ServicerContext) -> Any:
        blob = self._gate_blob(context)
        return pb.GetPositionsResponse(positions=gatestate.positions(blob), state_age_s=blob.age_s,
                                       strategy_nets=gatestate.strategy_nets(blob))

    def GetSystemStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._status.system_status()

    def StreamEvents(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            sub = self._hub.subscribe()
        except SupervisorError as exc:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        context.send_initial_metadata((("kairos-subscribed", "1"),))  # events from here on are delivered
        try:
            while context.is_active():
                events = sub.take(0.5)
                yield from events
                if sub.overflowed:
                    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                  f"stream fell more than {sub.queue_len} events behind; reconnect")
                if sub.closed and not events:
                    return
        finally:
            self._hub.unsubscribe(sub)

    def _checked(self, context: grpc.ServicerContext, rpc: str, check: Callable[..., T], *args: Any) -> T:
        try:
            return check(*args)
        except InvalidRequest as exc:
            self._tally(f"invalid {rpc} request", str(exc))
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise  # abort raised already; keeps type checkers honest

    def _refuse_if_blocked(self, context: grpc.ServicerContext) -> None:
        reason = self._status.trading_blocked()
        if reason:
            context.abort(grpc.StatusCode.UNAVAILABLE, reason)

    def _gate_blob(self, context: grpc.ServicerContext) -> GateState:
        blob = self._gate.state()
        if blob is None:
            context.abort(grpc.StatusCode.UNAVAILABLE,
                          "the gate has not published its state yet, or one of the wrong shape (see the log)")
        return blob

    def _abort_full(self, context: grpc.ServicerContext, exc: RingFull) -> None:
        self._tally("manual ring full", str(exc))
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"the gate is not keeping up: {exc}")
