"""/metrics over HTTP from a real supervisor: the paper engine with the simulator (no database), an
order through gRPC; --watch with metrics off; a metrics port already taken."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kairos.api.pb import pb
from tests.e2e.engine import sim_engine
from tests.e2e.test_engine import engine_env, place_until_accepted
from tests.process.support import Supervised, wait_until
from tests.service.persist_support import free_port

pytestmark = pytest.mark.slow
ROLES = ("sim", "gate", "strategy", "feed.binance", "feed.okx")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> tuple[set[str], Samples]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        families = list(text_string_to_metric_families(reply.read().decode()))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}
    return {f.name for f in families}, samples


def scrape_until(port: int, ready: Callable[[Samples], bool], what: str) -> Samples:
    """The first scrape for which ``ready`` holds (bounded)."""
    def probe() -> Samples | None:
        samples = scrape(port)[1]
        return samples if ready(samples) else None

    return wait_until(probe, what, timeout_s=20, step_s=0.25)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(v for (n, got), v in samples.items() if n == name and labels.items() <= dict(got).items())


@pytest.fixture
def paper(shm_prefix: str, tmp_path: Path) -> Iterator[tuple[Supervised, int]]:
    port = free_port()
    env = {**engine_env(tmp_path, "postgresql://unused", "redis://unused", "unused", "unused"),
           "persister__enabled": "false", "supervisor__metrics_port": port}
    with sim_engine(shm_prefix, tmp_path / "engine.log", ROLES, **env) as sup:
        yield sup, port


def test_metrics_of_a_running_paper_engine(paper: tuple[Supervised, int]) -> None:
    sup, port = paper
    names, before = scrape(port)
    assert names >= {
        "kairos_process_up", "kairos_process_restarts", "kairos_tick_to_order_seconds", "kairos_order_stage_seconds",
        "kairos_stage_latency_seconds", "kairos_orders", "kairos_rejects", "kairos_feed_messages",
        "kairos_book_resyncs", "kairos_ring_lag", "kairos_ring_overruns", "kairos_position", "kairos_pnl",
        "kairos_balance", "kairos_persister_spool_bytes", "kairos_persister_rows"}
    for role in (*ROLES, "supervisor"):
        assert total(before, "kairos_process_up", role=role) == 1.0, role
        assert total(before, "kairos_process_restarts_total", role=role) == 0.0, role
    assert total(before, "kairos_ring_lag", ring="md.binance", consumer="gate") >= 0
    scrape_until(port, lambda s: total(s, "kairos_balance", venue="binance", asset="USDT") > 0, "the paper balance")
    scrape_until(port, lambda s: total(s, "kairos_feed_messages_total", venue="okx") > 0, "okx feed messages")
    scrape_until(port, lambda s: total(s, "kairos_stage_latency_seconds_bucket", role="feed.binance", le="+Inf") > 0,
                 "the binance feed's latency histogram")

    placed = place_until_accepted(sup, "metrics")
    assert placed.event.kind in (pb.EXEC_KIND_ACK, pb.EXEC_KIND_FILL)
    after = scrape_until(port, lambda s: total(s, "kairos_tick_to_order_seconds_count") > 0, "a traced order")
    sent = total(after, "kairos_orders_total", venue="binance", outcome="sent")
    assert sent > total(before, "kairos_orders_total", venue="binance", outcome="sent")
    assert total(after, "kairos_orders_total", venue="binance", outcome="ack") >= 1
    count = total(after, "kairos_tick_to_order_seconds_count")
    assert total(after, "kairos_tick_to_order_seconds_bucket", le="+Inf") == count
    assert 0 < total(after, "kairos_tick_to_order_seconds_sum") < 60 * count
    assert total(after, "kairos_order_stage_seconds_count", stage="gate") >= 1
    filled = scrape_until(port, lambda s: total(s, "kairos_position", venue="binance") != 0, "a binance position")
    assert total(filled, "kairos_position", venue="binance", instrument="BTC-USDT") != 0  # names, never ids


def test_watch_mode_serves_metrics_and_port_zero_disables_them(shm_prefix: str, tmp_path: Path) -> None:
    port = free_port()
    watch = Supervised.real(shm_prefix, tmp_path / "watch.log", "--watch", supervisor__metrics_port=port)
    try:
        watch.connect()
        names, samples = scrape(port)
        assert total(samples, "kairos_process_up", role="supervisor") == 1.0
        assert {"kairos_ring_lag", "kairos_tick_to_order_seconds"} <= names
    finally:
        watch.cleanup()
    off = Supervised.real(shm_prefix + "b", tmp_path / "off.log", "--watch", supervisor__metrics_port=0)
    try:
        off.connect()
        wait_until(lambda: "metrics disabled (supervisor.metrics_port: 0)" in off.text(), "the metrics-off line")
        assert "metrics on http" not in off.text()
    finally:
        off.cleanup()


def test_a_taken_metrics_port_is_a_clear_start_error(shm_prefix: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        sup = Supervised.real(shm_prefix, tmp_path / "watch.log", "--watch", supervisor__metrics_port=port)
        try:
            assert sup.proc.wait(30) != 0
        finally:
            sup.cleanup()
    assert f"cannot serve metrics on 127.0.0.1:{port}: Address already in use" in sup.text()
