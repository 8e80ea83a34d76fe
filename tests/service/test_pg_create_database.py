"""persister.create_database against the real PostgreSQL: a missing database is created (through the
server's maintenance db) and migrated at connect; without the setting it stays an unavailable sink."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg2
import pytest
from psycopg2 import sql
from psycopg2.extensions import make_dsn

from kairos.errors import SinkUnavailable
from kairos.persist.createdb import MAINTENANCE_DB
from kairos.persist.pg import PgSink


def _admin(dsn: str) -> psycopg2.extensions.connection:
    conn = psycopg2.connect(make_dsn(dsn, dbname=MAINTENANCE_DB), connect_timeout=3)
    conn.autocommit = True
    return conn


@pytest.fixture
def missing_db(pg_dsn: str) -> Iterator[str]:
    """The DSN of a database that does not exist yet (dropped afterwards if a test created it)."""
    name = f"kairos_t_{uuid.uuid4().hex[:10]}"
    yield make_dsn(pg_dsn, dbname=name)
    admin = _admin(pg_dsn)
    try:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        admin.close()


def test_a_missing_database_is_created_and_migrated(missing_db: str) -> None:
    sink = PgSink(missing_db, "kairos", create_database=True)
    sink.connect()
    sink.close()
    with psycopg2.connect(missing_db, connect_timeout=3) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'kairos'")
        assert cur.fetchone()[0] > 0
    again = PgSink(missing_db, "kairos", create_database=True)  # exists now: a plain connect
    again.connect()
    again.close()


def test_without_the_setting_a_missing_database_is_unavailable(missing_db: str) -> None:
    with pytest.raises(SinkUnavailable, match="does not exist"):
        PgSink(missing_db, "kairos").connect()
