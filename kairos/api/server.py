"""The gRPC server: TradingEngine behind the bearer-token interceptor, plus grpc.health.v1 and
server reflection (so grpcurl and load balancers work without the .proto files), in plaintext or,
with ``supervisor.tls_cert``/``tls_key``, over TLS (mutual with ``tls_client_ca``)."""

from __future__ import annotations

import logging
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from kairos.api.auth import BearerAuth, no_token_message
from kairos.api.pb import SERVICE_NAME, pb_grpc
from kairos.config import SupervisorConfig
from kairos.errors import ConfigError, SupervisorError

log = logging.getLogger(__name__)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class ApiServer:
    """Owns the grpc.Server; ``port`` is the bound one (useful with port 0 in tests)."""

    def __init__(self, servicer: Any, cfg: SupervisorConfig, workers: int = 16) -> None:
        token = cfg.api_token.reveal()
        if not token:
            log.warning("API token not set: %s", no_token_message(cfg.open_reads))
        elif cfg.open_reads:
            log.warning("supervisor.open_reads: status, orders, positions, balances and events need no token")
        # so_reuseport is on by default in gRPC: a second engine would silently share the port.
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"),
                                   interceptors=(BearerAuth(token, cfg.open_reads),),
                                   maximum_concurrent_rpcs=workers * 4, options=(("grpc.so_reuseport", 0),))
        pb_grpc.add_TradingEngineServicer_to_server(servicer, self._server)
        self._health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        names = (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, self._server)
        address = f"{cfg.grpc_host}:{cfg.grpc_port}"
        credentials = server_credentials(cfg)
        self.transport = "plaintext" if credentials is None else "TLS" + (" mutual" if cfg.tls_client_ca else "")
        try:
            if credentials is None:
                self.port = self._server.add_insecure_port(address)
            else:
                self.port = self._server.add_secure_port(address, credentials)
        except RuntimeError as exc:
            raise SupervisorError(f"cannot bind gRPC on {address}: {exc}") from exc
        if self.port == 0:
            raise SupervisorError(f"cannot bind gRPC on {address} (in use?)")
        self.address = f"{cfg.grpc_host}:{self.port}"

    def start(self) -> None:
        self._server.start()
        self.set_serving(True)
        log.info("gRPC API on %s (%s, %s, health, reflection)", self.address, self.transport, SERVICE_NAME)

    def set_serving(self, serving: bool) -> None:
        """Overall health ("") and the TradingEngine service."""
        status = SERVING if serving else NOT_SERVING
        for name in ("", SERVICE_NAME):
            self._health.set(name, status)

    def stop(self, grace_s: float = 1.0) -> None:
        self.set_serving(False)
        self._health.enter_graceful_shutdown()
        self._server.stop(grace_s).wait(grace_s + 1.0)


def server_credentials(cfg: SupervisorConfig) -> grpc.ServerCredentials | None:
    """TLS credentials from the configured PEM files, or None for plaintext."""
    if not cfg.tls_cert:
        return None
    cert = _pem(cfg.tls_cert, "supervisor.tls_cert")
    pair = ((_pem(cfg.tls_key, "supervisor.tls_key"), cert),)
    if not cfg.tls_client_ca:
        return grpc.ssl_server_credentials(pair)
    return grpc.ssl_server_credentials(pair, _pem(cfg.tls_client_ca, "supervisor.tls_client_ca"),
                                       require_client_auth=True)


def _pem(path: str, key: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", key) from None
    if b"-----BEGIN " not in data:
        raise ConfigError(f"{path} is not a PEM file", key)
    return data
