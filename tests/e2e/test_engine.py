"""The whole engine as `make run` starts it: `python -m procs.supervisor --sim` with every real process
(sim, persister on real PostgreSQL/Redis, gate, strategy, both feeds), driven over gRPC."""

from __future__ import annotations

import os
import re
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kairos.api.pb import pb
from tests.e2e.engine import sim_engine
from tests.process.support import AUTH, Supervised, pids_with_prefix, shm_left, wait_until
from tests.service.persist_support import free_port, fresh_redis_prefix, fresh_schema

pytestmark = [pytest.mark.slow, pytest.mark.service]
ROLES = ("sim", "persister", "gate", "strategy", "feed.binance", "feed.okx")


def engine_env(tmp: Path, pg_dsn: str, redis_url: str, schema: str, redis_prefix: str) -> dict[str, object]:
    ports = {name: free_port() for name in ("binance_rest", "binance_ws", "okx_rest", "okx_ws")}
    env: dict[str, object] = {f"sim__venues__{name.replace('_', '__')}_port": port for name, port in ports.items()}
    for venue, path in (("binance", "/stream"), ("okx", "/ws/v5/public")):
        env[f"venues__{venue}__endpoints__sim__rest_url"] = f"http://127.0.0.1:{ports[venue + '_rest']}"
        env[f"venues__{venue}__endpoints__sim__ws_url"] = f"ws://127.0.0.1:{ports[venue + '_ws']}{path}"
    env.update({
        "persister__enabled": "true", "persister__dsn": pg_dsn, "persister__redis_url": redis_url,
        "persister__schema": schema, "persister__redis_prefix": redis_prefix,
        "persister__spool_dir": tmp / "spool", "risk__journal_dir": tmp / "journal", "logging__dir": tmp / "log",
        "supervisor__heartbeat_timeout_s": "10", "supervisor__graceful_secs": "8", "supervisor__start_retries": "5",
        "supervisor__start_secs": "1.0",
    })
    return env


@pytest.fixture
def engine(shm_prefix: str, tmp_path: Path, pg_dsn: str, redis_url: str) -> Iterator[Supervised]:
    schemas, prefixes = fresh_schema(pg_dsn), fresh_redis_prefix(redis_url)
    env = engine_env(tmp_path, pg_dsn, redis_url, next(schemas), next(prefixes))
    try:
        with sim_engine(shm_prefix, tmp_path / "engine.log", ROLES, **env) as sup:
            yield sup
    finally:
        for gen in (schemas, prefixes):
            next(gen, None)


def place_until_accepted(sup: Supervised, prefix: str, **fields: Any) -> Any:
    """Market data needs a moment to give the gate its marks (REJECT NO_MARK before): retry, bounded."""
    request = dict(venue=pb.VENUE_BINANCE, instrument="BTC-USDT", side=pb.SIDE_BUY,
                   order_type=pb.ORDER_TYPE_MARKET, quantity=0.001, **fields)
    attempts = iter(range(200))

    def attempt() -> Any:
        reply = sup.stub.PlaceOrder(pb.PlaceOrderRequest(client_order_id=f"{prefix}{next(attempts)}", **request),
                                    metadata=AUTH, timeout=10)
        return reply if reply.event.kind != pb.EXEC_KIND_REJECT else None

    return wait_until(attempt, "an order the gate accepts", timeout_s=60, step_s=0.25)


def test_order_via_grpc_gets_ack_and_fill_events(engine: Supervised) -> None:
    stream = engine.stub.StreamEvents(pb.StreamEventsRequest(), timeout=90)
    assert dict(stream.initial_metadata())["kairos-subscribed"] == "1"
    seen: list[Any] = []
    filled = threading.Event()

    def follow() -> None:
        for event in stream:
            seen.append(event)
            if event.kind == pb.EXEC_KIND_FILL and event.client_order_id.startswith("e2e"):
                filled.set()
                return

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    placed = place_until_accepted(engine, "e2e")
    assert placed.event.kind in (pb.EXEC_KIND_ACK, pb.EXEC_KIND_FILL) and not placed.pending
    assert filled.wait(30), f"no FILL for {placed.client_order_id}; saw {seen}"
    stream.cancel()
    mine = [e for e in seen if e.client_order_id == placed.client_order_id]
    assert [e.kind for e in mine][:1] == [pb.EXEC_KIND_ACK] and mine[-1].kind == pb.EXEC_KIND_FILL
    assert mine[-1].quantity == pytest.approx(0.001) and mine[-1].price > 0
    wait_until(lambda: engine.stub.GetPositions(pb.GetPositionsRequest(), timeout=5).positions, "a position")
    status = wait_until(lambda: engine.stub.GetSystemStatus(pb.GetSystemStatusRequest(), timeout=5).order_latencies
                        or None, "traced order latencies", timeout_s=15, step_s=0.25)
    stages = {h.name: h for h in status}
    assert set(stages) == {"to_intent", "to_gate", "gate", "tick_to_order"}
    assert stages["tick_to_order"].count >= 1 and stages["tick_to_order"].p50_us > 0


def test_kill_9_of_each_child_is_restarted(engine: Supervised) -> None:
    for role in ROLES:
        before = engine.process(role)
        os.kill(before.pid, signal.SIGKILL)
        after = engine.wait_process(role, lambda p, b=before: p.restarts == b.restarts + 1 and p.pid != b.pid
                                    and p.state == pb.CHILD_STATE_RUNNING and p.heartbeat_age_s >= 0,
                                    "restarted after kill -9", timeout_s=60)
        assert after.last_exit_code == -signal.SIGKILL
    assert place_until_accepted(engine, "after").event.kind in (pb.EXEC_KIND_ACK, pb.EXEC_KIND_FILL)


def test_sigterm_stops_everything_cleanly(engine: Supervised, shm_prefix: str) -> None:
    assert engine.stop(signal.SIGTERM, timeout_s=60) == 0
    assert "supervisor stopped (clean: shared memory removed)" in engine.text()
    stopped = re.findall(r"(\S+) \(pid \d+\) exited with code 0: STOPPING -> STOPPED", engine.text())
    assert sorted(stopped[:2]) == ["feed.binance", "feed.okx"]  # every process exits 0, in dependency order
    assert stopped[2:] == ["strategy", "gate", "persister", "sim"]
    assert "shutdown: the gate has read CANCEL_ALL" in engine.text()
    assert shm_left(shm_prefix) == []
    assert pids_with_prefix(shm_prefix) == []
