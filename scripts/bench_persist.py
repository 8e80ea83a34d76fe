"""Market data into PostgreSQL: the persister's real write path against executemany, same run.

``python -m scripts.bench persist [--json] [--quick]``. A throwaway schema (native daily partitions,
the real migrations) in the database named by ``KAIROS_BENCH_DSN`` (default: the local ``test``
database); it is dropped afterwards. Rows are synthetic MARKET_DATA, all four kinds mixed, every
row a distinct key.

- ``copy direct`` (the real path for new rows): `PgSink.write` per 5000-row batch: binary COPY
  straight into the four partitioned tables under a savepoint, commit.
- ``copy replay``: the same batches again: every COPY hits a unique violation, the savepoint is
  rolled back and the batch takes the staging path (every row a conflict): a backfill replay.
- ``copy+stage``: `PgSink(direct=False)`: every batch COPYed into a temp staging table, then
  ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` into the four tables, commit.
- ``spool->pg``: the whole persister minus the ring: frames appended to a spool, a `SinkWorker`
  (already connected) reading, batching and writing them (``batch_rows`` 5000), timed from the
  first append until the worker's checkpoint reaches the end of the spool.
- ``spool append``: the drain path alone, 500-row frames into the spool (page cache, no fsync).
- ``executemany``: the same statements a naive writer sends, ``INSERT ... ON CONFLICT DO NOTHING``
  one row per execute via ``cursor.executemany``, commit per 5000 rows (tuples prepared untimed).
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from typing import Any

import numpy as np
import psycopg2

from kairos.persist.batch import STREAM_FINGERPRINTS, Batch, Stream
from kairos.persist.pg import PgSink
from kairos.persist.schema import direct_md_layouts
from kairos.persist.spool import Spool
from kairos.persist.synthetic import market_data
from kairos.persist.worker import SinkWorker

DSN = os.environ.get("KAIROS_BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/test")
BATCH = 5000
TARGETS = {"copy_rows_per_s_min": 100_000, "copy_vs_executemany_min": 10.0}


def _batches(n: int, start: int = 0) -> list[np.ndarray]:
    return [market_data(BATCH, start=start + i) for i in range(0, n, BATCH)]


def _timed(fn: Any, rows: int) -> dict[str, float]:
    t0 = time.perf_counter()
    fn()
    seconds = time.perf_counter() - t0
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds}


def _write(sink: PgSink, batches: list[np.ndarray]) -> None:
    for md in batches:
        sink.write(Batch(md=[md], rows=len(md)))


def _executemany_args(schema: str, md: np.ndarray) -> list[tuple[str, list[tuple]]]:
    out = []
    for kind, layout in direct_md_layouts(schema):
        sel = md[md["kind"] == kind]
        names = ", ".join(c.name for c in layout.columns)
        marks = ", ".join(["%s"] * len(layout.columns))
        sql = f"INSERT INTO {layout.table} ({names}) VALUES ({marks}) ON CONFLICT DO NOTHING"
        out.append((sql, [tuple(v.item() for v in row) for row in sel[[c.field for c in layout.columns]]]))
    return out


def _executemany(conn: Any, work: list[list[tuple[str, list[tuple]]]]) -> None:
    with conn.cursor() as cur:
        for statements in work:
            for sql, args in statements:
                cur.executemany(sql, args)
            conn.commit()


def _spool_to_pg(schema: str, batches: list[np.ndarray]) -> dict[str, dict[str, float]]:
    """With the worker connected and idle: append every batch as 10 frames, time until it has
    checkpointed the end of the spool."""
    with tempfile.TemporaryDirectory() as tmp:
        spool = Spool(tmp)
        worker = SinkWorker(PgSink(DSN, schema), spool, batch_rows=BATCH, flush_s=0.2, retry_s=0.5)
        worker.start()
        deadline = time.perf_counter() + 60
        while not worker.up and time.perf_counter() < deadline:
            time.sleep(0.005)
        fp = STREAM_FINGERPRINTS[Stream.MD_BINANCE]
        t0 = time.perf_counter()
        for md in batches:
            for part in np.array_split(md, 10):
                spool.append(Stream.MD_BINANCE, fp, part)
        append_s = time.perf_counter() - t0
        while worker.position < spool.end and time.perf_counter() - t0 < 600:
            time.sleep(0.005)
        seconds = time.perf_counter() - t0
        worker.stop(1.0)
        worker.join()
        spool.close()
    rows = sum(len(b) for b in batches)
    return {"spool append": {"rows": rows, "seconds": append_s, "rows_per_s": rows / append_s},
            "spool->pg": {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds}}


def _measure(schema: str, n_copy: int, n_many: int) -> tuple[dict[str, dict[str, float]], dict[str, int]]:
    conn = psycopg2.connect(DSN)
    sink, staging = PgSink(DSN, schema), PgSink(DSN, schema, direct=False)
    try:
        sink.connect()
        staging.connect()
        fresh = _batches(n_copy)
        results = {
            "copy direct": _timed(lambda: _write(sink, fresh), n_copy),
            "copy replay": _timed(lambda: _write(sink, fresh), n_copy),
            "copy+stage": _timed(lambda: _write(staging, _batches(n_copy, 10**9)), n_copy),
            **_spool_to_pg(schema, _batches(n_copy, 2 * 10**9)),
        }
        work = [_executemany_args(schema, md) for md in _batches(n_many, 3 * 10**9)]
        results["executemany"] = _timed(lambda: _executemany(conn, work), n_many)
        return results, {"direct": sink.direct_batches, "staged": sink.staged_batches}
    finally:
        sink.close()
        staging.close()
        with conn.cursor() as cur:
            cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.commit()
        conn.close()


def _judge(rate: dict[str, float]) -> tuple[dict[str, float], dict[str, bool]]:
    ratios = {
        "copy direct / executemany": rate["copy direct"] / rate["executemany"],
        "copy+stage / executemany": rate["copy+stage"] / rate["executemany"],
        "spool->pg / executemany": rate["spool->pg"] / rate["executemany"],
        "copy+stage / copy direct": rate["copy+stage"] / rate["copy direct"],
    }
    floor, times = TARGETS["copy_rows_per_s_min"], TARGETS["copy_vs_executemany_min"]
    targets = {
        f"spool->pg >= {floor:,} rows/s": rate["spool->pg"] >= floor,
        f"copy+stage >= {floor:,} rows/s": rate["copy+stage"] >= floor,
        f"spool->pg >= {times:g}x executemany": ratios["spool->pg / executemany"] >= times,
        f"copy+stage >= {times:g}x executemany": ratios["copy+stage / executemany"] >= times,
    }
    return ratios, targets


def run(quick: bool) -> dict[str, Any]:
    """Sustained rows/s of each path into a throwaway schema, with same-run ratios and targets."""
    n_copy, n_many = (200_000, 20_000) if quick else (1_000_000, 50_000)
    results, paths = _measure(f"kairos_bench_{uuid.uuid4().hex[:10]}", n_copy, n_many)
    ratios, targets = _judge({name: r["rows_per_s"] for name, r in results.items()})
    rows = [{"path": name, **{k: round(v, 3) if k == "seconds" else v for k, v in r.items()}}
            for name, r in results.items()]
    meta = {"quick": quick, "batch_rows": BATCH, "sink batches": paths, "cpus": os.cpu_count(),
            "loadavg_1m": os.getloadavg()[0]}
    return {"rows": rows, "ratios": ratios, "targets": targets, "meta": meta}
