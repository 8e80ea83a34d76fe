"""gRPC API latency against the real engine, with a bare gRPC round trip as the same-run baseline.

``python -m scripts.bench api [--json] [--quick]`` starts ``python -m procs.supervisor --sim`` (paper
execution with zero simulated venue latency, persister off, unique shm prefix, free ports, risk
rate limit lifted) and times, as
seen by a client on the same host, interleaved so noise hits all three alike:

- ``health``: grpc.health.v1 Check, a unary call that does no work (the baseline);
- ``place``: PlaceOrder of a small market order until its ACK, i.e. validate, manual ring, the gate
  process (risk, journal, paper executor), events ring, event pump, response;
- ``repeat``: PlaceOrder of an already placed id (the idempotency cache; no ring, no gate).

Percentiles in microseconds; ratios are ours / baseline (the API's cost in bare round trips).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kairos.api.pb import pb, pb_grpc

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(prefix: str, tmp: Path, grpc_port: int) -> dict[str, str]:
    ports = {k: _port() for k in ("binance_rest", "binance_ws", "okx_rest", "okx_ws")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAIROS")}
    env.update({f"KAIROS__SIM__VENUES__{k.upper().replace('_', '__')}_PORT": str(v) for k, v in ports.items()})
    for venue, path in (("binance", "/stream"), ("okx", "/ws/v5/public")):
        key = f"KAIROS__VENUES__{venue.upper()}__ENDPOINTS__SIM__"
        env[key + "REST_URL"] = f"http://127.0.0.1:{ports[venue + '_rest']}"
        env[key + "WS_URL"] = f"ws://127.0.0.1:{ports[venue + '_ws']}{path}"
    env.update({"KAIROS__SHM_PREFIX": prefix, "KAIROS__SUPERVISOR__GRPC_PORT": str(grpc_port),
                "KAIROS__SUPERVISOR__METRICS_PORT": "0",
                "KAIROS__SUPERVISOR__API_TOKEN": TOKEN, "KAIROS__PERSISTER__ENABLED": "false",
                "KAIROS__RISK__MAX_ORDERS_PER_SEC": "100000", "KAIROS__EXECUTION__PAPER_LATENCY_MS": "0",
                "KAIROS__RISK__JOURNAL_DIR": str(tmp / "journal"),
                "KAIROS__LOGGING__DIR": str(tmp / "log"), "KAIROS__LOGGING__CONSOLE": "false"})
    return env


def _order(coid: str, side: int) -> Any:
    return pb.PlaceOrderRequest(client_order_id=coid, venue=pb.VENUE_BINANCE, instrument="BTC-USDT", side=side,
                                order_type=pb.ORDER_TYPE_MARKET, quantity=0.001)


def _await_accepting(stub: Any, deadline: float) -> None:
    """Until the gate has marks (market orders are REJECT NO_MARK before the first ticks)."""
    for attempt in range(2000):
        try:
            reply = stub.PlaceOrder(_order(f"warm{attempt}", pb.SIDE_BUY), metadata=AUTH, timeout=5)
            if reply.event.kind == pb.EXEC_KIND_ACK:
                return
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                raise
        if time.monotonic() > deadline:
            raise RuntimeError("the engine did not accept an order within 60 s")
        time.sleep(0.2)


def _measure(channel: grpc.Channel, trips: int) -> dict[str, np.ndarray]:
    stub, health = pb_grpc.TradingEngineStub(channel), health_pb2_grpc.HealthStub(channel)
    check = health_pb2.HealthCheckRequest(service="")
    run = uuid.uuid4().hex[:8]
    out: dict[str, list[int]] = {"health": [], "place": [], "repeat": []}
    for i in range(trips):
        order = _order(f"b{run}{i}", pb.SIDE_BUY if i % 2 else pb.SIDE_SELL)
        t0 = time.perf_counter_ns()
        health.Check(check, timeout=5)
        t1 = time.perf_counter_ns()
        reply = stub.PlaceOrder(order, metadata=AUTH, timeout=5)
        t2 = time.perf_counter_ns()
        stub.PlaceOrder(order, metadata=AUTH, timeout=5)
        t3 = time.perf_counter_ns()
        if reply.pending or reply.event.kind != pb.EXEC_KIND_ACK:
            raise RuntimeError(f"order {order.client_order_id} not acked: {reply}")
        out["health"].append(t1 - t0)
        out["place"].append(t2 - t1)
        out["repeat"].append(t3 - t2)
        time.sleep(0.002)
    return {k: np.array(v) / 1e3 for k, v in out.items()}


def run(quick: bool) -> dict[str, Any]:
    trips = 100 if quick else 1000
    prefix = f"kairos-bapi-{uuid.uuid4().hex[:6]}"
    port = _port()
    with tempfile.TemporaryDirectory(prefix="kairos-bench-api-") as tmp:
        log = open(Path(tmp) / "engine.log", "wb")  # noqa: SIM115 - closed in finally
        proc = subprocess.Popen([sys.executable, "-m", "procs.supervisor", "--sim"], cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT, env=_env(prefix, Path(tmp), port))
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                grpc.channel_ready_future(channel).result(timeout=60)
                _await_accepting(pb_grpc.TradingEngineStub(channel), time.monotonic() + 60)
                lat = _measure(channel, trips)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
            log.close()
    p50 = {k: float(np.percentile(v, 50)) for k, v in lat.items()}
    rows = [{"call": k, "trips": len(v), "p50_us": p50[k], "p90_us": float(np.percentile(v, 90)),
             "p99_us": float(np.percentile(v, 99)), "max_us": float(v.max())} for k, v in lat.items()]
    return {"rows": rows, "ratios": {"place_p50_vs_bare_grpc": p50["place"] / p50["health"],
                                     "repeat_p50_vs_bare_grpc": p50["repeat"] / p50["health"]},
            "notes": ["client and engine on one 2-core host; place includes the gate process and paper executor"]}
