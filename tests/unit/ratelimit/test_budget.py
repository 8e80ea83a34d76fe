"""The shared per-venue rate budget: the call table, reserve and deferral, venue corrections, bans, and
real processes spending from one segment at once."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from typing import Any

import pytest

from kairos.errors import ConfigError, RingLayoutError, RingNotFound
from kairos.ratelimit import LIMITS, Budget, Cost, Priority, VenueLimits, venue_limits
from kairos.ratelimit.budget import RateDeferred, segment_name
from kairos.ratelimit.table import Route, Window
from kairos.ring.segment import SHM_DIR, Segment

FOREVER_MS = 10**12  # one window for the whole test: counts cannot roll over under it
ESSENTIAL, BACKGROUND = Cost(0, 1, Priority.ESSENTIAL), Cost(0, 1, Priority.BACKGROUND)


def table(limit: int, window_ms: int = FOREVER_MS, per_endpoint: bool = False, venue: str = "binance") -> VenueLimits:
    windows = (Window("a", limit, window_ms), Window("b", limit, window_ms))
    return VenueLimits(venue, windows, {("GET", "/b"): Route(1, 1, Priority.BACKGROUND)}, per_endpoint,
                       Route(0, 1, Priority.BACKGROUND), usage_header="X-Used")


@pytest.fixture
def budgets(shm_prefix: str) -> Iterator[list[Budget]]:
    made: list[Budget] = []
    yield made
    for budget in made:
        budget.close()
    for venue in ("binance", "okx"):
        Budget.unlink(shm_prefix, venue)
    assert not [p for p in SHM_DIR.iterdir() if p.name.startswith(shm_prefix)]


def make(budgets: list[Budget], prefix: str, limits: VenueLimits, reserve_pct: float = 20.0,
         wait_s: float = 0.0) -> Budget:
    budget = Budget.create(prefix, limits, reserve_pct, wait_s)
    budgets.append(budget)
    return budget


def test_weights_come_from_the_venue_table() -> None:
    binance, okx = LIMITS["binance"], LIMITS["okx"]
    assert binance.cost("GET", "http://h/api/v3/depth?symbol=BTCUSDT&limit=1000") == Cost(0, 50, Priority.BACKGROUND)
    assert binance.cost("GET", "/api/v3/depth?symbol=BTCUSDT").weight == 5
    assert binance.cost("GET", "/api/v3/depth?limit=5000").weight == 250
    assert binance.cost("GET", "/api/v3/openOrders?symbol=BTCUSDT&timestamp=1").weight == 6
    assert binance.cost("GET", "/api/v3/openOrders?timestamp=1").weight == 80
    assert binance.cost("POST", "/api/v3/order") == Cost(0, 1, Priority.ESSENTIAL)
    assert binance.cost("GET", "/api/v3/unlisted").priority is Priority.BACKGROUND
    place, books = okx.cost("POST", "/api/v5/trade/order"), okx.cost("GET", "/api/v5/market/books?instId=X&sz=400")
    assert place.priority is Priority.ESSENTIAL and books.priority is Priority.BACKGROUND
    assert place.window != books.window and okx.windows[books.window].limit == 40
    assert okx.scaled(0.01).windows[place.window].limit == 1  # never scaled to nothing
    with pytest.raises(ConfigError, match="no REST rate-limit table"):
        venue_limits("kraken")  # not in the venue table


def test_background_stops_at_the_reserve_and_is_counted_deferred(shm_prefix: str, budgets: list[Budget]) -> None:
    budget = make(budgets, shm_prefix, table(10), reserve_pct=20.0)
    assert [budget.acquire(BACKGROUND) for _ in range(8)] == [0.0] * 8
    assert budget.acquire(BACKGROUND) > 0                     # 2 of 10 kept for orders and cancels
    assert [budget.try_spend(ESSENTIAL) for _ in range(2)] == [0.0, 0.0]
    assert budget.acquire(ESSENTIAL) > 0
    assert (budget.used(0), budget.stats()["deferred"], budget.stats()["refused"]) == (10, 1, 1)
    with pytest.raises(RateDeferred):
        budget.pay("GET", "/anything")
    assert budget.used(1) == 0                                # the other window is untouched


def test_a_background_call_waits_for_the_next_window_when_it_is_near(shm_prefix: str, budgets: list[Budget]) -> None:
    budget = make(budgets, shm_prefix, table(1, window_ms=200, venue="okx"), reserve_pct=0.0, wait_s=1.0)
    assert budget.acquire(BACKGROUND) == 0.0
    assert budget.acquire(BACKGROUND) == 0.0                  # waited (<= 200 ms) for the next window
    assert budget.acquire(BACKGROUND, wait_s=0.0) > 0


def test_venue_usage_raises_ours_and_a_lower_announced_limit_is_kept(shm_prefix: str, budgets: list[Budget]) -> None:
    budget = make(budgets, shm_prefix, table(100))
    budget.try_spend(ESSENTIAL)
    budget.note_usage({"X-Used": "60"})
    budget.note_usage({"X-Used": "7"})                        # never believe the venue counts less than we spent
    budget.note_usage({"X-Used": "junk"})
    assert budget.used(0) == 60
    budget.lower_limit(0, 61)
    budget.lower_limit(0, 500)                                # an announced limit never raises ours
    assert budget.limit(0) == 61 and budget.try_spend(ESSENTIAL) == 0.0 and budget.try_spend(ESSENTIAL) > 0


def test_a_429_bans_the_venue_for_retry_after_but_okx_blocks_one_endpoint(shm_prefix: str,
                                                                           budgets: list[Budget]) -> None:
    binance = make(budgets, shm_prefix, table(100))
    binance.answered(ESSENTIAL, 429, {"Retry-After": "30"}, 5.0)
    assert 29 < binance.banned_s() <= 30 and binance.try_spend(Cost(1, 1, Priority.ESSENTIAL)) > 29
    binance.answered(ESSENTIAL, 429, {"Retry-After": "1"}, 5.0)  # a shorter retry never shortens the ban
    assert binance.banned_s() > 29 and binance.stats() | {"ban_s": 0} == {
        "ban_s": 0, "ban_status": 429, "bans": 2, "deferred": 0, "refused": 0, "over": 0}
    okx = make(budgets, shm_prefix, table(100, per_endpoint=True, venue="okx"))
    okx.answered(ESSENTIAL, 429, {}, 2.0)                     # 50011 arrives as HTTP 429 without Retry-After
    assert okx.banned_s() == 0 and okx.try_spend(ESSENTIAL) > 1 and okx.try_spend(Cost(1, 1, Priority.ESSENTIAL)) == 0
    okx.answered(ESSENTIAL, 418, {"Retry-After": "60"}, 2.0)  # a ban is a ban
    assert okx.banned_s() > 59 and okx.stats()["ban_status"] == 418


def test_attach_checks_the_layout(shm_prefix: str, budgets: list[Budget]) -> None:
    with pytest.raises(RingNotFound):
        Budget.attach(shm_prefix, LIMITS["okx"])
    unready = Segment.create(segment_name(shm_prefix, "okx"), 4096)  # created, magic not written yet
    try:
        with pytest.raises(RingNotFound, match="not initialised"):
            Budget.attach(shm_prefix, LIMITS["okx"])
    finally:
        unready.close()
        Budget.unlink(shm_prefix, "okx")
    make(budgets, shm_prefix, table(10, venue="okx"))         # two windows, not OKX's nine
    with pytest.raises(RingLayoutError, match="windows"):
        Budget.attach(shm_prefix, LIMITS["okx"])
    assert segment_name(shm_prefix, "okx") == f"/{shm_prefix}.ratelimit.okx"


def test_a_process_local_budget_leaves_no_name_behind(shm_prefix: str) -> None:
    budget = Budget.local(table(2), 0.0, 0.0)
    try:
        assert budget.try_spend(ESSENTIAL) == 0.0 and budget.try_spend(ESSENTIAL) == 0.0 and budget.try_spend(ESSENTIAL)
        assert not [p for p in SHM_DIR.iterdir() if p.name.startswith("kairos-local.ratelimit")]
    finally:
        budget.close()


def _spender(prefix: str, limit: int, attempts: int, priority: int, go: Any, out: Any) -> None:
    budget = Budget.attach(prefix, table(limit))
    cost = Cost(0, 1, Priority(priority))
    go.wait(10)
    out.put(sum(budget.try_spend(cost) == 0.0 for _ in range(attempts)))
    budget.close()


def _banner(prefix: str, limit: int) -> None:
    budget = Budget.attach(prefix, table(limit))
    budget.penalise(ESSENTIAL, 418, 60.0)
    budget.close()


def test_processes_spending_at_once_never_exceed_the_window(shm_prefix: str, budgets: list[Budget]) -> None:
    budget = make(budgets, shm_prefix, table(150), reserve_pct=20.0)
    ctx = multiprocessing.get_context("fork")
    go, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_spender, args=(shm_prefix, 150, 100, int(p), go, out))
             for p in (Priority.BACKGROUND, Priority.BACKGROUND, Priority.ESSENTIAL, Priority.ESSENTIAL)]
    for proc in procs:
        proc.start()
    go.set()
    granted = [out.get(timeout=30) for _ in procs]
    for proc in procs:
        proc.join(10)
    assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
    assert sum(granted) == 150 == budget.used(0)              # 400 tries, exactly the window: no lost update
    assert budget.try_spend(ESSENTIAL) > 0


def test_a_ban_recorded_by_one_process_stops_every_other(shm_prefix: str, budgets: list[Budget]) -> None:
    budget = make(budgets, shm_prefix, table(100))
    proc = multiprocessing.get_context("fork").Process(target=_banner, args=(shm_prefix, 100))
    proc.start()
    proc.join(10)
    assert proc.exitcode == 0
    assert 55 < budget.banned_s() <= 60 and budget.try_spend(ESSENTIAL) > 55
    assert budget.stats()["ban_status"] == 418 and budget.used(0) == 0
    assert budget.acquire(ESSENTIAL, wait_s=5.0) > 55         # longer than the wait: refused at once
    assert budget.stats()["refused"] == 1


def test_a_call_spent_at_a_windows_edge_counts_in_the_next_window_too(shm_prefix: str, budgets: list[Budget],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """It may reach the venue after the boundary: a full window either side cannot pass the venue's count."""
    budget = make(budgets, shm_prefix, table(3, window_ms=2000, venue="okx"), reserve_pct=0.0)
    now_ms = [10_000 + 1_000]                                               # mid-window (window 5)
    monkeypatch.setattr("kairos.ratelimit.budget.time.time_ns", lambda: now_ms[0] * 1_000_000)
    assert budget.try_spend(ESSENTIAL) == 0.0                              # mid-window: not late
    now_ms[0] = 11_950                                                      # 50 ms before the boundary
    assert [budget.try_spend(ESSENTIAL) for _ in range(2)] == [0.0, 0.0]   # late: 2
    now_ms[0] = 12_001                                                      # the next window
    assert budget.used(0) == 2
    assert budget.try_spend(ESSENTIAL) == 0.0 and budget.try_spend(ESSENTIAL) > 0   # 2 carried + 1 = the limit
    now_ms[0] = 14_500                                                      # a window later, nothing was late
    assert budget.used(0) == 0 and [budget.try_spend(ESSENTIAL) for _ in range(3)] == [0.0] * 3
    now_ms[0] = 20_000                                                      # windows skipped: nothing carried
    assert budget.used(0) == 0
