"""Spool -> sink worker -> real PostgreSQL while the database misbehaves: no loss, no duplicate."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import psycopg2

from kairos.persist.batch import STREAM_FINGERPRINTS, Stream
from kairos.persist.pg import PgSink
from kairos.persist.spool import Spool, read_file
from kairos.persist.synthetic import counts_by_kind, exec_events, market_data
from kairos.persist.worker import SinkWorker
from kairos.records import MARKET_DATA, Kind
from tests.service.test_persist_pg import expected_counts, one, table_counts

MD_FP, EV_FP = STREAM_FINGERPRINTS[Stream.MD_BINANCE], STREAM_FINGERPRINTS[Stream.EVENTS]


def wait_caught_up(worker: SinkWorker, spool: Spool, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while worker.position < spool.end and time.monotonic() < deadline:
        time.sleep(0.05)
    assert worker.position == spool.end, (worker.position, spool.end)


def test_terminated_backends_mid_stream_lose_and_duplicate_nothing(pg_dsn: str, pg_schema: str, pg: object,
                                                                    tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    worker = SinkWorker(PgSink(pg_dsn, pg_schema), spool, batch_rows=3000, flush_s=0.05, retry_s=0.2)
    killed_enough = threading.Event()
    kills: list[int] = []
    frames: list[int] = []

    def produce() -> None:  # at least 200 frame pairs, and on until three backends were killed
        i = 0
        while i < 200 or (not killed_enough.is_set() and i < 3000):
            spool.append(Stream.MD_BINANCE, MD_FP, market_data(600, start=600 * i))
            spool.append(Stream.EVENTS, EV_FP, exec_events(10, start_order=10 * i))
            i += 1
            time.sleep(0.01)
        frames.append(i)

    def kill() -> None:
        killer = psycopg2.connect(pg_dsn)
        killer.autocommit = True
        try:
            deadline = time.monotonic() + 60
            while sum(kills) < 3 and time.monotonic() < deadline:
                time.sleep(0.25)
                with killer.cursor() as cur:
                    cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                "WHERE application_name = %s", (f"kairos-persister/{pg_schema}",))
                    kills.append(cur.fetchone()[0])
        finally:
            killed_enough.set()
            killer.close()

    worker.start()
    threads = [threading.Thread(target=produce), threading.Thread(target=kill)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    wait_caught_up(worker, spool)
    worker.stop(1.0)
    worker.join()
    spool.close()
    assert sum(kills) >= 3 and worker.failures >= 1, (kills, worker.failures)
    md = market_data(600 * frames[0])
    assert table_counts(pg, pg_schema) == expected_counts(counts_by_kind(md), 10 * frames[0])
    assert one(pg, f"SELECT count(DISTINCT (ts_recv_ns, venue_seq)) FROM {pg_schema}.md_trades") == \
        counts_by_kind(md)[Kind.TRADE]


def test_refused_frame_is_dead_lettered_and_the_rest_written(pg_dsn: str, pg_schema: str, pg: object,
                                                             tmp_path: Path) -> None:
    sink = PgSink(pg_dsn, pg_schema)
    sink.connect()  # migrate, then make one kind of row unacceptable to the database
    pg.cursor().execute(f"ALTER TABLE {pg_schema}.md_trades ADD CONSTRAINT qty_positive CHECK (qty >= 0)")
    sink.close()
    spool = Spool(tmp_path / "spool")
    good_a, bad, good_b = market_data(100), market_data(50, start=100), market_data(100, start=150)
    bad["qty"][bad["kind"] == Kind.TRADE] = -1.0
    for frame in (good_a, bad, good_b):
        spool.append(Stream.MD_OKX, MD_FP, frame)
    worker = SinkWorker(sink, spool, batch_rows=10_000, flush_s=0.05, retry_s=0.2)
    worker.start()
    wait_caught_up(worker, spool, 60.0)
    worker.stop(1.0)
    worker.join()
    good = np.concatenate([good_a, good_b])
    assert worker.dead_frames == 1
    assert one(pg, f"SELECT count(*) FROM {pg_schema}.md_bbo") == counts_by_kind(good)[Kind.BBO]
    assert one(pg, f"SELECT count(*) FROM {pg_schema}.md_trades") == counts_by_kind(good)[Kind.TRADE]
    (frame,) = read_file(tmp_path / "spool" / "dead" / "pg.spool")
    assert frame.stream == Stream.MD_OKX and np.array_equal(np.frombuffer(frame.payload, MARKET_DATA), bad)
    spool.close()


def test_checkpoint_resumes_a_new_worker_without_rewriting(pg_dsn: str, pg_schema: str, pg: object,
                                                           tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    md = market_data(4000)
    spool.append(Stream.MD_BINANCE, MD_FP, md[:2000])
    first = SinkWorker(PgSink(pg_dsn, pg_schema), spool, batch_rows=5000, flush_s=0.05, retry_s=0.2)
    first.start()
    wait_caught_up(first, spool, 60.0)
    first.stop(1.0)
    first.join()
    spool.append(Stream.MD_BINANCE, MD_FP, md[2000:])
    second = SinkWorker(PgSink(pg_dsn, pg_schema), spool, batch_rows=5000, flush_s=0.05, retry_s=0.2)
    assert second.position == first.position
    second.start()
    wait_caught_up(second, spool, 60.0)
    second.stop(1.0)
    second.join()
    assert second.rows == 2000
    assert table_counts(pg, pg_schema)["md_bbo"] == counts_by_kind(md)[Kind.BBO]
    spool.close()
