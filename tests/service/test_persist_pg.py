"""The persister against the real PostgreSQL: migrations, partitioning, COPY + idempotent inserts."""

from __future__ import annotations

import logging
import threading
import time

import psycopg2
import pytest

from kairos.errors import PersistError
from kairos.persist.batch import Batch
from kairos.persist.migrate import (
    DAY_NS,
    MIGRATIONS,
    NativePartitions,
    Retention,
    Timescale,
    ensure_partition,
    migrate,
    partition_day,
)
from kairos.persist.pg import PgSink
from kairos.persist.schema import MD_TABLES, TIME_TABLES
from kairos.persist.synthetic import T0_NS, counts_by_kind, exec_events, market_data
from kairos.records import Kind, OrderState

MD_TABLE = {Kind.BBO: "md_bbo", Kind.TRADE: "md_trades", Kind.DEPTH: "md_depth", Kind.STATUS: "md_status"}


def one(pg: psycopg2.extensions.connection, sql: str, *args: object) -> object:
    with pg.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()[0]


def rows(pg: psycopg2.extensions.connection, sql: str, *args: object) -> list[tuple]:
    with pg.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def table_counts(pg: psycopg2.extensions.connection, schema: str) -> dict[str, int]:
    names = [*MD_TABLE.values(), "order_events", "fills", "orders"]
    return {name: one(pg, f"SELECT count(*) FROM {schema}.{name}") for name in names}


def expected_counts(md_count: dict[Kind, int], orders: int) -> dict[str, int]:
    fills = sum(1 + (k % 2 == 0) for k in range(orders))
    return {**{MD_TABLE[k]: n for k, n in md_count.items()}, "order_events": 3 * orders, "fills": fills,
            "orders": orders}


def make_batch(md: object = None, events: object = None) -> Batch:
    batch = Batch()
    if md is not None:
        batch.md.append(md)
        batch.rows += len(md)
    if events is not None:
        batch.events.append(events)
        batch.rows += len(events)
    return batch


def test_migrations_run_twice_apply_once(pg_dsn: str, pg_schema: str, pg: object) -> None:
    conn = psycopg2.connect(pg_dsn)
    try:
        assert migrate(conn, pg_schema).name == "native"
        first = rows(pg, f"SELECT version, applied_at FROM {pg_schema}.schema_migrations ORDER BY 1")
        assert migrate(conn, pg_schema).name == "native"
        assert rows(pg, f"SELECT version, applied_at FROM {pg_schema}.schema_migrations ORDER BY 1") == first
        assert [v for v, _ in first] == [m[0] for m in MIGRATIONS]
    finally:
        conn.close()


def test_concurrent_migrations_are_serialised_by_the_advisory_lock(pg_dsn: str, pg_schema: str, pg: object) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        conn = psycopg2.connect(pg_dsn)
        try:
            migrate(conn, pg_schema)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert one(pg, f"SELECT count(*) FROM {pg_schema}.schema_migrations") == len(MIGRATIONS)


