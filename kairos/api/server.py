"""The gRPC server: TradingEngine behind the bearer-token interceptor, plus grpc.health.v1 and
server reflection (so grpcurl and load balancers work without the .proto files)."""

from __future__ import annotations

import logging
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from kairos.api.auth import NO_TOKEN_MESSAGE, BearerAuth
from kairos.api.pb import SERVICE_NAME, pb_grpc
from kairos.errors import SupervisorError

log = logging.getLogger(__name__)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class ApiServer:
    """Owns the grpc.Server; ``port`` is the bound one (useful with port 0 in tests)."""

    def __init__(self, servicer: Any, host: str, port: int, token: str, workers: int = 16) -> None:
        if not token:
            log.warning("API token not set: %s", NO_TOKEN_MESSAGE)
        # so_reuseport is on by default in gRPC: a second engine would silently share the port.
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"),
                                   interceptors=(BearerAuth(token),), maximum_concurrent_rpcs=workers * 4,
                                   options=(("grpc.so_reuseport", 0),))
        pb_grpc.add_TradingEngineServicer_to_server(servicer, self._server)
        self._health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        names = (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, self._server)
        address = f"{host}:{port}"
        try:
            self.port = self._server.add_insecure_port(address)
        except RuntimeError as exc:
            raise SupervisorError(f"cannot bind gRPC on {address}: {exc}") from exc
        if self.port == 0:
            raise SupervisorError(f"cannot bind gRPC on {address} (in use?)")
        self.address = f"{host}:{self.port}"

    def start(self) -> None:
        self._server.start()
        self.set_serving(True)
        log.info("gRPC API on %s (%s, health, reflection)", self.address, SERVICE_NAME)

    def set_serving(self, serving: bool) -> None:
        """Overall health ("") and the TradingEngine service."""
        status = SERVING if serving else NOT_SERVING
        for name in ("", SERVICE_NAME):
            self._health.set(name, status)

    def stop(self, grace_s: float = 1.0) -> None:
        self.set_serving(False)
        self._health.enter_graceful_shutdown()
        self._server.stop(grace_s).wait(grace_s + 1.0)
