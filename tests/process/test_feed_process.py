"""procs.feed against procs.sim as real processes: real md ring, real status board, real signals."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest
import requests

from kairos.records import MARKET_DATA, BookStatus, Kind, ProcState
from kairos.ring import Overflow, Ring
from kairos.sim.local import EPHEMERAL_ENV
from kairos.status import BoardRow, StatusBoard

ROOT = Path(__file__).resolve().parents[2]
WS_PATH = {"binance": "/stream", "okx": "/ws/v5/public"}


def _env(prefix: str, log_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAIROS")}
    env.update({"KAIROS__SHM_PREFIX": prefix, "KAIROS__LOGGING__JSON_FILES": "false",
                "KAIROS__LOGGING__DIR": str(log_dir), "PYTHONUNBUFFERED": "1", **extra})
    return env


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=log.open("wb"), start_new_session=True)


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    for _ in range(100_000):
        if condition():
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@pytest.fixture
def world(shm_prefix: str, tmp_path: Path) -> Iterator[dict[str, object]]:
    """Board + md rings created as the supervisor would; every child killed and every segment removed after."""
    board = StatusBoard.create(shm_prefix)
    rings = {v: Ring.create(f"md.{v}", MARKET_DATA, 4096, Overflow.OVERWRITE, ("test",), prefix=shm_prefix)
             for v in ("binance", "okx")}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        yield {"prefix": shm_prefix, "board": board, "rings": rings, "procs": procs, "tmp": tmp_path}
    finally:
        for proc in procs:
            _stop(proc)
        for venue, ring in rings.items():
            ring.close()
            Ring.unlink(f"md.{venue}", prefix=shm_prefix)
        board.close()
        StatusBoard.unlink(shm_prefix)


def _start_sim(world: dict[str, object]) -> dict[str, int]:
    tmp, prefix = world["tmp"], world["prefix"]
    sim = _spawn(["procs.sim", "--print-ports"], _env(prefix, tmp, **EPHEMERAL_ENV), tmp / "sim.log")
    world["procs"].append(sim)
    ready, _, _ = select.select([sim.stdout], [], [], 30)
    assert ready, (tmp / "sim.log").read_text()
    return orjson.loads(sim.stdout.readline())


def _row(board: StatusBoard, role: str) -> BoardRow | None:
    return next((r for r in board.snapshot() if r.role == role), None)


@pytest.mark.parametrize("venue", ["binance", "okx"])
def test_feed_process_publishes_books_reconnects_and_stops_cleanly(world: dict[str, object], venue: str) -> None:
    ports = _start_sim(world)
    rest, ws = f"http://127.0.0.1:{ports[f'{venue}_rest']}", f"ws://127.0.0.1:{ports[f'{venue}_ws']}{WS_PATH[venue]}"
    key = f"KAIROS__VENUES__{venue.upper()}__ENDPOINTS__SIM__"
    env = _env(world["prefix"], world["tmp"], **{f"{key}REST_URL": rest, f"{key}WS_URL": ws,
                                               "KAIROS__FEEDS__WS_RECONNECT_DELAY_MS": "50"})
    feed = _spawn(["procs.feed", "--venue", venue], env, world["tmp"] / "feed.log")
    world["procs"].append(feed)
    consumer = world["rings"][venue].consumer("test")
    seen: list[np.ndarray] = []

    def records() -> np.ndarray:
        batch = consumer.read(4096)
        if len(batch):
            seen.append(batch)
        return np.concatenate(seen) if seen else np.zeros(0, MARKET_DATA)

    def status_records(status: BookStatus) -> np.ndarray:
        recs = records()  # read once: each call may append records the masks would not cover
        return recs[(recs["kind"] == Kind.STATUS) & (recs["flags"] == status)]

    def statuses(status: BookStatus) -> set[int]:
        return set(status_records(status)["instrument"])

    def counts(kind: Kind) -> int:
        return int((records()["kind"] == kind).sum())

    _wait(lambda: statuses(BookStatus.SYNCED) == {1, 2}, 30, f"both {venue} books SYNCED on the ring")
    _wait(lambda: counts(Kind.DEPTH) > 20 and counts(Kind.BBO) > 5, 30, "depth bursts and BBO records")
    board = world["board"]
    _wait(lambda: (row := _row(board, f"feed.{venue}")) is not None and row.counters.get("records", 0) > 0, 10,
          "counters")
    row = _row(board, f"feed.{venue}")
    assert row.state == ProcState.RUNNING and row.alive and row.counters["msgs"] > 0
    assert row.histograms["latency_ns"].count > 0 and row.histograms["latency_ns"].p50 > 0

    requests.post(f"{rest}/_sim/fault", json={"kind": "disconnect", "duration": 0.2}, timeout=5).raise_for_status()
    _wait(lambda: statuses(BookStatus.DISCONNECTED) == {1, 2}, 30, "DISCONNECTED after the injected disconnect")
    synced_before = len(status_records(BookStatus.SYNCED))
    _wait(lambda: len(status_records(BookStatus.SYNCED)) >= synced_before + 2, 30, "SYNCED again after reconnecting")
    _wait(lambda: _row(board, f"feed.{venue}").counters["reconnects"] >= 1, 10, "reconnect counter")

    feed.send_signal(signal.SIGTERM)
    assert feed.wait(timeout=20) == 0, (world["tmp"] / "feed.log").read_text()
    assert _row(board, f"feed.{venue}").state == ProcState.STOPPED
    last = records()
    assert list(last[-2:]["kind"]) == [Kind.STATUS, Kind.STATUS]
    assert set(last[-2:]["flags"]) == {BookStatus.DISCONNECTED}  # consumers are told the books stopped


def test_feed_without_its_ring_exits_with_a_clear_error(shm_prefix: str, tmp_path: Path) -> None:
    board = StatusBoard.create(shm_prefix)
    try:
        feed = _spawn(["procs.feed", "--venue", "binance"], _env(shm_prefix, tmp_path), tmp_path / "feed.log")
        try:
            code = feed.wait(timeout=30)
        finally:
            _stop(feed)
        assert code == 1 and "md.binance" in (tmp_path / "feed.log").read_text()
    finally:
        board.close()
        StatusBoard.unlink(shm_prefix)
