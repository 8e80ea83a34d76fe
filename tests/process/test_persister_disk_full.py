"""The real `python -m procs.persister` with its spool on a 1 MiB tmpfs and both databases unreachable
(closed ports): the disk fills, yet the process stays up, DEGRADED, sheds market data (counted), counts
its failed appends, and spools every execution; SIGTERM still exits 0."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kairos.persist.batch import Stream
from kairos.persist.spool import read_file, segment_path, segments
from kairos.persist.synthetic import exec_events, market_data
from kairos.records import EXEC_EVENT, ProcState, Venue
from tests.process.test_persister import Engine, Persister, wait_until
from tests.service.persist_support import free_port
from tests.service.tmpfs import small_disk

__all__ = ["small_disk"]


@pytest.fixture
def engine(shm_prefix: str) -> Iterator[Engine]:
    eng = Engine(shm_prefix)
    try:
        yield eng
    finally:
        eng.close()


@pytest.fixture
def persister(shm_prefix: str, tmp_path: Path, small_disk: Callable[[str, str], Path]) -> Iterator[Persister]:
    spool = small_disk("spool", "1m")
    closed = free_port()  # nothing listens there: PostgreSQL and Redis are both down
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAIROS")}
    env.update({
        "KAIROS__SHM_PREFIX": shm_prefix, "KAIROS__LOGGING__JSON_FILES": "false", "PYTHONUNBUFFERED": "1",
        "KAIROS__RINGS__BLOCK_TIMEOUT_MS": "200", "KAIROS__PERSISTER__SPOOL_DIR": str(spool),
        "KAIROS__PERSISTER__DSN": f"postgresql://postgres@127.0.0.1:{closed}/postgres",
        "KAIROS__PERSISTER__REDIS_URL": f"redis://127.0.0.1:{closed}/0", "KAIROS__PERSISTER__RETRY_S": "0.3",
        "KAIROS__PERSISTER__CONNECT_TIMEOUT_S": "0.5", "KAIROS__PERSISTER__SPOOL_SEGMENT_MB": "1",
        "KAIROS__PERSISTER__SPOOL_SEGMENT_S": "0.5", "KAIROS__PERSISTER__SPOOL_RESERVE_KB": "128",
    })
    proc = Persister(env, tmp_path / "persister.log").start()
    proc.spool = spool  # type: ignore[attr-defined]
    try:
        yield proc
    finally:
        proc.kill()


def counters(engine: Engine) -> dict[str, Any]:
    row = engine.row()
    return row.counters if row and row.state in (ProcState.RUNNING, ProcState.DEGRADED) else {}


def spooled_events(spool: Path) -> int:
    frames = [f for i in segments(spool) for f in read_file(segment_path(spool, i))]
    return sum(len(f.payload) // EXEC_EVENT.itemsize for f in frames if f.stream == Stream.EVENTS)


def test_a_full_spool_disk_never_kills_the_persister_nor_loses_an_execution(engine: Engine,
                                                                            persister: Persister) -> None:
    wait_until(lambda: counters(engine), "the persister row", 30)
    md = 0
    for _ in range(100):                                     # market data until the 1 MiB disk is full
        engine.publish("md.binance", market_data(4096, start=md, venue=Venue.BINANCE), chunk=512)
        md += 4096
        time.sleep(0.05)
        if counters(engine).get("md_shed_rows"):
            break
    c = counters(engine)
    assert c["md_shed_rows"] > 0 and c["spool_errors"] >= 1, "market data shed, the failed append counted"
    assert c["spool_reserve_bytes"] == 128 << 10 and persister.alive()
    sent = 0
    for _ in range(400):                                     # executions into what is left, then the reserve
        engine.publish("events", exec_events(20, start_order=sent // 3))
        sent += 60
        time.sleep(0.02)
        if counters(engine).get("spool_reserve_bytes") == 0:
            break
    for _ in range(5):                                       # and more once it is released (within it)
        engine.publish("events", exec_events(20, start_order=sent // 3))
        sent += 60
    wait_until(lambda: spooled_events(persister.spool) == sent, "every execution spooled", 30)  # type: ignore[attr-defined]
    c = counters(engine)
    assert c["spool_reserve_bytes"] == 0 and c["md_shed_rows"] > 0 and persister.alive()
    assert engine.row().state == ProcState.DEGRADED
    assert "reserve of 131072 bytes released for executions" in persister.log.read_text()
    assert persister.kill(signal.SIGTERM) == 0
