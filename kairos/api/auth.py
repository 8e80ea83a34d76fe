"""Bearer-token check for mutating rpcs, as a server interceptor (reads stay open on localhost).

With no token configured every mutating call is refused: an engine must never accept orders from
anyone who can reach the port just because an environment variable was forgotten.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

import grpc

from kairos.api.pb import SERVICE_NAME

MUTATING: frozenset[str] = frozenset(
    f"/{SERVICE_NAME}/{rpc}" for rpc in ("PlaceOrder", "CancelOrder", "SetTradingState")
)
NO_TOKEN_MESSAGE = (
    "mutating calls are disabled: the engine has no API token "
    "(set KAIROS__SUPERVISOR__API_TOKEN and restart the supervisor)"
)


class BearerAuth(grpc.ServerInterceptor):
    """Lets reads through; a mutating call needs ``authorization: Bearer <token>``."""

    def __init__(self, token: str, methods: frozenset[str] = MUTATING) -> None:
        self._expected = f"Bearer {token}".encode() if token else b""
        self._methods = methods

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        if details.method not in self._methods:
            return continuation(details)
        refusal = self.refusal(dict(details.invocation_metadata or ()).get("authorization"))
        return continuation(details) if refusal is None else _deny(refusal)

    def refusal(self, header: str | None) -> str | None:
        """None when the header carries the token, else the message the client gets."""
        if not self._expected:
            return NO_TOKEN_MESSAGE
        if not header:
            return "missing metadata 'authorization: Bearer <token>' (kairosctl: KAIROS_API_TOKEN or --token)"
        if not hmac.compare_digest(header.encode(), self._expected):
            return "invalid API token"
        return None


def _deny(message: str) -> grpc.RpcMethodHandler:
    def abort(_request: Any, context: grpc.ServicerContext) -> None:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return grpc.unary_unary_rpc_method_handler(abort)
