"""Idempotent migrations and time-partition storage: TimescaleDB hypertables when the extension
can be created, native declarative range partitions (daily, plus a DEFAULT partition) otherwise.
Retention drops whole days (partitions or chunks) of market data and state snapshots older than
configured; execution tables (order events, fills) are the audit trail and are never expired.

`migrate` holds a session advisory lock (two persisters never race), records each applied
version in ``{schema}.schema_migrations`` and applies each migration in its own transaction. The
storage kind chosen the first time is stored in ``{schema}.kairos_meta`` and reused afterwards.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Protocol

import psycopg2
from psycopg2.extensions import connection, cursor

from kairos.errors import PersistError
from kairos.persist.schema import (
    EXEC_TABLES,
    MD_TABLES,
    ORDERS_DDL,
    STATE_TABLES,
    TIME_TABLES,
    VIEWS_DDL,
    TimeTable,
    check_schema_name,
)

log = logging.getLogger(__name__)

DAY_NS: Final = 86_400 * 10**9


class Storage(Protocol):
    """How a time table is laid out: create it once, then keep it ready for new rows."""

    name: str

    def create(self, cur: cursor, schema: str, table: TimeTable) -> None: ...

    def maintain(self, cur: cursor, schema: str, now_ns: int) -> int: ...

    def expire(self, cur: cursor, schema: str, table: TimeTable, cutoff_ns: int) -> int: ...


@dataclass(frozen=True, slots=True)
class Retention:
    """Whole UTC days kept before today, per table group; 0 keeps everything."""

    md_days: int = 0
    state_days: int = 0

    def cutoffs(self, now_ns: int) -> list[tuple[tuple[TimeTable, ...], int]]:
        """(tables, cutoff ns) for each group with a limit: rows before the cutoff go."""
        today = now_ns // DAY_NS * DAY_NS
        return [(tables, today - days * DAY_NS) for tables, days in ((MD_TABLES, self.md_days),
                                                                     (STATE_TABLES, self.state_days)) if days > 0]


def _create_plain(cur: cursor, schema: str, table: TimeTable, suffix: str = "") -> None:
    key = ", ".join(table.key)
    cur.execute(f"CREATE TABLE {schema}.{table.name} ({table.columns}, PRIMARY KEY ({key})){suffix}")


class Timescale:
    """Hypertables on the integer ns time column; chunks appear on insert, nothing to maintain."""

    name = "timescale"

    def __init__(self, chunk_ns: int = DAY_NS) -> None:
        self.chunk_ns = chunk_ns

    def create(self, cur: cursor, schema: str, table: TimeTable) -> None:
        _create_plain(cur, schema, table)
        cur.execute(
            "SELECT create_hypertable(%s, %s, chunk_time_interval => %s::bigint, if_not_exists => true)",
            (f"{schema}.{table.name}", table.time_column, self.chunk_ns),
        )

    def maintain(self, cur: cursor, schema: str, now_ns: int) -> int:
        return 0

    def expire(self, cur: cursor, schema: str, table: TimeTable, cutoff_ns: int) -> int:
        """TimescaleDB drops every chunk that ends at or before the cutoff."""
        cur.execute("SELECT count(*) FROM drop_chunks(%s, older_than => %s::bigint)",
                    (f"{schema}.{table.name}", cutoff_ns))
        return cur.fetchone()[0]


class NativePartitions:
    """``PARTITION BY RANGE`` on the ns column: one partition per UTC day from ``days_back`` to
    ``days_ahead`` around now, and a DEFAULT partition so no row is ever rejected."""

    name = "native"

    def __init__(self, days_back: int = 1, days_ahead: int = 3) -> None:
        self.days_back, self.days_ahead = days_back, days_ahead

    def create(self, cur: cursor, schema: str, table: TimeTable) -> None:
        _create_plain(cur, schema, table, f" PARTITION BY RANGE ({table.time_column})")
        cur.execute(f"CREATE TABLE {schema}.{table.name}_default PARTITION OF {schema}.{table.name} DEFAULT")

    def maintain(self, cur: cursor, schema: str, now_ns: int) -> int:
        """Create the missing daily partitions around ``now_ns``; returns how many were created."""
        today = now_ns // DAY_NS * DAY_NS
        created = 0
        for table in TIME_TABLES:
            for day in range(-self.days_back, self.days_ahead + 1):
                created += ensure_partition(cur, schema, table, today + day * DAY_NS)
        return created

    def expire(self, cur: cursor, schema: str, table: TimeTable, cutoff_ns: int) -> int:
        """Drop the day partitions that end at or before ``cutoff_ns``; delete older rows from DEFAULT."""
        cur.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = %s::regclass", (f"{schema}.{table.name}",))
        dropped = 0
        for (name,) in cur.fetchall():
            day = partition_day(table, name)
            if day is not None and day + DAY_NS <= cutoff_ns:
                cur.execute(f"DROP TABLE {schema}.{name}")
                dropped += 1
        cur.execute(f"DELETE FROM {schema}.{table.name}_default WHERE {table.time_column} < %s", (cutoff_ns,))
        return dropped


def partition_name(table: TimeTable, day_start_ns: int) -> str:
    return f"{table.name}_p{datetime.fromtimestamp(day_start_ns // 10**9, UTC):%Y%m%d}"


def partition_day(table: TimeTable, name: str) -> int | None:
    """Start (ns) of the day a partition of ours holds, or None for DEFAULT and foreign tables."""
    stamp = name.removeprefix(f"{table.name}_p")
    if stamp == name or len(stamp) != 8 or not stamp.isdigit():
        return None
    return int(datetime.strptime(stamp, "%Y%m%d").replace(tzinfo=UTC).timestamp()) * 10**9


def ensure_partition(cur: cursor, schema: str, table: TimeTable, lo: int) -> bool:
    """Create the day partition [lo, lo + 1 day); rows already in DEFAULT for that day move into it."""
    name, hi, parent = partition_name(table, lo), lo + DAY_NS, f"{schema}.{table.name}"
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.{name}",))
    if cur.fetchone()[0]:
        return False
    in_range = f"{table.time_column} >= {lo} AND {table.time_column} < {hi}"
    cur.execute(f"SELECT EXISTS (SELECT 1 FROM {parent}_default WHERE {in_range})")
    if not cur.fetchone()[0]:
        cur.execute(f"CREATE TABLE {schema}.{name} PARTITION OF {parent} FOR VALUES FROM ({lo}) TO ({hi})")
        return True
    cur.execute(f"CREATE TABLE {schema}.{name} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    cur.execute(f"WITH moved AS (DELETE FROM {parent}_default WHERE {in_range} RETURNING *) "
                f"INSERT INTO {schema}.{name} SELECT * FROM moved")
    cur.execute(f"ALTER TABLE {parent} ATTACH PARTITION {schema}.{name} FOR VALUES FROM ({lo}) TO ({hi})")
    return True


def detect_storage(cur: cursor, mode: str, native: NativePartitions) -> Storage:
    """``auto``: TimescaleDB if ``CREATE EXTENSION IF NOT EXISTS timescaledb`` succeeds, else native;
    ``timescale``: the extension is required; ``native``: never try it."""
    if mode == "native":
        return native
    cur.execute("SAVEPOINT kairos_timescale")
    try:
        cur.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg2.Error as exc:
        cur.execute("ROLLBACK TO SAVEPOINT kairos_timescale")
        reason = exc.diag.message_primary or str(exc).strip().splitlines()[0]
        if mode == "timescale":
            raise PersistError(f"persister.storage is 'timescale' but the extension is unusable: {reason}") from exc
        log.info("TimescaleDB unavailable (%s): using native range partitioning", reason)
        return native
    cur.execute("RELEASE SAVEPOINT kairos_timescale")
    return Timescale()


Migration = tuple[int, str, Callable[[cursor, str, Storage], None]]


def _create_all(tables: tuple[TimeTable, ...]) -> Callable[[cursor, str, Storage], None]:
    def apply(cur: cursor, schema: str, storage: Storage) -> None:
        for table in tables:
            storage.create(cur, schema, table)

    return apply


def _orders(cur: cursor, schema: str, storage: Storage) -> None:
    _create_all(EXEC_TABLES)(cur, schema, storage)
    cur.execute(ORDERS_DDL.format(s=schema))


def _views(cur: cursor, schema: str, storage: Storage) -> None:
    for ddl in VIEWS_DDL:
        cur.execute(ddl.format(s=schema))


MIGRATIONS: Final[tuple[Migration, ...]] = (
    (1, "market data: md_bbo, md_trades, md_depth, md_status", _create_all(MD_TABLES)),
    (2, "execution: order_events, fills, orders", _orders),
    (3, "state snapshots: balances, positions", _create_all(STATE_TABLES)),
    (4, "timestamptz views *_v", _views),
)


def lock_key(schema: str) -> int:
    return zlib.crc32(f"kairos.migrate:{schema}".encode())


def migrate(conn: connection, schema: str, mode: str = "auto", native: NativePartitions | None = None,
            now_ns: int | None = None, retention: Retention | None = None) -> Storage:
    """Bring ``schema`` to the latest version, create partitions ahead and expire old days; safe to
    run concurrently."""
    schema = check_schema_name(schema)
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s)", (lock_key(schema),))
        conn.commit()
        try:
            storage = _bootstrap(conn, cur, schema, mode, native or NativePartitions())
            _apply_pending(conn, cur, schema, storage)
            now_ns = now_ns if now_ns is not None else _now_ns()
            storage.maintain(cur, schema, now_ns)
            _expire(cur, schema, storage, retention or Retention(), now_ns)
            conn.commit()
            return storage
        except psycopg2.Error:
            conn.rollback()
            raise
        finally:
            cur.execute("SELECT pg_advisory_unlock(%s)", (lock_key(schema),))
            conn.commit()


def _expire(cur: cursor, schema: str, storage: Storage, retention: Retention, now_ns: int) -> None:
    for tables, cutoff in retention.cutoffs(now_ns):
        for table in tables:
            dropped = storage.expire(cur, schema, table, cutoff)
            if dropped:
                log.info("retention: dropped %d day(s) of %s.%s before %s", dropped, schema, table.name,
                         datetime.fromtimestamp(cutoff // 10**9, UTC).date())


def _bootstrap(conn: connection, cur: cursor, schema: str, mode: str, native: NativePartitions) -> Storage:
    cur.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    cur.execute(f"CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (version integer PRIMARY KEY, "
                "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
    cur.execute(f"CREATE TABLE IF NOT EXISTS {schema}.kairos_meta (key text PRIMARY KEY, value text NOT NULL)")
    cur.execute(f"SELECT value FROM {schema}.kairos_meta WHERE key = 'storage'")
    row = cur.fetchone()
    storage = (Timescale() if row[0] == "timescale" else native) if row else detect_storage(cur, mode, native)
    cur.execute(f"INSERT INTO {schema}.kairos_meta VALUES ('storage', %s) ON CONFLICT DO NOTHING", (storage.name,))
    conn.commit()
    return storage


def _apply_pending(conn: connection, cur: cursor, schema: str, storage: Storage) -> None:
    cur.execute(f"SELECT version FROM {schema}.schema_migrations")
    applied = {v for (v,) in cur.fetchall()}
    for version, name, apply in MIGRATIONS:
        if version in applied:
            continue
        apply(cur, schema, storage)
        cur.execute(f"INSERT INTO {schema}.schema_migrations (version, name) VALUES (%s, %s)", (version, name))
        conn.commit()
        log.info("schema %s: applied migration %d (%s) with %s storage", schema, version, name, storage.name)


def _now_ns() -> int:
    return time.time_ns()
