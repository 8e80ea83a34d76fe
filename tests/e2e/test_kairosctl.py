"""kairosctl as a user runs it (a real process), against a real engine over gRPC."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from kairos.api.pb import pb
from tests.process.support import ROOT, TOKEN, Supervised, child, wait_until

pytestmark = pytest.mark.slow


def ctl(sup: Supervised | None, *args: str, token: str = TOKEN, timeout_s: float = 30.0) -> subprocess.CompletedProcess:
    addr = f"127.0.0.1:{sup.port}" if sup else "127.0.0.1:9"
    env = {"PATH": "/usr/bin:/bin", "KAIROS_GRPC_ADDR": addr, **({"KAIROS_API_TOKEN": token} if token else {})}
    return subprocess.run([sys.executable, "-m", "kairos.cli.kairosctl", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout_s)


def test_clear_error_when_the_engine_is_not_running() -> None:
    out = ctl(None, "status")
    assert out.returncode == 4
    assert "the engine is not reachable at 127.0.0.1:9: is the supervisor running?" in out.stderr


def test_status_is_a_readable_table(gate_engine: Supervised) -> None:
    gate_engine.wait_process("gate", lambda p: p.state == pb.CHILD_STATE_RUNNING and p.heartbeat_age_s >= 0,
                             "RUNNING with a heartbeat")
    out = ctl(gate_engine, "status")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("engine: spawn mode, trading ACTIVE")
    header = next(line for line in lines if line.startswith("ROLE"))
    assert header.split()[:4] == ["ROLE", "STATE", "PID", "UPTIME"]
    assert any(line.split()[:2] == ["gate", "RUNNING"] for line in lines)
    assert any(line.split()[:2] == ["manual", "gate"] for line in lines)


def test_place_needs_the_token(gate_engine: Supervised) -> None:
    out = ctl(gate_engine, "place", "binance", "BTC-USDT", "buy", "0.1", "--price", "100", token="")
    assert out.returncode == 3 and "UNAUTHENTICATED: missing metadata" in out.stderr


def test_trading_round_trip(gate_engine: Supervised) -> None:
    placed = ctl(gate_engine, "place", "binance", "BTC-USDT", "buy", "0.1", "--price", "100", "--id", "cli1",
                 token=TOKEN)
    assert placed.returncode == 0, placed.stderr
    assert placed.stdout.split()[1:4] == ["ACK", "cli1", "BINANCE"]
    again = ctl(gate_engine, "place", "binance", "BTC-USDT", "buy", "0.1", "--price", "100", "--id", "cli1",
                token=TOKEN)
    assert again.stdout.startswith("(repeat of an earlier call)")
    wait_until(lambda: "cli1" in ctl(gate_engine, "orders").stdout, "the order in `kairosctl orders`")
    assert "USDT" in ctl(gate_engine, "balance").stdout
    shown = ctl(gate_engine, "positions").stdout
    assert "BTC-USDT" in shown and "arbitrage" in shown and "-0.002" in shown
    halted = ctl(gate_engine, "halt", "--cancel-all", token=TOKEN)
    assert halted.stdout.strip() == "trading ACTIVE -> HALTED: confirmed by the gate"
    gate_engine.wait_process("gate", lambda p: p.state == pb.CHILD_STATE_RUNNING, "RUNNING (its state is trusted)")
    assert ctl(gate_engine, "status").stdout.startswith("engine: spawn mode, trading HALTED (SET_STATE from the API)")
    rejected = ctl(gate_engine, "place", "okx", "BTC-USDT", "sell", "0.1", "--price", "100", token=TOKEN)
    assert rejected.returncode == 1 and " REJECT " in rejected.stdout
    assert ctl(gate_engine, "resume", token=TOKEN).stdout.strip() == "trading HALTED -> ACTIVE: confirmed by the gate"
    bad = ctl(gate_engine, "place", "binance", "NOPE", "buy", "1", "--price", "1", token=TOKEN)
    assert bad.returncode == 1 and "INVALID_ARGUMENT: unknown instrument 'NOPE'" in bad.stderr


def test_events_follows_the_stream(gate_engine: Supervised) -> None:
    addr = f"127.0.0.1:{gate_engine.port}"
    argv = [sys.executable, "-m", "kairos.cli.kairosctl", "--addr", addr, "--token", TOKEN, "events", "--count", "1"]
    follower = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        placed = ""
        for attempt in range(40):  # the follower subscribes asynchronously: place until it has seen one
            ctl(gate_engine, "place", "binance", "BTC-USDT", "buy", "0.1", "--price", "100", "--id", f"ev{attempt}",
                token=TOKEN)
            placed = f"ev{attempt}"
            if follower.poll() is not None:
                break
            time.sleep(0.25)
        out, err = follower.communicate(timeout=20)
        assert follower.returncode == 0, err
        assert " ACK ev" in out and placed
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait(5)


def test_a_market_order_shows_its_fills(gate_engine: Supervised) -> None:
    out = ctl(gate_engine, "place", "binance", "BTC-USDT", "buy", "0.2", "--id", "mkt1", "--wait", "5000")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split()[1] for line in lines[:3]] == ["ACK", "FILL", "FILL"]
    assert lines[-1] == "filled 0.2 of 0.2 BTC-USDT at avg 101 (2 fills, fee 0.02); order FILLED"
    assert "strategy=manual" in lines[0]


def test_exit_codes_say_what_went_wrong(gate_engine: Supervised) -> None:
    unknown = ctl(gate_engine, "cancel", "nosuchorder")
    assert unknown.returncode == 1 and " CANCEL_REJECT nosuchorder " in unknown.stdout
    usage = ctl(gate_engine, "place", "binance", "BTC-USDT", "hold", "1")
    assert usage.returncode == 2 and "invalid choice: 'hold'" in usage.stderr
    assert ctl(gate_engine, "frobnicate").returncode == 2
    assert ctl(gate_engine, "status", token="wrong").returncode == 3
    assert ctl(None, "orders").returncode == 4


def test_strategies_are_named_never_numbered(gate_engine: Supervised) -> None:
    ctl(gate_engine, "place", "binance", "BTC-USDT", "buy", "0.1", "--price", "100", "--id", "named1")
    def listed() -> str:
        out = ctl(gate_engine, "orders").stdout
        return out if "named1" in out else ""

    shown = wait_until(listed, "the order in `kairosctl orders`")
    row = next(line for line in shown.splitlines() if line.startswith("named1"))
    assert row.split()[-1] == "manual"
    as_json = ctl(gate_engine, "--json", "orders").stdout
    assert '"strategy": "manual"' in as_json
    assert '"strategy": "arbitrage"' in ctl(gate_engine, "--json", "positions").stdout


def test_an_order_is_placed_even_when_its_fills_cannot_be_followed(engines: list[Supervised], shm_prefix: str,
                                                                    tmp_path: Path) -> None:
    table = [child("gate", "gate", tmp_path / "gate.log", halts=True)]
    sup = Supervised.harness(shm_prefix, tmp_path / "engine.log", table, supervisor__max_subscribers=1)
    engines.append(sup.connect())
    held = sup.stub.StreamEvents(pb.StreamEventsRequest(), timeout=60)
    try:
        held.initial_metadata()  # the only subscriber slot is taken
        out = ctl(sup, "place", "binance", "BTC-USDT", "buy", "0.2", "--id", "blind1")
        assert out.returncode == 0 and out.stdout.split()[1:3] == ["ACK", "blind1"]
        assert "fills not followed (RESOURCE_EXHAUSTED" in out.stderr
    finally:
        held.cancel()
