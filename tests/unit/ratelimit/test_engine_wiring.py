"""Where the budgets live: the supervisor's RingSet creates one per enabled venue, adopts and unlinks them;
the feed and executor helpers attach to it; a ban shows in `kairosctl status`."""

from __future__ import annotations

import dataclasses

from kairos import config
from kairos.api.pb import pb
from kairos.cli import render
from kairos.ratelimit import LIMITS, budget_for
from kairos.ratelimit.budget import segment_name
from kairos.ring.segment import SHM_DIR
from kairos.supervisor.rings import RingSet, budget_specs


def test_ringset_creates_adopts_and_unlinks_a_budget_per_enabled_venue(shm_prefix: str) -> None:
    settings = dataclasses.replace(config.load(env={}), shm_prefix=shm_prefix)
    settings = dataclasses.replace(settings, venues={**settings.venues,
                                                     "okx": dataclasses.replace(settings.venues["okx"], enabled=False)})
    rings = RingSet((), shm_prefix, budget_specs(settings))
    rings.create()
    try:
        assert set(rings.budgets) == {"binance"}
        assert (SHM_DIR / segment_name(shm_prefix, "binance")[1:]).exists()
        feed = budget_for(settings, "binance")                      # a feed or executor attaches: one budget
        feed.penalise(LIMITS["binance"].cost("GET", "/api/v3/depth"), 429, 30.0)
        assert rings.budgets["binance"].banned_s() > 29
        feed.close()
        rings.close()
        rings.adopt()                                               # watch mode: a restarted supervisor keeps it
        assert rings.budgets["binance"].stats()["bans"] == 1
        rings.close()
        rings.unlink()
        rings.adopt()                                               # adopting processes that have none: made
        assert rings.budgets["binance"].stats()["bans"] == 0
    finally:
        rings.close()
        rings.unlink()
    assert not [p for p in SHM_DIR.iterdir() if p.name.startswith(shm_prefix)]


def test_status_names_a_venue_whose_calls_are_halted() -> None:
    supervisor = pb.ProcessStatus(role="supervisor", state_name="RUNNING")
    supervisor.counters.update({"rl.binance.ban_s": 90, "rl.binance.ban_status": 418, "rl.okx.ban_s": 0})
    text = render.status(pb.SystemStatus(processes=[supervisor]))
    assert "binance: REST calls halted by HTTP 418, 1m30s left" in text and "okx: REST" not in text
