"""A book snapshot the shared budget defers is no snapshot failure: BookSync counts it and asks again later,
however many times, and never ends the feed (BookSyncError) for it."""

from __future__ import annotations

import logging
import time

import numpy as np

from kairos.config import FeedConfig
from kairos.feeds.base import BookMsg
from kairos.feeds.binance import BinanceFeed
from kairos.feeds.sync import BookSync, SnapshotFetcher, State
from kairos.logs import ErrorTally
from kairos.ratelimit import LIMITS, Budget
from kairos.records import MARKET_DATA

CFG = FeedConfig(depth_levels=3, ws_reconnect_delay_ms=1, ws_max_reconnect_delay_ms=2, snapshot_retries=1)


def test_deferred_snapshots_are_retried_and_never_fail_the_feed() -> None:
    budget = Budget.local(LIMITS["binance"], reserve_pct=100.0, wait_s=0.0)  # background calls: never room
    fetcher = SnapshotFetcher(1.0, budget=budget)  # closes the budget
    sync = BookSync(BinanceFeed({"AAAUSDT": 1}, ("depth",)), "http://127.0.0.1:9", CFG, fetcher,
                    ErrorTally(logging.getLogger("t")), False)
    out = np.zeros(256, MARKET_DATA)
    try:
        sync.start()
        sync.on_book(BookMsg(1, 100, 102, 5_000_000, [["1.5", "1"]], [["99", "1"]], False), out, 0, 1)
        deadline = time.monotonic() + 10
        while sync.counts["rate_deferred"] < 3 and time.monotonic() < deadline:  # more than snapshot_retries
            sync.poll(out, 0, len(out), 1)
            sync.tracks[1].next_try_ns = 0  # the test does not wait out the window
            time.sleep(0.005)
        shared_deferred = budget.stats()["deferred"]
    finally:
        fetcher.close()
    assert sync.counts["rate_deferred"] >= 3 and sync.counts["snapshot_failures"] == 0
    assert sync.tracks[1].state == State.AWAIT and sync.counts["rest_requests"] == sync.counts["rate_deferred"] + (
        sync.tracks[1].future is not None)
    assert shared_deferred >= 3
