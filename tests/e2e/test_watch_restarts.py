"""The real `procs.supervisor --watch` judging restarts it did not make: stand-in units (tests/process/
childproc.py, started here the way systemd would) are killed with SIGKILL and started again; a crash loop of a
fail-closed role halts trading once per episode, shows in status, and only the operator resumes."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from kairos.api.pb import pb
from kairos.cli import render
from tests.e2e.test_kairosctl import ctl
from tests.process.support import Supervised, child, wait_until

pytestmark = pytest.mark.slow
Start = Callable[..., Supervised]
STABLE_S = 8.0  # longer than a kill-and-restart round on a loaded box; start_retries is 2 (fast_env)


@pytest.fixture
def units(tmp_path: Path) -> Iterator[Callable[[Supervised, str, str], Supervised]]:
    """Starts a stand-in unit under the watched prefix ("systemd"); every one is killed afterwards."""
    started: list[Supervised] = []

    def start(sup: Supervised, role: str, mode: str) -> Supervised:
        unit = Supervised(child(role, mode, tmp_path / "children.log")["argv"], sup.env,
                          tmp_path / f"{role}{len(started)}.log")
        started.append(unit)
        return unit

    try:
        yield start
    finally:
        for unit in started:
            unit.cleanup()


def engine(watch_engine: Start, tmp_path: Path) -> Supervised:
    return watch_engine(supervisor__stable_secs=STABLE_S, logging__dir=tmp_path / "log")


def crash_loop(sup: Supervised, units: Callable[..., Supervised], role: str, mode: str, rounds: int) -> Supervised:
    """Kill -9 ``rounds`` runs of ``role``, each once the supervisor has counted it, and start the next."""
    for n in range(rounds + 1):
        unit = units(sup, role, mode)
        wait_until(lambda u=unit: f"(pid {u.proc.pid})" in sup.text() or f"-> {u.proc.pid} " in sup.text(),
                   f"the supervisor to see run {n} of {role}")
        seen = sup.process(role)
        assert seen.pid == unit.proc.pid and seen.restarts == n, seen
        assert seen.crash_loop == (n > 2), seen
        if n < rounds:
            os.kill(unit.proc.pid, signal.SIGKILL)
            unit.proc.wait(10)
    return unit


def set_state_lines(tmp_path: Path) -> list[str]:
    return [line for line in (tmp_path / "children.log").read_text().splitlines() if line.startswith("gate SET_STATE")]


def test_a_watched_strategy_crash_loop_halts_trading_once_until_the_operator_resumes(
        watch_engine: Start, units: Callable[..., Supervised], tmp_path: Path) -> None:
    sup = engine(watch_engine, tmp_path)
    units(sup, "gate", "gate")
    wait_until(lambda: sup.status().trading_state == pb.TRADING_STATE_ACTIVE, "the stand-in gate's ACTIVE state")
    last = crash_loop(sup, units, "strategy", "run", rounds=3)
    status = wait_until(lambda: (s := sup.status()).trading_state == pb.TRADING_STATE_HALTED and s, "HALTED")
    assert "strategy crash loop (3 restarts without a stable run)" in sup.text() and "trading HALTED" in sup.text()
    assert "strategy: crash loop (3 restarts, no stable run yet)" in render.status(status)
    os.kill(last.proc.pid, signal.SIGKILL)  # the same episode goes on: no second HALTED
    again = units(sup, "strategy", "run")
    wait_until(lambda: f"-> {again.proc.pid} " in sup.text(), "the supervisor to see run 4")
    calm = sup.wait_process("strategy", lambda p: not p.crash_loop, "a stable run to end the episode", STABLE_S + 20)
    assert calm.restarts == 4 and len(set_state_lines(tmp_path)) == 1
    assert sup.status().trading_state == pb.TRADING_STATE_HALTED  # until the operator resumes
    done = sup.stub.SetTradingState(pb.SetTradingStateRequest(state=pb.TRADING_STATE_ACTIVE, reason="fixed"),
                                    timeout=5)
    assert done.applied
    wait_until(lambda: sup.status().trading_state == pb.TRADING_STATE_ACTIVE, "ACTIVE after the operator resumes")
    assert sup.stop(signal.SIGINT) == 0


def test_a_watched_gate_crash_loop_refuses_orders_while_it_lasts(
        watch_engine: Start, units: Callable[..., Supervised], tmp_path: Path) -> None:
    sup = engine(watch_engine, tmp_path)
    crash_loop(sup, units, "gate", "gate", rounds=3)
    wait_until(lambda: sup.status().trading_state == pb.TRADING_STATE_HALTED, "the restarted gate to read HALTED")
    assert "gate crash loop (3 restarts without a stable run)" in sup.text()
    request = pb.PlaceOrderRequest(client_order_id="w1", venue=pb.VENUE_BINANCE, instrument="BTC-USDT",
                                   side=pb.SIDE_BUY, order_type=pb.ORDER_TYPE_LIMIT, price=100.0, quantity=0.1)
    with pytest.raises(grpc.RpcError) as refused:
        sup.stub.PlaceOrder(request, timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "gate is in a crash loop" in refused.value.details()
    assert sup.stop(signal.SIGINT) == 0


def test_kairosctl_status_shows_a_watched_process_last_exit_note(
        watch_engine: Start, units: Callable[..., Supervised], tmp_path: Path) -> None:
    sup = engine(watch_engine, tmp_path)
    first = units(sup, "persister", "run")
    sup.wait_process("persister", lambda p: p.pid == first.proc.pid and p.state_name == "RUNNING", "RUNNING")
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait(10)
    dead = units(sup, "persister", "raise")  # systemd's restart dies at once through the process edge
    assert dead.proc.wait(30) == 1
    row = sup.wait_process("persister", lambda p: p.state_name == "EXITED" and p.last_error, "its exit note shown")
    assert row.last_error.startswith("last exit: ValueError: boom: the process edge must report this (")
    out = ctl(sup, "status")
    assert out.returncode == 0, out.stderr
    line = next(line for line in out.stdout.splitlines() if line.split()[:2] == ["persister", "EXITED"])
    assert "last exit: ValueError: boom: the process edge must report this (" in line and line.endswith("s ago)")
    assert sup.stop(signal.SIGINT) == 0
