"""OverwritePoller hands reused scratch views for small batches and fresh slices for large ones."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from kairos.records import MARKET_DATA
from kairos.ring import Overflow, Ring
from kairos.ring.poller import VIEWS

MakeRing = Callable[..., Ring]


def batch(first: int, n: int) -> np.ndarray:
    out = np.zeros(n, MARKET_DATA)
    out["venue_seq"] = np.arange(first, first + n)
    return out


def test_batches_below_and_above_the_prebuilt_views_arrive_whole(make_ring: MakeRing) -> None:
    ring = make_ring("md", MARKET_DATA, capacity=16 * VIEWS, overflow=Overflow.OVERWRITE, consumers=("c",))
    prod, cons = ring.producer(), ring.consumer("c")
    seen: list[list[int]] = []
    sent = 0
    for n in (1, 1, 3, VIEWS, VIEWS + 1, 2 * VIEWS, 2):
        prod.publish(batch(sent, n))
        assert cons.poll(lambda view: seen.append(view["venue_seq"].tolist()), 4 * VIEWS) == n
        assert seen[-1] == list(range(sent, sent + n))
        sent += n
    assert [len(s) for s in seen] == [1, 1, 3, VIEWS, VIEWS + 1, 2 * VIEWS, 2]
