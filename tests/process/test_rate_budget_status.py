"""The real supervisor creates one rate budget per venue; a ban recorded there by any process shows in
``kairosctl status`` (its ``rl.<venue>.*`` counters and the halted line) and on /metrics
(``kairos_rate_ban_seconds``), and a clean stop removes it."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

from kairos.cli import render
from kairos.ratelimit import LIMITS, Budget
from kairos.ratelimit.budget import segment_name
from kairos.ring.segment import SHM_DIR
from tests.process.support import Supervised, wait_until
from tests.service.persist_support import free_port


def _supervisor_counters(sup: Supervised) -> dict[str, int]:
    return dict(next(p for p in sup.status().processes if p.role == "supervisor").counters)


def _ban_seconds(port: int) -> dict[tuple[str, str], float]:
    """(venue, status) -> seconds left, as /metrics says."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        families = text_string_to_metric_families(reply.read().decode())
        return {(s.labels["venue"], s.labels["status"]): s.value
                for f in families if f.name == "kairos_rate_ban_seconds" for s in f.samples}


def test_a_ban_from_another_process_shows_in_status(supervised: Callable[..., Supervised], shm_prefix: str) -> None:
    port = free_port()
    sup = supervised([], supervisor__metrics_port=port)
    wait_until(lambda: (SHM_DIR / segment_name(shm_prefix, "okx")[1:]).exists(), "the okx budget")
    feed = Budget.attach(shm_prefix, LIMITS["binance"])  # what a feed or the gate maps
    feed.penalise(LIMITS["binance"].cost("GET", "/api/v3/depth"), 418, 120.0)
    feed.close()
    counters = wait_until(lambda: (c := _supervisor_counters(sup)).get("rl.binance.ban_status") == 418 and c,
                          "the supervisor's rl.binance counters")
    assert counters["rl.binance.bans"] == 1 and 100 < counters["rl.binance.ban_s"] <= 120
    assert counters["rl.okx.ban_s"] == 0
    text = render.status(sup.status())
    assert re.search(r"\nbinance: REST calls halted by HTTP 418, [12]m\d\ds left\n", text), text
    assert "okx: REST" not in text
    metrics = _ban_seconds(port)
    assert 100 < metrics[("binance", "418")] <= 120 and metrics[("okx", "none")] == 0, metrics
    assert sup.stop() == 0
    assert not (SHM_DIR / segment_name(shm_prefix, "binance")[1:]).exists()
