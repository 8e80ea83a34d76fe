"""kairosctl status as text: each process's latencies as p50/p99/p99.9, the traced order stages, a BACKOFF line
with its next attempt, a --watch crash loop line, and the reason after a non-ACTIVE trading state."""

from __future__ import annotations

from kairos.api.pb import pb
from kairos.cli import render


def status(*procs: object, **fields: object) -> object:
    return pb.SystemStatus(mode="spawn", gate_state_age_s=0.5, uptime_s=27.4, shm_prefix="kairos", processes=procs,
                           **fields)


def test_latencies_print_p50_p99_p999_per_process_and_per_order_stage() -> None:
    gate = pb.ProcessStatus(role="gate", state_name="RUNNING", pid=7, latencies=[
        pb.Latency(name="gate_latency", p50_us=393.2, p99_us=522.0, p999_us=524.4, count=9)])
    text = render.status(status(gate, trading_state=pb.TRADING_STATE_ACTIVE, order_latencies=[
        pb.Latency(name="tick_to_order", p50_us=941.9, p99_us=972.9, p999_us=973.4, count=2)]))
    assert "gate_latency=393/522/524" in text
    assert "ORDER STAGE    P50 us  P99 us  P99.9 us  ORDERS" in text
    assert "tick_to_order  941.9   972.9   973.4     2" in text


def test_backoff_and_crash_loops_get_a_line_each() -> None:
    spawned = pb.ProcessStatus(role="feed.okx", state_name="BACKOFF", next_attempt_in_s=12.0, crash_loop=True,
                               restarts=9, last_error="killed by SIGKILL")
    watched = pb.ProcessStatus(role="strategy", state_name="RUNNING", pid=8, restarts=4, crash_loop=True)
    calm = pb.ProcessStatus(role="gate", state_name="RUNNING", pid=9, restarts=1)
    text = render.status(status(spawned, watched, calm))
    assert "\nfeed.okx: BACKOFF, next attempt in 12.0s (crash loop: retried forever at the capped delay)" in text
    assert "\nstrategy: crash loop (4 restarts, no stable run yet)" in text
    assert "gate:" not in text


def test_a_halt_shows_its_reason_and_doubt_shows_unknown() -> None:
    halted = render.status(status(trading_state=pb.TRADING_STATE_HALTED, trading_reason="DISK_FULL: no space"))
    assert halted.startswith("engine: spawn mode, trading HALTED (DISK_FULL: no space), gate state 0.5s old")
    doubt = render.status(status(trading_state_note="gate is BACKOFF"))
    assert doubt.startswith("engine: spawn mode, trading UNKNOWN (gate is BACKOFF: its last published state is not "
                            "trusted)")
