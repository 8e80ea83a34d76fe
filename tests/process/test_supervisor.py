"""The real arbiter with real child processes, signals and shared memory (throwaway children from
tests/process/childproc.py stand in for the engine's processes)."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from kairos.api.pb import pb
from kairos.cli import render
from kairos.records import ORDER_INTENT, Action, TradingState
from kairos.ring import Ring
from tests.process.support import AUTH, TOKEN, Supervised, alive, child, shm_left, wait_until

pytestmark = pytest.mark.slow
Start = Callable[..., Supervised]


def lines(log: Path, role: str, event: str) -> list[list[str]]:
    text = log.read_text() if log.exists() else ""
    return [parts for parts in (line.split() for line in text.splitlines()) if parts[:2] == [role, event]]


def test_a_crash_loop_backs_off_forever_and_never_goes_fatal(supervised: Start, tmp_path: Path) -> None:
    log = tmp_path / "children.log"
    sup = supervised([child("strategy", "run", log), child("feed.okx", "crash", log, "--code", "1")])
    looping = sup.wait_process("feed.okx", lambda p: p.crash_loop and p.state == pb.CHILD_STATE_BACKOFF,
                               "BACKOFF in a crash loop")
    assert 0.0 <= looping.next_attempt_in_s <= 0.4 and looping.pid == 0  # capped at backoff_max_s
    assert looping.last_exit_code == 1 and looping.last_error == "exited with code 1"
    wait_until(lambda: len(lines(log, "feed.okx", "crash")) >= 8, "retries well past start_retries (2)")
    assert sup.process("feed.okx").state != pb.CHILD_STATE_FATAL
    assert sup.process("strategy").state == pb.CHILD_STATE_RUNNING
    assert "HALTED" not in sup.text()  # a feed is not fail-closed
    assert sup.stop() == 0


def test_an_exception_is_logged_and_kept_as_the_exit_reason(supervised: Start, tmp_path: Path) -> None:
    log = tmp_path / "children.log"
    sup = supervised([child("persister", "raise", log)], logging__json_files="true")
    dead = sup.wait_process("persister", lambda p: p.restarts >= 1 and p.last_exit_code == 1, "a restart after dying")
    assert dead.last_error == "exited with code 1: ValueError: boom: the process edge must report this"
    records = [json.loads(line) for line in (tmp_path / "log" / "persister.jsonl").read_text().splitlines()]
    fatal = [r for r in records if r["level"] == "CRITICAL"]
    assert fatal and "ValueError: boom" in fatal[0]["exc_info"] and fatal[0]["role"] == "persister"
    assert sup.stop() == 0


def test_a_strategy_crash_loop_halts_trading_until_the_operator_resumes(supervised: Start, tmp_path: Path) -> None:
    log = tmp_path / "children.log"
    table = [child("gate", "gate", log, halts=True), {**child("strategy", "crash", log), "fail_closed": True}]
    sup = supervised(table)
    status = wait_until(lambda: (s := sup.status()).trading_state == pb.TRADING_STATE_HALTED and s,
                        "the gate to report HALTED")
    assert not status.trading_state_note
    assert "strategy crash loop" in sup.text() and "trading HALTED" in sup.text()
    wait_until(lambda: len(lines(log, "strategy", "crash")) >= 6, "the crash loop to go on")
    assert len(lines(log, "gate", "SET_STATE")) == 1  # queued once for the episode
    assert sup.status().trading_state == pb.TRADING_STATE_HALTED
    assert sup.stop() == 0


def test_while_the_gate_is_down_trading_is_unknown_not_stale(supervised: Start, tmp_path: Path) -> None:
    log = tmp_path / "children.log"
    sup = supervised([child("gate", "gate", log, halts=True)], supervisor__backoff_initial_s="3",
                     supervisor__backoff_max_s="3")
    gate = sup.wait_process("gate", lambda p: p.state == pb.CHILD_STATE_RUNNING, "RUNNING")
    wait_until(lambda: sup.status().trading_state == pb.TRADING_STATE_ACTIVE, "the gate's first state")
    os.kill(gate.pid, signal.SIGKILL)
    status = wait_until(lambda: (s := sup.status()).trading_state_note == "gate is BACKOFF" and s, "gate BACKOFF")
    assert status.trading_state == pb.TRADING_STATE_UNSPECIFIED  # not the ACTIVE the dead gate last wrote
    down = next(p for p in status.processes if p.role == "gate")
    assert down.last_error == "killed by SIGKILL" and 0.0 < down.next_attempt_in_s <= 3.0
    text = render.status(status)
    assert "trading UNKNOWN (gate is BACKOFF" in text and "gate: BACKOFF, next attempt in" in text
    sup.wait_process("gate", lambda p: p.state == pb.CHILD_STATE_RUNNING, "RUNNING again")
    wait_until(lambda: sup.status().trading_state == pb.TRADING_STATE_ACTIVE, "the restarted gate's live state")
    assert sup.stop() == 0


def test_each_child_gets_only_the_secrets_its_role_uses(supervised: Start, tmp_path: Path) -> None:
    log = tmp_path / "children.log"
    keys = {f"venues__{v}__{k}": f"{v}-{k}-value" for v in ("binance", "okx") for k in ("api_key", "api_secret")}
    table = [{**child("gate", "run", log), "secrets": ["venues"]}, child("strategy", "run", log),
             child("feed.okx", "run", log)]
    sup = supervised(table, venues__okx__passphrase="okx-passphrase-value", **keys)
    pids = {role: sup.wait_process(role, lambda p: p.state == pb.CHILD_STATE_RUNNING, "RUNNING").pid
            for role in ("gate", "strategy", "feed.okx")}
    secrets = {*keys.values(), "okx-passphrase-value"}
    for role, pid in pids.items():
        environ = dict(item.split("=", 1) for item in environ_of(pid))
        seen = {v for v in environ.values() if v in secrets or v == TOKEN}
        assert seen == (secrets if role == "gate" else set()), role
        assert environ["KAIROS__SHM_PREFIX"] == sup.prefix
    assert TOKEN in environ_of(sup.proc.pid, joined=True)  # the supervisor keeps its own token
    assert sup.stop() == 0


def environ_of(pid: int, joined: bool = False) -> Any:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    return raw if joined else [item for item in raw.split("\0") if "=" in item]


def test_boot_error_is_fatal_without_retry(supervised: Start, tmp_path: Path) -> None:
    log = tmp_path / "children.log"
    sup = supervised([child("persister", "crash", log, "--code", "3")])
    fatal = sup.wait_process("persister", lambda p: p.state == pb.CHILD_STATE_FATAL, "FATAL")
    assert "boot error (exit code 3)" in fatal.last_error and fatal.restarts == 0
    assert len(lines(log, "persister", "crash")) == 1
    assert sup.stop() == 0


def test_killed_child_is_restarted_with_its_exit_recorded(supervised: Start, tmp_path: Path) -> None:
    log = tmp_path / "children.log"
    sup = supervised([child("strategy", "run", log)])
    first = sup.wait_process("strategy", lambda p: p.state == pb.CHILD_STATE_RUNNING and p.heartbeat_age_s >= 0,
                             "RUNNING with a heartbeat")
    os.kill(first.pid, signal.SIGKILL)
    again = sup.wait_process("strategy", lambda p: p.restarts == 1 and p.state == pb.CHILD_STATE_RUNNING,
                             "restarted and RUNNING")
    assert again.pid != first.pid and again.last_exit_code == -signal.SIGKILL
    assert again.last_error == "killed by SIGKILL"
    assert sup.stop() == 0


def test_stale_heartbeat_is_terminated_then_killed_and_restarted(supervised: Start, tmp_path: Path) -> None:
    log = tmp_path / "children.log"
    sup = supervised([child("gate", "hang", log)])
    first = wait_until(lambda: lines(log, "gate", "hanging"), "the hanging child")[0][2]
    again = sup.wait_process("gate", lambda p: p.restarts >= 1, "restarted after its heartbeat went stale")
    assert "heartbeat stale" in again.last_error and again.last_exit_code == -signal.SIGKILL  # it ignored SIGTERM
    assert not alive(int(first))
    assert sup.stop() == 0


def test_a_slow_start_up_is_not_taken_for_a_hang(supervised: Start, tmp_path: Path) -> None:
    log = tmp_path / "children.log"
    sup = supervised([child("gate", "run", log, "--after", "4")])  # 4 s without heartbeats > 1.5 s timeout
    wait_until(lambda: lines(log, "gate", "started"), "the slow start-up to finish")
    gate = sup.wait_process("gate", lambda p: p.self_state == "RUNNING", "its duty loop")
    assert gate.restarts == 0 and gate.state == pb.CHILD_STATE_RUNNING
    assert sup.stop() == 0


def test_sigterm_stops_in_dependency_order_and_leaves_nothing(supervised: Start, tmp_path: Path,
                                                               shm_prefix: str) -> None:
    log = tmp_path / "children.log"
    table = [child("persister", "run", log, phase=3), child("gate", "gate", log, phase=2, halts=True),
             child("strategy", "run", log, "--grandchild", phase=1), child("feed.binance", "run", log, phase=0),
             child("feed.okx", "run", log, phase=0)]
    sup = supervised(table)
    for role in ("persister", "gate", "strategy", "feed.binance", "feed.okx"):
        wait_until(lambda role=role: lines(log, role, "started"), f"{role} to have installed its signal handlers")
    grandchild = int(wait_until(lambda: lines(log, "strategy", "grandchild"), "grandchild")[0][2])
    assert sup.stop(signal.SIGTERM) == 0
    order = [parts[0] for parts in (line.split() for line in log.read_text().splitlines())
             if parts[1] in ("term", "CANCEL_ALL")]
    assert sorted(order[:2]) == ["feed.binance", "feed.okx"]
    assert order[2:] == ["strategy", "gate", "gate", "persister"]  # gate: CANCEL_ALL, then its own SIGTERM
    assert lines(log, "gate", "CANCEL_ALL")
    assert wait_until(lambda: not alive(grandchild), "the grandchild to be killed with its group", 5.0)
    assert shm_left(shm_prefix) == []
    assert "supervisor stopped (clean: shared memory removed)" in sup.text()


def test_gate_fatal_halts_trading(supervised: Start, tmp_path: Path, shm_prefix: str) -> None:
    log = tmp_path / "children.log"
    sup = supervised([child("gate", "crash", log, "--code", "3", halts=True)])
    sup.wait_process("gate", lambda p: p.state == pb.CHILD_STATE_FATAL, "FATAL")
    order = pb.PlaceOrderRequest(client_order_id="h1", venue=pb.VENUE_BINANCE, instrument="BTC-USDT",
                                 side=pb.SIDE_BUY, order_type=pb.ORDER_TYPE_LIMIT, price=100.0, quantity=0.1)
    with pytest.raises(grpc.RpcError) as err:
        sup.stub.PlaceOrder(order, metadata=AUTH, timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "gate is FATAL" in err.value.details()
    assert "trading HALTED" in sup.text()
    ring = Ring.attach("manual", ORDER_INTENT, prefix=shm_prefix)
    try:
        queued = ring.consumer("gate").read(16)
    finally:
        ring.close()
    assert [(int(r["action"]), int(r["flags"])) for r in queued] == [(Action.SET_STATE, TradingState.HALTED)]
    assert sup.stop() == 0


def test_sighup_retries_fatal_children(supervised: Start, tmp_path: Path) -> None:
    log = tmp_path / "children.log"
    sup = supervised([child("feed.okx", "crash", log, "--code", "3")])
    sup.wait_process("feed.okx", lambda p: p.state == pb.CHILD_STATE_FATAL, "FATAL")
    sup.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: len(lines(log, "feed.okx", "crash")) == 2, "a second attempt after SIGHUP")
    sup.wait_process("feed.okx", lambda p: p.state == pb.CHILD_STATE_FATAL, "FATAL again")
    assert sup.stop() == 0


def test_supervisor_crash_keeps_rings_and_the_next_start_reclaims_them(supervised: Start, tmp_path: Path,
                                                                       shm_prefix: str) -> None:
    log = tmp_path / "children.log"
    table = [child("strategy", "run", log)]
    sup = supervised(table)
    pid = sup.wait_process("strategy", lambda p: p.state == pb.CHILD_STATE_RUNNING, "RUNNING").pid
    sup.stop(signal.SIGKILL)
    assert any(".ring.events" in name for name in shm_left(shm_prefix))  # a crash leaves the rings
    again = supervised(table)  # at once: it waits for the orphan, which got its parent-death SIGTERM
    assert not alive(pid)
    again.wait_process("strategy", lambda p: p.state == pb.CHILD_STATE_RUNNING and p.pid != pid, "RUNNING again")
    assert again.stop() == 0
    assert shm_left(shm_prefix) == []


def test_refuses_to_start_over_live_processes_of_a_previous_run(supervised: Start, tmp_path: Path,
                                                                  shm_prefix: str) -> None:
    log = tmp_path / "children.log"
    sup = supervised([child("gate", "hang", log)], supervisor__heartbeat_timeout_s=600)
    pid = int(wait_until(lambda: lines(log, "gate", "hanging"), "the child that ignores SIGTERM")[0][2])
    sup.stop(signal.SIGKILL)
    second = Supervised.harness(shm_prefix, tmp_path / "second.log", [child("gate", "run", log)])
    try:
        assert second.proc.wait(30) == 1
        assert f"processes of a previous run still use prefix '{shm_prefix}': pids [{pid}]" in second.text()
        assert alive(pid) and any(".ring.manual" in name for name in shm_left(shm_prefix))  # nothing pulled away
    finally:
        second.cleanup()
        sup.cleanup()


def test_watch_mode_spawns_nothing_and_adopts_running_processes(supervised: Start, tmp_path: Path,
                                                                shm_prefix: str) -> None:
    log = tmp_path / "children.log"
    sup = supervised([child("strategy", "run", log)], watch=True)
    assert [p.role for p in sup.status().processes] == ["supervisor"]
    unit = Supervised([*child("gate", "run", log)["argv"]], sup.env, tmp_path / "gate.log")  # "systemd" starts it
    try:
        seen = sup.wait_process("gate", lambda p: p.state == pb.CHILD_STATE_RUNNING, "RUNNING (observed)")
        assert not seen.managed and seen.pid == unit.proc.pid
        sup.stop(signal.SIGKILL)
        again = supervised([], watch=True)
        assert again.process("gate").pid == unit.proc.pid  # the board was adopted, not recreated
        assert again.stop() == 0
        assert shm_left(shm_prefix)  # the gate still runs: nothing may be unlinked under it
        assert unit.stop() == 0
        assert "gate term" in log.read_text()
    finally:
        unit.cleanup()
