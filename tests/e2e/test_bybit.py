"""Bybit as the third venue, end to end: `KAIROS__VENUES__BYBIT__ENABLED=true make run` (procs.supervisor
--sim) runs three feeds, market data flows from all three, and `kairosctl place bybit ...` fills on paper."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kairos.api.pb import pb
from tests.process.support import ROOT, TOKEN, Supervised, wait_until
from tests.service.persist_support import free_port

pytestmark = pytest.mark.slow
VENUES = {"binance": ("/stream", "/ws-api/v3"), "okx": ("/ws/v5/public", "/ws/v5/private"),
          "bybit": ("/v5/public/spot", "/v5/private")}
"""Venue -> the simulator's public and private WS paths (config/default.yaml)."""
ROLES = ("sim", "gate", "strategy", *(f"feed.{venue}" for venue in VENUES))


def three_venue_env(tmp: Path) -> dict[str, object]:
    """Every simulator port free, Bybit enabled, no persister (not what this test is about)."""
    env: dict[str, object] = {"venues__bybit__enabled": "true", "persister__enabled": "false",
                              "logging__dir": tmp / "log", "supervisor__heartbeat_timeout_s": "10",
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
def engine(shm_prefix: str, tmp_path: Path) -> Iterator[Supervised]:
    sup = Supervised.real(shm_prefix, tmp_path / "engine.log", "--sim", **three_venue_env(tmp_path))
    try:
        sup.connect()
        for role in ROLES:
            sup.wait_process(role, lambda p: p.state == pb.CHILD_STATE_RUNNING and p.heartbeat_age_s >= 0,
                             "RUNNING with a heartbeat", timeout_s=60)
        yield sup
    finally:
        sup.cleanup()


def ctl(sup: Supervised, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "KAIROS_GRPC_ADDR": f"127.0.0.1:{sup.port}", "KAIROS_API_TOKEN": TOKEN}
    return subprocess.run([sys.executable, "-m", "kairos.cli.kairosctl", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30)


def test_three_feeds_and_a_paper_market_buy_on_bybit_fills(engine: Supervised) -> None:
    def md_published() -> dict[str, int] | None:
        rings = {r.name: r.published for r in engine.status().rings if r.name.startswith("md.")}
        return rings if all(rings.get(f"md.{venue}", -1) >= 0 for venue in VENUES) else None

    wait_until(md_published, "market data from binance, okx and bybit", timeout_s=60, step_s=0.25)

    def place() -> subprocess.CompletedProcess | None:
        out = ctl(engine, "place", "bybit", "BTC-USDT", "buy", "0.001", "--wait", "3000")
        return out if out.returncode == 0 and "FILLED" in out.stdout else None  # NO_MARK until the gate has marks

    out = wait_until(place, "a paper market buy on bybit FILLED via kairosctl", timeout_s=60, step_s=0.5)
    assert "filled 0.001 of 0.001 BTC-USDT" in out.stdout, out.stdout
    assert all(engine.process(f"feed.{venue}").state == pb.CHILD_STATE_RUNNING for venue in VENUES)
    positions = engine.stub.GetPositions(pb.GetPositionsRequest(), timeout=5)
    assert any(p.venue == pb.VENUE_BYBIT and p.quantity >= 0.001 for p in positions.positions), positions