def test_native_partitions_exist_and_rows_land_in_their_day(pg_dsn: str, pg_schema: str, pg: object) -> None:
    conn = psycopg2.connect(pg_dsn)
    now = T0_NS
    try:
        migrate(conn, pg_schema, native=NativePartitions(days_back=1, days_ahead=2), now_ns=now)
        for table in TIME_TABLES:
            assert one(pg, "SELECT relkind FROM pg_class WHERE oid = %s::regclass", f"{pg_schema}.{table.name}") == "p"
            parts = rows(pg, "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
                         "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
                         f"{pg_schema}.{table.name}")
            assert len(parts) == 4 + 1 and any(bound == "DEFAULT" for _, bound in parts)
        today, far = now, now + 30 * DAY_NS
        sink = PgSink(pg_dsn, pg_schema, native=NativePartitions(1, 2))
        sink.connect()
        md = market_data(20, t0_ns=today)
        late = market_data(10, start=1000, t0_ns=far)
        sink.write(make_batch(market_data(0)))
        sink.write(make_batch(md))
        sink.write(make_batch(late))
        placed = dict(rows(pg, f"SELECT tableoid::regclass::text, count(*) FROM {pg_schema}.md_bbo GROUP BY 1"))
        day = time.strftime("%Y%m%d", time.gmtime(today // 10**9))
        assert placed == {f"{pg_schema}.md_bbo_p{day}": counts_by_kind(md)[Kind.BBO],
                          f"{pg_schema}.md_bbo_default": counts_by_kind(late)[Kind.BBO]}
        with conn.cursor() as cur:  # the day arrives: its rows move out of DEFAULT into the new partition
            assert ensure_partition(cur, pg_schema, MD_TABLES[0], far // DAY_NS * DAY_NS)
        conn.commit()
        placed = dict(rows(pg, f"SELECT tableoid::regclass::text, count(*) FROM {pg_schema}.md_bbo GROUP BY 1"))
        far_day = time.strftime("%Y%m%d", time.gmtime(far // 10**9))
        assert placed[f"{pg_schema}.md_bbo_p{far_day}"] == counts_by_kind(late)[Kind.BBO]
        assert f"{pg_schema}.md_bbo_default" not in placed
        sink.write(make_batch(late))  # the unique key still holds in the attached partition
        total = sum(counts_by_kind(x)[Kind.BBO] for x in (md, late))
        assert one(pg, f"SELECT count(*) FROM {pg_schema}.md_bbo") == total
        sink.close()
    finally:
        conn.close()


def test_timescale_unavailable_here_auto_falls_back_required_fails(pg_dsn: str, pg_schema: str, pg: object,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    conn = psycopg2.connect(pg_dsn)
    try:
        with pytest.raises(PersistError, match="timescale"):
            migrate(conn, pg_schema, mode="timescale")
        with caplog.at_level(logging.INFO):
            assert migrate(conn, pg_schema, mode="auto").name == "native"
        assert "TimescaleDB unavailable" in caplog.text and "timescaledb" in caplog.text
        assert one(pg, f"SELECT value FROM {pg_schema}.kairos_meta WHERE key = 'storage'") == "native"
        assert migrate(conn, pg_schema, mode="native").name == "native"
    finally:
        conn.close()


def test_timescale_path_calls_create_hypertable_per_table(pg_dsn: str, pg_schema: str, pg: object) -> None:
    """The extension is not installable here, so a SQL function with create_hypertable's signature
    stands in for it (it records its arguments); everything else is the real migration."""
    pg.cursor().execute(f"""CREATE SCHEMA {pg_schema};
        CREATE TABLE {pg_schema}.hypertables (rel regclass, col name, chunk bigint, ine boolean);
        CREATE FUNCTION {pg_schema}.create_hypertable(relation regclass, time_column_name name,
            chunk_time_interval bigint, if_not_exists boolean) RETURNS void LANGUAGE sql AS
        $$ INSERT INTO {pg_schema}.hypertables VALUES (relation, time_column_name, chunk_time_interval,
           if_not_exists) $$;
        CREATE TABLE {pg_schema}.kairos_meta (key text PRIMARY KEY, value text NOT NULL);
        INSERT INTO {pg_schema}.kairos_meta VALUES ('storage', 'timescale')""")
    conn = psycopg2.connect(pg_dsn, options=f"-c search_path={pg_schema},public")
    try:
        assert isinstance(migrate(conn, pg_schema, mode="auto"), Timescale)
    finally:
        conn.close()
    made = rows(pg, f"SELECT rel::text, col, chunk, ine FROM {pg_schema}.hypertables ORDER BY 1")
    assert made == sorted((f"{pg_schema}.{t.name}", t.time_column, DAY_NS, True) for t in TIME_TABLES)
    assert one(pg, "SELECT relkind FROM pg_class WHERE oid = %s::regclass", f"{pg_schema}.md_bbo") == "r"


def test_copy_writes_every_row_once_and_a_replay_adds_nothing(pg_dsn: str, pg_schema: str, pg: object) -> None:
    sink = PgSink(pg_dsn, pg_schema)
    sink.connect()
    md, events = market_data(5000), exec_events(300)
    sink.write(make_batch(md[:3000], events[:450]))
    sink.write(make_batch(md[2000:], events[300:]))  # overlaps the first batch: a replay
    sink.write(make_batch(md, events))
    assert (sink.direct_batches, sink.staged_batches) == (1, 2)  # replays fell back to staging
    assert table_counts(pg, pg_schema) == expected_counts(counts_by_kind(md), 300)
    bbo = rows(pg, f"SELECT venue_seq, bid_px, ask_qty FROM {pg_schema}.md_bbo WHERE venue_seq = 10")
    assert bbo == [(10, float(md[10]["price"]), float(md[10]["qty2"]))]
    depth = rows(pg, f"SELECT level FROM {pg_schema}.md_depth ORDER BY ts_recv_ns LIMIT 3")
    assert [lvl for (lvl,) in depth] == [int(x) for x in md[md["kind"] == Kind.DEPTH]["flags"][:3]]
    sink.close()


def test_the_staging_path_alone_is_idempotent_too(pg_dsn: str, pg_schema: str, pg: object) -> None:
    sink = PgSink(pg_dsn, pg_schema, direct=False)
    sink.connect()
    md = market_data(3000)
    sink.write(make_batch(md[:2000]))
    sink.write(make_batch(md[1000:]))
    assert (sink.direct_batches, sink.staged_batches) == (0, 2)
    counts = table_counts(pg, pg_schema)
    assert {k: counts[k] for k in MD_TABLE.values()} == {MD_TABLE[k]: n for k, n in counts_by_kind(md).items()}
    sink.close()


def test_orders_keep_the_latest_state_even_when_replayed_out_of_order(pg_dsn: str, pg_schema: str, pg: object) -> None:
    sink = PgSink(pg_dsn, pg_schema)
    sink.connect()
    events = exec_events(4)
    sink.write(make_batch(events=events))
    sink.write(make_batch(events=events[:2]))  # an old replay must not move orders backwards
    got = dict(rows(pg, f"SELECT client_order_id, state FROM {pg_schema}.orders"))
    assert got == {f"ord{k:08d}": OrderState.FILLED if k % 2 == 0 else OrderState.CANCELED for k in range(4)}
    assert one(pg, f"SELECT cum_qty FROM {pg_schema}.orders WHERE client_order_id = 'ord00000000'") == 1.0
    created, updated = rows(pg, f"SELECT created_ns, updated_ns FROM {pg_schema}.orders "
                                "WHERE client_order_id = 'ord00000001'")[0]
    assert (created, updated) == (int(events[3]["ts_event_ns"]), int(events[5]["ts_event_ns"]))
    sink.close()


def test_gate_state_rows_are_written_once(pg_dsn: str, pg_schema: str, pg: object) -> None:
    sink = PgSink(pg_dsn, pg_schema)
    sink.connect()
    batch = Batch(balances=[(T0_NS, 1, "USDT", 990.0, 5.0), (T0_NS, 1, "BTC", 0.5, 0.0)],
                  positions=[(T0_NS, 1, 1, 0.5, 60000.0, 1.5)], rows=3)
    sink.write(batch)
    sink.write(batch)  # a replayed snapshot
    assert rows(pg, f"SELECT asset, free, locked FROM {pg_schema}.balances ORDER BY asset") == [
        ("BTC", 0.5, 0.0), ("USDT", 990.0, 5.0)]
    assert rows(pg, f"SELECT venue, instrument, qty, avg_px, realized_pnl FROM {pg_schema}.positions") == [
        (1, 1, 0.5, 60000.0, 1.5)]
    sink.close()


def _days(pg: psycopg2.extensions.connection, schema: str, table: str) -> set[int]:
    """The UTC days (ns) that have rows in ``table``."""
    return {r[0] for r in rows(pg, f"SELECT DISTINCT {_time(table)} / {DAY_NS} * {DAY_NS} FROM {schema}.{table}")}


def _time(table: str) -> str:
    return next(t.time_column for t in TIME_TABLES if t.name == table)


def test_retention_drops_old_days_of_md_and_state_never_executions(pg_dsn: str, pg_schema: str, pg: object) -> None:
    today = T0_NS // DAY_NS * DAY_NS
    days = [today - back * DAY_NS for back in (12, 4, 3, 2, 1, 0)]  # 12 days back: no partition, in DEFAULT
    conn = psycopg2.connect(pg_dsn)
    try:
        migrate(conn, pg_schema, native=NativePartitions(days_back=4, days_ahead=1), now_ns=today)
        sink = PgSink(pg_dsn, pg_schema)
        sink.connect()
        for n, day in enumerate(days):
            sink.write(make_batch(market_data(10, start=100 * n, t0_ns=day + 3600 * 10**9),
                                  exec_events(1, start_order=n, t0_ns=day + 3600 * 10**9)))
            sink.write(Batch(balances=[(day + 1, 1, "USDT", 1.0, 0.0)], positions=[(day + 1, 1, 1, 0.5, 1.0, 0.0)],
                             rows=2))
        sink.close()
        assert _days(pg, pg_schema, "md_bbo") == set(days)
        migrate(conn, pg_schema, native=NativePartitions(4, 1), now_ns=today + 5, retention=Retention(md_days=2))
        kept = set(days[3:])
        for table in ("md_bbo", "md_trades", "md_depth", "md_status"):
            assert _days(pg, pg_schema, table) == kept, table
        for table in ("order_events", "fills", "balances", "positions"):
            assert _days(pg, pg_schema, table) == set(days), table
        parts = {r[0] for r in rows(pg, "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                                        "WHERE i.inhparent = %s::regclass", f"{pg_schema}.md_bbo")}
        part_days = {partition_day(MD_TABLES[0], name) for name in parts}
        assert "md_bbo_default" in parts and kept <= part_days and min(part_days - {None}) == days[3]
        migrate(conn, pg_schema, native=NativePartitions(4, 1), now_ns=today + 5,
                retention=Retention(md_days=2, state_days=1))
        assert _days(pg, pg_schema, "balances") == _days(pg, pg_schema, "positions") == set(days[4:])
        assert _days(pg, pg_schema, "order_events") == set(days)
        assert _days(pg, pg_schema, "md_bbo") == kept, "a second pass changes nothing more"
    finally:
        conn.close()


def test_timescale_retention_drops_chunks_of_md_and_state_only(pg_dsn: str, pg_schema: str, pg: object) -> None:
    """As above, a SQL stand-in with drop_chunks' signature records the calls (no extension here)."""
    pg.cursor().execute(f"""CREATE SCHEMA {pg_schema};
        CREATE TABLE {pg_schema}.dropped (rel regclass, older_than bigint);
        CREATE FUNCTION {pg_schema}.create_hypertable(relation regclass, time_column_name name,
            chunk_time_interval bigint, if_not_exists boolean) RETURNS void LANGUAGE sql AS $$ SELECT $$;
        CREATE FUNCTION {pg_schema}.drop_chunks(relation regclass, older_than bigint) RETURNS SETOF text
            LANGUAGE sql AS $$ INSERT INTO {pg_schema}.dropped VALUES (relation, older_than) RETURNING 'chunk' $$;
        CREATE TABLE {pg_schema}.kairos_meta (key text PRIMARY KEY, value text NOT NULL);
        INSERT INTO {pg_schema}.kairos_meta VALUES ('storage', 'timescale')""")
    today = T0_NS // DAY_NS * DAY_NS
    conn = psycopg2.connect(pg_dsn, options=f"-c search_path={pg_schema},public")
    try:
        migrate(conn, pg_schema, now_ns=today + 7, retention=Retention(md_days=3, state_days=30))
    finally:
        conn.close()
    made = rows(pg, f"SELECT rel::text, older_than FROM {pg_schema}.dropped ORDER BY 1")
    expected = [(f"{pg_schema}.{t.name}", today - 3 * DAY_NS) for t in MD_TABLES]
    expected += [(f"{pg_schema}.{t}", today - 30 * DAY_NS) for t in ("balances", "positions")]
    assert made == sorted(expected)
