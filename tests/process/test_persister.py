"""The real `python -m procs.persister` on real rings: kill -9 and restarts, a torn spool tail, start
with neither database reachable, graceful stop. Totals in PostgreSQL must equal what was published."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import psycopg2
import pytest
import redis

from kairos.gate.snapshot import GateStateReader, GateStateWriter
from kairos.gatestate import Balance, GateState
from kairos.persist.synthetic import counts_by_kind, exec_events, market_data
from kairos.records import EXEC_EVENT, MARKET_DATA, ExecKind, ProcState, Venue
from kairos.ring import Overflow, Ring
from kairos.status import BoardRow, StatusBoard
from tests.service.persist_support import PrivateRedis, TcpProxy, fresh_redis_prefix, fresh_schema
from tests.service.test_persist_pg import expected_counts, table_counts
from tests.service.test_persist_redis import assert_state

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def wait_until(probe: Callable[[], T], what: str, timeout_s: float = 60.0) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


class Engine:
    """The test plays every producer: md.binance, md.okx and events, each with the consumer `persister`."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.board = StatusBoard.create(prefix)
        specs = {"md.binance": (MARKET_DATA, Overflow.OVERWRITE), "md.okx": (MARKET_DATA, Overflow.OVERWRITE),
                 "events": (EXEC_EVENT, Overflow.BLOCK)}
        self.rings = {name: Ring.create(name, dtype, 65536, overflow, ("persister",), prefix)
                      for name, (dtype, overflow) in specs.items()}
        self.prods = {name: ring.producer(timeout_s=5.0) for name, ring in self.rings.items()}
        self.gate = GateStateWriter(prefix)  # and the gate's state blob

    def publish_state(self, ts_ns: int, usdt: float) -> None:
        balance = Balance(venue="binance", venue_id=1, asset="USDT", free=usdt, locked=0.0)
        self.gate.write(GateState(ts_ns=ts_ns, balances=[balance]))

    def publish(self, name: str, records: np.ndarray, chunk: int = 500) -> None:
        for i in range(0, len(records), chunk):
            self.prods[name].publish(records[i : i + chunk])

    def row(self) -> BoardRow | None:
        return next((r for r in self.board.snapshot() if r.role == "persister"), None)

    def close(self) -> None:
        self.gate.close()
        GateStateReader.unlink(self.prefix)
        for name, ring in self.rings.items():
            ring.close()
            Ring.unlink(name, self.prefix)
        self.board.close()
        StatusBoard.unlink(self.prefix)


class Persister:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> Persister:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "procs.persister"], env=self.env, cwd=ROOT,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(60)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture
def pg_schema(pg_dsn: str) -> Iterator[str]:
    yield from fresh_schema(pg_dsn)


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    yield from fresh_redis_prefix(redis_url)


@pytest.fixture
def engine(shm_prefix: str) -> Iterator[Engine]:
    eng = Engine(shm_prefix)
    try:
        yield eng
    finally:
        eng.close()


@pytest.fixture
def persister_env(shm_prefix: str, pg_dsn: str, pg_schema: str, redis_url: str, redis_prefix: str,
                  tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAIROS")}
    env.update({
        "KAIROS__SHM_PREFIX": shm_prefix, "KAIROS__LOGGING__JSON_FILES": "false", "PYTHONUNBUFFERED": "1",
        "KAIROS__RINGS__BLOCK_TIMEOUT_MS": "200", "KAIROS__PERSISTER__DSN": pg_dsn,
        "KAIROS__PERSISTER__SCHEMA": pg_schema, "KAIROS__PERSISTER__REDIS_URL": redis_url,
        "KAIROS__PERSISTER__REDIS_PREFIX": redis_prefix, "KAIROS__PERSISTER__SPOOL_DIR": str(tmp_path / "spool"),
        "KAIROS__PERSISTER__FLUSH_MS": "50", "KAIROS__PERSISTER__RETRY_S": "0.3",
        "KAIROS__PERSISTER__BATCH_ROWS": "2000", "KAIROS__PERSISTER__CONNECT_TIMEOUT_S": "1.0",
    })
    return env


@pytest.fixture
def persisters(persister_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Persister]]:
    started: list[Persister] = []

    def start(**overrides: str) -> Persister:
        p = Persister({**persister_env, **overrides}, tmp_path / "persister.log").start()
        started.append(p)
        return p

    try:
        yield start
    finally:
        for p in started:
            if p.alive():
                p.kill()


