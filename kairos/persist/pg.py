"""PostgreSQL sink: one transaction per batch, idempotent. Market data is COPYed (binary) straight
into its tables under a savepoint; if any key already exists (a replay after a crash or outage) the
savepoint is rolled back and the batch takes the staging path: COPY into a temp table, then
``INSERT ... SELECT ... ON CONFLICT DO NOTHING``. Execution events always take the staging path
(the ``orders`` upsert reads the stage).
The few gate-state rows (balances, positions: at most one snapshot a second) go in by execute_values.

Connection trouble (refused, terminated backend, timeout) raises `SinkUnavailable`: the worker keeps the
batch and retries after a backoff. A batch the database refuses for its content raises `BatchRejected`:
the worker splits it and dead-letters what still fails.
"""

from __future__ import annotations

import io
import logging
import time

import numpy as np
import psycopg2
from psycopg2.extensions import connection, cursor
from psycopg2.extras import execute_values

from kairos.errors import BatchRejected, ConfigError, PersistError, SinkUnavailable
from kairos.persist.batch import Batch
from kairos.persist.copybin import StageLayout
from kairos.persist.createdb import create_database, is_missing_database
from kairos.persist.migrate import NativePartitions, Retention, migrate
from kairos.persist.schema import (
    EVENT_INSERTS,
    MD_INSERTS,
    STAGE_EVENTS,
    STAGE_MD,
    STATE_INSERTS,
    check_schema_name,
    direct_md_layouts,
)

log = logging.getLogger(__name__)

STATEMENT_TIMEOUT = "-c statement_timeout=60000"
"""A hung server fails the batch (and it is retried) instead of hanging the sink thread forever."""
_TRANSIENT = (psycopg2.OperationalError, psycopg2.InterfaceError, psycopg2.errors.AdminShutdown)


class PgSink:
    """Writes batches to ``schema``; migrates, creates partitions and expires old days on (re)connect
    and hourly."""

    name = "pg"

    def __init__(self, dsn: str, schema: str, storage: str = "auto", native: NativePartitions | None = None,
                 connect_timeout_s: float = 3.0, maintain_every_s: float = 3600.0, direct: bool = True,
                 retention: Retention | None = None, create_database: bool = False) -> None:
        try:
            psycopg2.extensions.parse_dsn(dsn)
        except psycopg2.ProgrammingError as exc:
            raise ConfigError(str(exc).strip(), "persister.dsn") from None
        self._dsn = dsn
        self.schema = check_schema_name(schema)
        self._storage_mode = storage
        self._native = native or NativePartitions()
        self._retention = retention or Retention()
        self._timeout = connect_timeout_s
        self._create_database = create_database
        self._maintain_every = maintain_every_s
        self._next_maintain = 0.0
        self._conn: connection | None = None
        self._md_sql = tuple(sql.format(s=self.schema) for sql in MD_INSERTS)
        self._ev_sql = tuple(sql.format(s=self.schema) for sql in EVENT_INSERTS)
        self._state_sql = tuple(sql.format(s=self.schema) for sql in STATE_INSERTS)
        self._direct = direct_md_layouts(self.schema) if direct else ()
        self.direct_batches = self.staged_batches = 0
        self.storage = ""

    def connect(self) -> None:
        """Connect, migrate, create the staging tables. Any failure is `SinkUnavailable` (retried
        with backoff): a schema the role may not create is an operator's fix, not a crash loop."""
        self.close()
        conn = None
        try:
            try:
                conn = self._open()
            except psycopg2.OperationalError as exc:
                if not (self._create_database and is_missing_database(exc, self._dsn)):
                    raise
                create_database(self._dsn, max(1, round(self._timeout)))
                conn = self._open()
            self.storage = migrate(conn, self.schema, self._storage_mode, self._native,
                                   retention=self._retention).name
            with conn.cursor() as cur:
                for stage in (STAGE_MD, STAGE_EVENTS):
                    cur.execute(stage.ddl() + " ON COMMIT DELETE ROWS")
            conn.commit()
        except (psycopg2.Error, PersistError) as exc:
            if conn is not None:
                conn.close()
            what = "unreachable" if isinstance(exc, _TRANSIENT) else "start-up failed"
            raise SinkUnavailable(f"PostgreSQL {what}: {_one_line(exc)}") from exc
        self._conn = conn
        self._next_maintain = time.monotonic() + self._maintain_every

    def _open(self) -> connection:
        return psycopg2.connect(self._dsn, connect_timeout=max(1, round(self._timeout)),
                                application_name=f"kairos-persister/{self.schema}", options=STATEMENT_TIMEOUT,
                                keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=3)

    def write(self, batch: Batch) -> None:
        conn = self._conn
        if conn is None:
            raise SinkUnavailable("PostgreSQL not connected")
        try:
            with conn.cursor() as cur:
                self._market_data(cur, batch.market_data())
                self._stage(cur, STAGE_EVENTS, batch.exec_events(), self._ev_sql)
                for sql, rows in zip(self._state_sql, (batch.balances, batch.positions), strict=True):
                    if rows:
                        execute_values(cur, sql, rows)
            conn.commit()
        except _TRANSIENT as exc:
            self.close()
            raise SinkUnavailable(f"PostgreSQL write failed: {_one_line(exc)}") from exc
        except psycopg2.Error as exc:
            conn.rollback()
            raise BatchRejected(f"PostgreSQL refused the batch: {_one_line(exc)}") from exc

    def _market_data(self, cur: cursor, md: np.ndarray) -> None:
        """COPY straight into the tables; if any key exists already (a replay), undo that and take
        the staging path, whose ON CONFLICT DO NOTHING keeps exactly the rows not yet stored."""
        if not len(md):
            return
        if not self._direct:  # direct=False: always stage (the benchmark's comparison)
            self._stage(cur, STAGE_MD, md, self._md_sql)
            self.staged_batches += 1
            return
        cur.execute("SAVEPOINT kairos_direct")
        try:
            for kind, layout in self._direct:
                rows = md[md["kind"] == kind]
                if len(rows):
                    cur.copy_expert(layout.copy_sql(), io.BytesIO(layout.encode(rows)))
            cur.execute("RELEASE SAVEPOINT kairos_direct")
            self.direct_batches += 1
        except psycopg2.errors.UniqueViolation:
            cur.execute("ROLLBACK TO SAVEPOINT kairos_direct")
            self._stage(cur, STAGE_MD, md, self._md_sql)
            self.staged_batches += 1

    @staticmethod
    def _stage(cur: cursor, stage: StageLayout, records: np.ndarray, inserts: tuple[str, ...]) -> None:
        if not len(records):
            return
        cur.copy_expert(stage.copy_sql(), io.BytesIO(stage.encode(records)))
        for sql in inserts:
            cur.execute(sql)

    def tick(self, now: float) -> None:
        """Hourly: create tomorrow's partitions before rows need them, expire days past retention."""
        if self._conn is None or now < self._next_maintain:
            return
        self._next_maintain = now + self._maintain_every
        try:
            migrate(self._conn, self.schema, self._storage_mode, self._native, retention=self._retention)
        except (psycopg2.Error, PersistError) as exc:
            self.close()
            raise SinkUnavailable(f"PostgreSQL maintenance failed: {_one_line(exc)}") from exc

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()
            except psycopg2.Error:
                log.debug("closing a broken PostgreSQL connection", exc_info=True)


def _one_line(exc: BaseException) -> str:
    text = (getattr(exc, "pgerror", None) or str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__
