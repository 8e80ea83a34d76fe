"""Binance WS API orders against the simulator's REST rate meter (``procs.sim`` child, small limits): a WS
reply's ``rateLimits`` count reaches the executor's shared budget, so a burst of WS orders larger than what is
left of the minute sends only what fits. Other traffic on the same IP that the budget cannot know (one weight
here) earns one 429 (-1003), never a 418: after it the budget stops every order locally."""

from __future__ import annotations

import time
from pathlib import Path

import requests
import websocket

from kairos.records import ExecKind, OrderState, RejectReason, Side, Venue
from tests.process.test_executors_sim import collect, of, order, running_sim
from tests.process.test_ws_orders import resting_price, ws_ready

SCALE = 0.01  # 60 weight a minute
SIM_ENV = {"KAIROS__SIM__RATE_LIMIT_SCALE": str(SCALE), "KAIROS__SIM__RATE_BAN_AFTER": "2",
           "KAIROS__SIM__RATE_BAN_S": "60"}
USED = "X-MBX-USED-WEIGHT-1M"
SPARE = 5  # weight left in the minute when the test's orders start


def start_of_a_minute() -> None:
    """The venue counts per wall-clock minute: start early in one so the window cannot roll over mid-test."""
    second = time.time() % 60
    if second > 40:
        time.sleep(60.5 - second)


def used_after_ping(url: str) -> int:
    """One weight of other traffic on the same IP, unknown to the executor's budget; the venue's count after it."""
    return int(requests.get(f"{url}/api/v3/ping", timeout=5).headers[USED])


def test_a_ws_burst_sends_what_the_venues_count_leaves_and_earns_one_429_no_418(shm_prefix: str,
                                                                                  tmp_path: Path) -> None:
    with running_sim(shm_prefix, tmp_path, SIM_ENV) as sim:
        start_of_a_minute()
        ex = ws_ready(sim, "binance", workers=1, stream_watchdog_s=30.0, rate_limit_scale=SCALE)
        url, limit = sim.urls[Venue.BINANCE], ex.budget.limit(0)
        price = resting_price(sim, ex, "binance")                 # a depth request: before the counting starts
        for _ in range(limit):                                    # other traffic spends most of the minute
            if used_after_ping(url) >= limit - SPARE - 1:
                break
        ex.submit(order(sim, "binance", "r0", Side.BUY, price, 0.001))
        collect(ex, lambda rs: (ExecKind.ACK, OrderState.ACK) in of(rs, "r0"))
        told = ex.budget.used(0)
        assert used_after_ping(url) == told + 1, "the WS reply's count reached the budget"
        burst = [f"r{i}" for i in range(1, limit - told + 3)]    # two more than the budget thinks are left
        for coid in burst:
            ex.submit(order(sim, "binance", coid, Side.BUY, price, 0.001))
        reports = collect(ex, lambda rs: all(of(rs, coid) for coid in burst), timeout_s=15.0)
        ex.submit(order(sim, "binance", "late", Side.BUY, price, 0.001))
        late = collect(ex, lambda rs: bool(of(rs, "late")))
        given = requests.get(f"{url}/_sim/rate-limits", timeout=5).json()["binance"]
        stats = ex.stats()
    rejects = [r for r in reports if r.kind is ExecKind.REJECT]
    assert given == {"429": 1, "418": 0}, (given, [(r.client_order_id, r.venue_code, r.message) for r in rejects])
    assert sum(r.kind is ExecKind.ACK for r in reports) == limit - told - 1
    assert sorted(r.venue_code for r in rejects) == ["-1003", "LOCAL", "LOCAL"], rejects
    assert all(r.reason is RejectReason.VENUE_RATE_LIMIT for r in rejects + late), rejects
    assert late[0].venue_code == "LOCAL" and "rate limited" in late[0].message, "after the 429 nothing goes out"
    assert stats["budget_bans"] == 1 and stats["budget_ban_status"] == 429 and stats["budget_ban_s"] > 0, stats
    assert stats["ws_requests"] == 1 + limit - told, stats


def test_a_ws_api_connection_is_charged_and_refused_once_the_minute_is_spent(shm_prefix: str, tmp_path: Path) -> None:
    """The simulator counts each WS API connection (weight 2) in the venue's minute, as Binance does: with the
    minute spent, a new connection is closed at once (1008), counted, and the venue's count says why."""
    with running_sim(shm_prefix, tmp_path, SIM_ENV) as sim:
        start_of_a_minute()
        url = sim.urls[Venue.BINANCE]
        stats = requests.get(f"{url}/_sim/private-stats", timeout=5).json()["binance"]
        ws_url = f"ws://127.0.0.1:{stats['port']}{stats['path']}"
        before = used_after_ping(url)
        websocket.create_connection(ws_url, timeout=5).close()
        assert used_after_ping(url) == before + 2 + 1           # the connection's 2, then this ping's 1
        for _ in range(60):                                      # 60 a minute at this scale
            if used_after_ping(url) >= 59:
                break
        ws = websocket.create_connection(ws_url, timeout=5)
        try:
            opcode, frame = ws.recv_data_frame(True)
        finally:
            ws.shutdown()
        refused = requests.get(f"{url}/_sim/private-stats", timeout=5).json()["binance"]["refused_connects"]
    assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(frame.data[:2], "big") == 1008
    assert refused == 1