class Workload:
    """Everything published, in slices, so a test can interleave kills with publishing."""

    def __init__(self, n_md: int = 30_000, orders: int = 1500) -> None:
        self.binance = market_data(n_md, venue=Venue.BINANCE)
        self.okx = market_data(n_md, venue=Venue.OKX)
        self.events = exec_events(orders)

    def publish_slice(self, engine: Engine, k: int, of: int) -> None:
        for name, records in (("md.binance", self.binance), ("md.okx", self.okx), ("events", self.events)):
            engine.publish(name, records[len(records) * k // of : len(records) * (k + 1) // of])

    def expected(self) -> dict[str, int]:
        md = counts_by_kind(np.concatenate([self.binance, self.okx]))
        return expected_counts(md, len(self.events) // 3)


def wait_all_persisted(pg_dsn: str, schema: str, want: dict[str, int], timeout_s: float = 120.0) -> None:
    conn = psycopg2.connect(pg_dsn)
    conn.autocommit = True
    try:
        got: dict[str, int] = {}

        def probe() -> bool:
            nonlocal got
            got = table_counts(conn, schema)
            return got == want

        try:
            wait_until(probe, "every published row in PostgreSQL", timeout_s)
        except AssertionError:
            raise AssertionError(f"rows {got} != published {want}") from None
    finally:
        conn.close()


def running(engine: Engine, proc: Persister) -> Persister:
    """Wait until this process has claimed its status row and is draining."""
    def up() -> bool:
        row = engine.row()
        return row is not None and row.pid == proc.proc.pid and row.state == ProcState.RUNNING

    wait_until(up, f"persister pid {proc.proc.pid} RUNNING", 30)
    return proc


def test_kill_9_restarts_and_a_torn_spool_tail_lose_and_duplicate_nothing(
        engine: Engine, persisters: Callable[..., Persister], pg_dsn: str, pg_schema: str, redis_url: str,
        redis_prefix: str, tmp_path: Path) -> None:
    work = Workload()
    engine.publish_state(1, 1000.0)
    proc = running(engine, persisters())
    for k in range(12):
        work.publish_slice(engine, k, 12)
        engine.publish_state(k + 2, 1000.0 - k)
        time.sleep(0.05)
        if k in (2, 5, 8):
            proc.kill(signal.SIGKILL)  # mid-stream: rows in the spool, in the sinks' hands, in the ring
            if k == 2:  # as if the kill tore a write: garbage after the last complete frame
                segment = sorted((tmp_path / "spool").glob("*.spool"))[-1]
                with open(segment, "ab") as fh:
                    fh.write(b"KSP1" + os.urandom(37))
            if k == 5:
                work.publish_slice(engine, k, 12)  # the same records again: a replay must add nothing
            proc = running(engine, persisters())
    wait_all_persisted(pg_dsn, pg_schema, work.expected())
    assert engine.row().counters["md_overruns"] == 0  # the rings never lapped it: nothing was lost there
    conn = psycopg2.connect(pg_dsn)
    try:
        with conn.cursor() as cur:  # balance snapshots: sampled (not every one), never duplicated
            cur.execute(f"SELECT count(*), count(DISTINCT ts_ns), min(free) FROM {pg_schema}.balances")
            count, distinct, low = cur.fetchone()
    finally:
        conn.close()
    assert count == distinct >= 2 and low >= 989.0
    assert "torn tail of 41 bytes truncated" in (tmp_path / "persister.log").read_text()
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    last_fill = str(int(work.events["event_seq"][work.events["kind"] == ExecKind.FILL].max()))
    wait_until(lambda: client.hget(f"{redis_prefix}:positions:hwm", "event_seq") == last_fill, "last fill in Redis")
    assert_state(client, redis_prefix, np.concatenate([work.binance, work.okx]), work.events)
    assert proc.kill(signal.SIGTERM) == 0


def test_neither_database_reachable_at_start_then_both_come_and_go(
        engine: Engine, persisters: Callable[..., Persister], pg_dsn: str, pg_schema: str, redis_prefix: str,
        tmp_path: Path) -> None:
    url = urlsplit(pg_dsn)
    proxy = TcpProxy((url.hostname or "127.0.0.1", url.port or 5432))  # its port is not listening yet
    server = PrivateRedis(tmp_path)  # nor is this one's
    dsn = urlunsplit(url._replace(netloc=f"{url.username}@127.0.0.1:{proxy.port}"))
    work = Workload(n_md=12_000, orders=600)
    total = 2 * len(work.binance) + len(work.events)
    try:
        proc = persisters(KAIROS__PERSISTER__DSN=dsn, KAIROS__PERSISTER__REDIS_URL=server.url)
        degraded = lambda: (row := engine.row()) is not None and row.state == ProcState.DEGRADED  # noqa: E731
        wait_until(lambda: degraded() and engine.row().pid == proc.proc.pid, "DEGRADED on the status board")
        for k in range(6):
            work.publish_slice(engine, k, 12)
        wait_until(lambda: engine.row().counters["spooled_rows"] == total // 2, "half the rows spooled")
        time.sleep(1.0)  # several reconnect attempts later: still up, still degraded, no crash loop
        assert proc.alive() and degraded()
        text = (tmp_path / "persister.log").read_text()
        assert "pg unavailable, spooling to" in text and "redis unavailable, spooling to" in text
        proxy.start()
        server.start()
        wait_until(lambda: (row := engine.row()) is not None and row.state == ProcState.RUNNING,
                   "RUNNING after backfill")
        proxy.stop()  # PostgreSQL goes away mid-stream, Redis restarts empty
        server.kill()
        for k in range(6, 12):
            work.publish_slice(engine, k, 12)
        wait_until(degraded, "DEGRADED again")
        proxy.start()
        server.start()
        wait_all_persisted(pg_dsn, pg_schema, work.expected())
        wait_until(lambda: engine.row().counters["redis_rows"] >= total, "Redis caught up")
        assert_state(server.client(), redis_prefix, np.concatenate([work.binance, work.okx]), work.events)
        assert proc.kill(signal.SIGTERM) == 0
    finally:
        proxy.stop()
        server.kill()
