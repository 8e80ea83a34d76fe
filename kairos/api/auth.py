"""Bearer-token check for every rpc but health checks, as a server interceptor.

Positions, balances and the event stream tell anyone who can reach the port what the engine
holds and does, so reads need the token too unless ``supervisor.open_reads`` says this box is
trusted. With no token configured every guarded call is refused: an engine must never accept
orders (or show its book) to anyone who can reach the port because a variable was forgotten.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from typing import Any

import grpc
from grpc_health.v1 import health

from kairos.api.pb import SERVICE_NAME
from kairos.logs import ErrorTally

log = logging.getLogger(__name__)

MUTATING: frozenset[str] = frozenset(
    f"/{SERVICE_NAME}/{rpc}" for rpc in ("PlaceOrder", "CancelOrder", "SetTradingState")
)
OPEN_SERVICE = f"/{health.SERVICE_NAME}/"
"""Health checks stay open: load balancers and systemd probes carry no token."""


def no_token_message(open_reads: bool) -> str:
    """What every guarded call answers when the engine has no token configured."""
    served = "health checks and reads" if open_reads else "only health checks"
    return (f"the engine has no API token: {served} are served "
            "(set KAIROS__SUPERVISOR__API_TOKEN and restart the supervisor)")


class BearerAuth(grpc.ServerInterceptor):
    """A guarded call needs ``authorization: Bearer <token>``; health, and reads when ``open_reads``, do not."""

    def __init__(self, token: str, open_reads: bool = False) -> None:
        self._expected = f"Bearer {token}".encode() if token else b""
        self._open_reads = open_reads
        self.tally = ErrorTally(log)  # refusals are counted and logged, rate-limited (a scan must not flood the log)

    def guarded(self, method: str) -> bool:
        if method.startswith(OPEN_SERVICE):
            return False
        return method in MUTATING or not self._open_reads

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None or not self.guarded(details.method):
            return handler
        refusal = self.refusal(dict(details.invocation_metadata or ()).get("authorization"))
        if refusal is None:
            return handler
        self.tally("unauthenticated call refused", f"{details.method}: {refusal}")
        return _deny(handler, refusal)

    def refusal(self, header: str | None) -> str | None:
        """None when the header carries the token, else the message the client gets."""
        if not self._expected:
            return no_token_message(self._open_reads)
        if not header:
            return "missing metadata 'authorization: Bearer <token>' (kairosctl: KAIROS_API_TOKEN or --token)"
        if not hmac.compare_digest(header.encode(), self._expected):
            return "invalid API token"
        return None


def _deny(handler: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
    """An UNAUTHENTICATED handler of the same shape as the real one (streams must stay streams)."""

    def abort(_request: Any, context: grpc.ServicerContext) -> None:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    shapes = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    return shapes[handler.request_streaming, handler.response_streaming](
        abort, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)
