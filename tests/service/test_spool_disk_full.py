"""The persister's spool on a real full disk (a 512 KiB tmpfs) with PostgreSQL unreachable: market
data is shed and counted, every execution is spooled (the reserve is released for them), a failed
append is counted and retried, nothing raises; once the database is back the spool drains, drained
segments are removed and market data is spooled again."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from kairos.persist.agent import PersisterAgent
from kairos.persist.batch import Stream
from kairos.persist.pg import PgSink
from kairos.persist.spool import Spool, read_file, segment_path, segments
from kairos.persist.synthetic import exec_events, market_data
from kairos.persist.worker import SinkWorker
from kairos.records import EXEC_EVENT, MARKET_DATA
from kairos.ring import Overflow, Ring
from kairos.status import StatusBoard
from tests.service.persist_support import TcpProxy
from tests.service.test_persist_pg import one
from tests.service.tmpfs import small_disk

__all__ = ["small_disk"]
RESERVE = 64 << 10
MD_BATCH, ORDERS = 64, 2  # per cycle: 64 market-data rows (4 KiB) and 6 execution events


def spooled(spool: Spool, stream: Stream) -> int:
    itemsize = (EXEC_EVENT if stream == Stream.EVENTS else MARKET_DATA).itemsize
    frames = [f for i in segments(spool.directory) for f in read_file(segment_path(spool.directory, i))]
    return sum(len(f.payload) // itemsize for f in frames if f.stream == stream)


class Rig:
    """Real rings and status board, the agent over a spool on the small disk, PostgreSQL behind a proxy."""

    def __init__(self, prefix: str, disk: Path, pg_dsn: str, schema: str) -> None:
        self.prefix = prefix
        self.md = Ring.create("md.binance", MARKET_DATA, 4096, Overflow.OVERWRITE, ("persister",), prefix=prefix)
        self.events = Ring.create("events", EXEC_EVENT, 4096, Overflow.BLOCK, ("persister",), prefix=prefix)
        self.board = StatusBoard.create(prefix)
        url = urlsplit(pg_dsn)
        self.proxy = TcpProxy((url.hostname or "127.0.0.1", url.port or 5432))  # not started: the db is down
        dsn = urlunsplit(url._replace(netloc=f"{url.username}@127.0.0.1:{self.proxy.port}"))
        self.spool = Spool(disk / "spool", segment_bytes=32 << 10, segment_s=0.2, reserve_bytes=RESERVE)
        self.worker = SinkWorker(PgSink(dsn, schema, connect_timeout_s=1.0), self.spool, 2000, 0.05, 0.1)
        sources = [(Stream.MD_BINANCE, self.md.consumer("persister")),
                   (Stream.EVENTS, self.events.consumer("persister"))]
        self.agent = PersisterAgent(sources, self.spool, [self.worker], self.board.claim("persister"), fsync_s=0.05)
        self.md_out, self.ev_out = self.md.producer(), self.events.producer(timeout_s=1.0)
        self.md_sent = self.ev_sent = self.cycles = 0

    def cycle(self) -> None:
        self.md_out.publish(market_data(MD_BATCH, start=self.md_sent))
        self.ev_out.publish(exec_events(ORDERS, start_order=self.ev_sent // 3))
        self.md_sent += MD_BATCH
        self.ev_sent += 3 * ORDERS
        self.cycles += 1
        self.agent.do_work()

    def counters(self) -> dict[str, int]:
        self.agent._publish_counters()
        return next(r for r in self.board.snapshot() if r.role == "persister").counters

    def close(self) -> None:
        self.proxy.stop()
        self.agent.on_close()
        for name, ring in (("md.binance", self.md), ("events", self.events)):
            ring.close()
            Ring.unlink(name, prefix=self.prefix)
        self.board.close()
        StatusBoard.unlink(self.prefix)


@pytest.fixture
def rig(shm_prefix: str, small_disk: Callable[[str, str], Path], pg_dsn: str, pg_schema: str) -> Iterator[Rig]:
    disk = small_disk("disk", "512k")
    (disk / "filler").write_bytes(bytes(96 << 10))  # space the test hands back later
    rig = Rig(shm_prefix, disk, pg_dsn, pg_schema)
    rig.agent.on_start()
    try:
        yield rig
    finally:
        rig.close()


def until(probe: Callable[[], object], what: str, step: Callable[[], None], limit: int = 3000) -> None:
    for _ in range(limit):
        if probe():
            return
        step()
    raise AssertionError(f"never happened within {limit} steps: {what}")


def test_full_disk_sheds_market_data_keeps_executions_and_recovers(rig: Rig, pg: object, pg_schema: str) -> None:
    spool, agent = rig.spool, rig.agent
    assert spool.reserve.held and (spool.directory / "RESERVE").stat().st_size == RESERVE

    # 1. the disk fills: market data is shed, then the reserve goes to executions
    until(lambda: not spool.reserve.held, "the reserve released for an execution", rig.cycle, 400)
    counters = rig.counters()
    assert counters["spool_errors"] >= 1 and counters["md_shed_rows"] > 0 and counters["spool_reserve_bytes"] == 0
    assert not agent.md_open
    shed_before = agent.md_shed
    for _ in range(5):
        rig.cycle()
    assert agent.md_shed == shed_before + 5 * MD_BATCH, "no market data is tried while the reserve is out"

    # 2. even the reserve is used up: executions wait in their ring (cursor kept), failures counted
    until(lambda: rig.events.lag()["persister"][0] > 0, "executions waiting in the events ring", rig.cycle)
    errors = rig.counters()["spool_errors"]
    rig.cycle()
    assert rig.counters()["spool_errors"] > errors, "each failed append is counted and retried"
    assert spooled(spool, Stream.EVENTS) < rig.ev_sent

    # 3. space comes back: every execution is spooled, market data is still shed (executions first)
    (spool.directory.parent / "filler").unlink()
    agent.do_work()
    assert spooled(spool, Stream.EVENTS) == rig.ev_sent, "not one execution lost"
    assert not agent.md_open

    # 4. the database comes back: the spool drains, drained segments go, market data is spooled again
    rig.proxy.start()
    until(lambda: agent.md_open, "market data spooled again", lambda: (agent.do_work(), time.sleep(0.05)), 600)
    assert spool.reserve.held, "the reserve is allocated again before market data comes back"
    shed, md_back = agent.md_shed, rig.md_sent
    for _ in range(10):
        rig.cycle()
    assert agent.md_shed == shed and rig.md_sent - md_back == 10 * MD_BATCH, "market data is kept again"
    until(lambda: rig.worker.position == spool.end, "the sink caught up", lambda: time.sleep(0.05), 1200)
    tables = ("md_bbo", "md_trades", "md_depth", "md_status")
    stored_md = sum(one(pg, f"SELECT count(*) FROM {pg_schema}.{t}") for t in tables)
    assert stored_md == rig.md_sent - agent.md_shed, "every market-data row not counted as shed is stored"
    assert one(pg, f"SELECT count(*) FROM {pg_schema}.order_events") == rig.ev_sent, "every execution is stored"
    until(lambda: rig.counters()["spool_disk_bytes"] < 64 << 10, "drained segments removed",
          lambda: time.sleep(0.05), 200)


def test_a_short_write_is_cut_off_and_retried_whole(small_disk: Callable[[str, str], Path]) -> None:
    disk = small_disk("tiny", "64k")
    spool = Spool(disk / "spool", segment_bytes=1 << 20)
    filler = disk / "filler"
    filler.write_bytes(bytes(40 << 10))
    records, appended = market_data(64), 0
    with pytest.raises(OSError, match=r"No space left|short spool write"):
        for _ in range(100):  # 400 KiB onto a disk with 24 KiB free
            spool.append(Stream.MD_BINANCE, 1, records)
            appended += 1
    path = segment_path(spool.directory, spool.end.segment)
    assert path.stat().st_size == spool.end.offset, "no partial frame left behind"
    filler.unlink()
    spool.append(Stream.MD_BINANCE, 1, records)
    frames = read_file(path)
    assert len(frames) == appended + 1 and all(len(f.payload) == records.nbytes for f in frames)
    spool.close()


def test_segments_rotate_by_age_and_backlog_counts_bytes(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", segment_bytes=1 << 20, segment_s=0.05)
    records = market_data(16)
    start = spool.end
    for _ in range(3):
        spool.append(Stream.MD_BINANCE, 1, records)
        time.sleep(0.06)
    assert len(segments(spool.directory)) == 3, "a segment older than segment_s is sealed at the next append"
    size = sum(segment_path(spool.directory, i).stat().st_size for i in segments(spool.directory))
    assert spool.backlog_bytes(start) == size
    spool.close()
