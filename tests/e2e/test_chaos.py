"""Chaos: the whole engine (`procs.supervisor --sim`, persister on a fresh PostgreSQL schema and Redis
prefix, paper trading against the simulator, manual orders flowing over gRPC) while a seeded RNG
kill -9s a random child every 1-3 s for 60 s. Afterwards, without any signal to the supervisor,
every child must be RUNNING again within 60 s, and the books must balance: no client order id
twice in the gate journal or the DB, gate positions equal the DB fills, and every market-data
record published is in the DB or counted as shed/overrun."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import psycopg2
import pytest

from kairos import config
from kairos.api.pb import pb
from kairos.instruments import InstrumentTable
from kairos.records import MARKET_DATA, ExecKind, Side
from kairos.ring import Ring
from kairos.status import StatusBoard
from tests.e2e.test_engine import ROLES, engine_env
from tests.process.support import AUTH, TOKEN, Supervised, pids_with_prefix, wait_until
from tests.service.persist_support import fresh_redis_prefix, fresh_schema

pytestmark = [pytest.mark.slow, pytest.mark.service]
SEED = 20261204
STORM_S = 60.0
RECOVERY_S = 60.0
MD_TABLES = ("md_bbo", "md_trades", "md_depth", "md_status")
KEYS = {f"venues__{v}__{k}": f"chaos-{v}-{k}" for v in ("binance", "okx") for k in ("api_key", "api_secret")}
NEEDS_KEYS = {"gate", "sim"}  # Role.secrets in kairos/supervisor/specs.py


@pytest.fixture
def storm_engine(shm_prefix: str, tmp_path: Path, pg_dsn: str, redis_url: str) -> Iterator[tuple[Supervised, str]]:
    schemas, prefixes = fresh_schema(pg_dsn), fresh_redis_prefix(redis_url)
    schema = next(schemas)
    env = {**engine_env(tmp_path, pg_dsn, redis_url, schema, next(prefixes)), **KEYS,
           "supervisor__start_retries": "1000",  # keep trading through the storm: halting is tested elsewhere
           "supervisor__graceful_secs": "25", "persister__stop_drain_s": "20"}  # backoff_max_s: the default 30 s
    sup = Supervised.real(shm_prefix, tmp_path / "engine.log", "--sim", **env)
    try:
        sup.connect()
        all_running(sup, 60.0)
        yield sup, schema
    finally:
        sup.cleanup()
        for gen in (schemas, prefixes):
            next(gen, None)


def all_running(sup: Supervised, timeout_s: float) -> list[Any]:
    def probe() -> list[Any] | None:
        procs = {p.role: p for p in sup.status().processes}
        ok = all(r in procs and procs[r].state == pb.CHILD_STATE_RUNNING and procs[r].heartbeat_age_s >= 0
                 for r in ROLES)
        return [procs[r] for r in ROLES] if ok else None

    try:
        return wait_until(probe, "every child RUNNING with a heartbeat", timeout_s, step_s=0.5)
    except AssertionError as exc:
        seen = [(p.role, p.state_name, p.self_state, p.restarts, p.last_error) for p in sup.status().processes]
        raise AssertionError(f"{exc}: {seen}") from None


class OrderFlow(threading.Thread):
    """Small manual market orders, alternating sides, each with a fresh client order id, until stopped."""

    def __init__(self, sup: Supervised) -> None:
        super().__init__(daemon=True)
        self.stub, self.stop, self.sent, self.answered = sup.stub, threading.Event(), 0, 0

    def run(self) -> None:
        for n in range(100_000):
            if self.stop.wait(0.3):
                return
            side = pb.SIDE_BUY if n % 2 == 0 else pb.SIDE_SELL
            venue = pb.VENUE_BINANCE if n % 4 < 2 else pb.VENUE_OKX
            request = pb.PlaceOrderRequest(client_order_id=f"chaos{n}", venue=venue, instrument="BTC-USDT", side=side,
                                           order_type=pb.ORDER_TYPE_MARKET, quantity=0.001)
            self.sent += 1
            try:
                reply = self.stub.PlaceOrder(request, metadata=AUTH, timeout=5)
            except grpc.RpcError:
                continue  # the gate or the supervisor's view of it is down: expected in a storm
            self.answered += not reply.pending


def storm(sup: Supervised, rng: random.Random) -> Counter[str]:
    """kill -9 a random child every 1-3 s for STORM_S; returns the kills per role."""
    kills: Counter[str] = Counter()
    end = time.monotonic() + STORM_S
    for _ in range(int(STORM_S)):
        if time.monotonic() >= end:
            break
        role = rng.choice(ROLES)
        proc = sup.process(role)
        if proc is not None and proc.pid:
            try:
                os.kill(proc.pid, signal.SIGKILL)
                kills[role] += 1
            except ProcessLookupError:
                pass
        time.sleep(min(rng.uniform(1.0, 3.0), max(end - time.monotonic(), 0.0)))
    return kills


def assert_secrets_only_where_needed(sup: Supervised) -> None:
    for proc in sup.status().processes:
        if proc.role not in ROLES:
            continue
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
        values = {item.split(b"=", 1)[1].decode() for item in environ if b"=" in item}
        assert TOKEN not in values, proc.role
        expected = set(KEYS.values()) if proc.role in NEEDS_KEYS else set()
        assert values & set(KEYS.values()) == expected, proc.role


def gate_positions(sup: Supervised) -> dict[tuple[int, str], float]:
    reply = sup.stub.GetPositions(pb.GetPositionsRequest(), metadata=AUTH, timeout=5)
    return {(p.venue, p.instrument): round(p.quantity, 9) for p in reply.positions if round(p.quantity, 9)}


def db_positions(pg: Any, schema: str, instruments: InstrumentTable) -> dict[tuple[int, str], float]:
    with pg.cursor() as cur:
        cur.execute(f"SELECT venue, instrument, sum(CASE WHEN side = {int(Side.BUY)} THEN qty ELSE -qty END) "
                    f"FROM {schema}.fills GROUP BY venue, instrument")
        rows = cur.fetchall()
    pg.commit()
    return {(venue, instruments.by_id(inst).symbol): round(qty, 9) for venue, inst, qty in rows if round(qty, 9)}


def one(pg: Any, sql: str) -> Any:
    with pg.cursor() as cur:
        cur.execute(sql)
        row = cur.fetchone()
    pg.commit()
    return row[0]


def test_kill_9_storm_heals_without_a_signal_and_loses_or_duplicates_nothing(
        storm_engine: tuple[Supervised, str], pg_dsn: str, shm_prefix: str, tmp_path: Path) -> None:
    sup, schema = storm_engine
    assert_secrets_only_where_needed(sup)
    rings = {name: Ring.attach(name, MARKET_DATA, prefix=shm_prefix) for name in ("md.binance", "md.okx")}
    board = StatusBoard.attach(shm_prefix)  # mapped by us: readable after the supervisor unlinks them
    flow = OrderFlow(sup)
    pg = psycopg2.connect(pg_dsn, connect_timeout=5)
    try:
        flow.start()
        kills = storm(sup, random.Random(SEED))
        healed = all_running(sup, RECOVERY_S)  # no SIGHUP, no operator: backoff alone brings them back
        assert sum(kills.values()) >= STORM_S / 3 and len(kills) >= 4, kills
        assert all(p.state != pb.CHILD_STATE_FATAL for p in sup.status().processes)
        assert all(p.restarts >= kills[p.role] for p in healed), (kills, [(p.role, p.restarts) for p in healed])
        assert_secrets_only_where_needed(sup)  # restarted children too

        flow.stop.set()
        flow.join(10)
        assert flow.answered > 0, "no order got an outcome during or after the storm"
        sup.stub.SetTradingState(pb.SetTradingStateRequest(state=pb.TRADING_STATE_HALTED, reason="chaos check"),
                                 metadata=AUTH, timeout=10)
        instruments = InstrumentTable(config.load().instruments)
        wait_until(lambda: gate_positions(sup) == db_positions(pg, schema, instruments),
                   "gate positions to equal the sum of the DB fills", timeout_s=30, step_s=0.5)
        assert gate_positions(sup), "no position: no order was filled"

        assert sup.stop(signal.SIGTERM, timeout_s=90) == 0  # feeds stop first; the persister drains, then stops
        assert pids_with_prefix(shm_prefix) == []
        published = sum(r.published + 1 for r in rings.values())
        overruns = sum(r.lag()["persister"][1] for r in rings.values())
        shed = next(r.counters.get("md_shed_rows", 0) for r in board.snapshot() if r.role == "persister")
        stored = sum(one(pg, f"SELECT count(*) FROM {schema}.{table}") for table in MD_TABLES)
        assert published > 0 and stored == published - overruns - shed, (published, overruns, shed, stored)

        acks = one(pg, f"SELECT count(*) - count(DISTINCT (venue, client_order_id)) FROM {schema}.order_events "
                       f"WHERE kind = {int(ExecKind.ACK)}")
        assert acks == 0, "an order was acknowledged twice"
        assert one(pg, f"SELECT count(*) FROM {schema}.orders") > 0
        journal = tmp_path / "journal" / f"{shm_prefix}.gate.jsonl"
        accepted = Counter(entry["c"] for entry in map(json.loads, journal.read_text().splitlines())
                           if entry["t"] == "A")
        assert accepted and max(accepted.values()) == 1, [c for c, n in accepted.items() if n > 1]
        by_order: defaultdict[str, set[int]] = defaultdict(set)
        for coid, venue in _db_orders(pg, schema):
            by_order[coid].add(venue)
        assert all(len(v) == 1 for v in by_order.values()), "one client order id on two venues"
    finally:
        flow.stop.set()
        pg.close()
        board.close()
        for ring in rings.values():
            ring.close()


def _db_orders(pg: Any, schema: str) -> list[tuple[str, int]]:
    with pg.cursor() as cur:
        cur.execute(f"SELECT client_order_id, venue FROM {schema}.orders")
        rows = cur.fetchall()
    pg.commit()
    return rows
