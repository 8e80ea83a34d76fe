"""Bybit as the third venue, end to end: `KAIROS__VENUES__BYBIT__ENABLED=true make run` (procs.supervisor
--sim, persister on PostgreSQL and Redis) runs three feeds, market data flows from all three into the
database, and `kairosctl place bybit ...` fills on paper."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from kairos.api.pb import pb
from kairos.records import Venue
from tests.e2e.engine import sim_engine
from tests.process.support import ROOT, TOKEN, Supervised, wait_until
from tests.service.persist_support import free_port, fresh_redis_prefix, fresh_schema

pytestmark = [pytest.mark.slow, pytest.mark.service]
VENUES = {"binance": ("/stream", "/ws-api/v3"), "okx": ("/ws/v5/public", "/ws/v5/private"),
          "bybit": ("/v5/public/spot", "/v5/private")}
"""Venue -> the simulator's public and private WS paths (config/default.yaml)."""
ROLES = ("sim", "persister", "gate", "strategy", *(f"feed.{venue}" for venue in VENUES))


def three_venue_env(tmp: Path, pg_dsn: str, redis_url: str, schema: str, redis_prefix: str) -> dict[str, object]:
    """Every simulator port free, Bybit enabled, the persister in its own schema and Redis prefix."""
    env: dict[str, object] = {
        "venues__bybit__enabled": "true", "persister__enabled": "true", "persister__dsn": pg_dsn,
        "persister__redis_url": redis_url, "persister__schema": schema, "persister__redis_prefix": redis_prefix,
        "persister__spool_dir": tmp / "spool", "logging__dir": tmp / "log", "supervisor__heartbeat_timeout_s": "10",
        "supervisor__graceful_secs": "8", "supervisor__start_secs": "1.0"}
    for venue, (public, private_path) in VENUES.items():
        rest, ws, private = free_port(), free_port(), free_port()
        env |= {f"sim__venues__{venue}__rest_port": rest, f"sim__venues__{venue}__ws_port": ws,
                f"sim__venues__{venue}__private_port": private,
                f"venues__{venue}__endpoints__sim__rest_url": f"http://127.0.0.1:{rest}",
                f"venues__{venue}__endpoints__sim__ws_url": f"ws://127.0.0.1:{ws}{public}",
                f"venues__{venue}__endpoints__sim__private_url": f"ws://127.0.0.1:{private}{private_path}"}
    return env


@pytest.fixture
def schema(pg_dsn: str) -> Iterator[str]:
    schemas = fresh_schema(pg_dsn)
    yield next(schemas)
    next(schemas, None)


@pytest.fixture
def engine(shm_prefix: str, tmp_path: Path, pg_dsn: str, redis_url: str, schema: str) -> Iterator[Supervised]:
    prefixes = fresh_redis_prefix(redis_url)
    env = three_venue_env(tmp_path, pg_dsn, redis_url, schema, next(prefixes))
    try:
        with sim_engine(shm_prefix, tmp_path / "engine.log", ROLES, **env) as sup:
            yield sup
    finally:
        next(prefixes, None)


def ctl(sup: Supervised, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "KAIROS_GRPC_ADDR": f"127.0.0.1:{sup.port}", "KAIROS_API_TOKEN": TOKEN}
    return subprocess.run([sys.executable, "-m", "kairos.cli.kairosctl", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30)


def rows(dsn: str, sql: str) -> list[tuple]:
    conn = psycopg2.connect(dsn, connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def test_three_feeds_and_a_paper_market_buy_on_bybit_fills(engine: Supervised, pg_dsn: str, schema: str) -> None:
    def md_published() -> dict[str, int] | None:
        rings = {r.name: r.published for r in engine.status().rings if r.name.startswith("md.")}
        return rings if all(rings.get(f"md.{venue}", -1) >= 0 for venue in VENUES) else None

    wait_until(md_published, "market data from binance, okx and bybit", timeout_s=60, step_s=0.25)

    def place() -> subprocess.CompletedProcess | None:
        out = ctl(engine, "place", "bybit", "BTC-USDT", "buy", "0.001", "--wait", "3000")
        return out if out.returncode == 0 and "FILLED" in out.stdout else None  # NO_MARK until the gate has marks

    out = wait_until(place, "a paper market buy on bybit FILLED via kairosctl", timeout_s=60, step_s=0.5)
    assert "filled 0.001 of 0.001 BTC-USDT" in out.stdout, out.stdout
    (cid,) = set(re.findall(r"FILL (\S+) BYBIT BTC-USDT BUY FILLED", out.stdout))
    assert all(engine.process(f"feed.{venue}").state == pb.CHILD_STATE_RUNNING for venue in VENUES)
    engine.wait_process("strategy", lambda p: p.counters.get("venues_closed", 1) == 0,
                        "the three venues open for the strategies (read from the gate's typed state)", timeout_s=30)
    assert engine.process("strategy").counters.get("gate_state_bad", 0) == 0

    def persisted() -> bool:  # the arbitrage strategy trades too: only this order's fill is ours to count
        bbo = dict(rows(pg_dsn, f"SELECT venue, count(*) FROM {schema}.md_bbo GROUP BY venue"))
        fills = rows(pg_dsn, f"SELECT venue, qty FROM {schema}.fills WHERE client_order_id = '{cid}'")
        return all(bbo.get(int(v), 0) > 0 for v in (Venue.BINANCE, Venue.OKX, Venue.BYBIT)) and fills == [
            (int(Venue.BYBIT), 0.001)]

    wait_until(persisted, "BBOs of the three venues and the Bybit fill in PostgreSQL", timeout_s=60, step_s=0.5)
