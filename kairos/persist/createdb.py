"""Create the persister's database when it is missing (``persister.create_database``, on for `make run`).

A development engine gets its own database (config/dev.yaml: ``kairos_dev``) instead of writing into
the server's ``postgres``; creating it at connect, not in the Makefile, keeps `make run` working when
PostgreSQL is down at start (the persister spools and creates it once the server answers).
"""

from __future__ import annotations

import logging

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import make_dsn, parse_dsn

log = logging.getLogger(__name__)
MAINTENANCE_DB = "postgres"


def database_name(dsn: str) -> str:
    return parse_dsn(dsn).get("dbname", "")


def is_missing_database(exc: psycopg2.Error, dsn: str) -> bool:
    """A connect error saying the DSN's database does not exist (libpq gives no SQLSTATE at connect)."""
    name = database_name(dsn)
    return bool(name) and f'database "{name}" does not exist' in str(exc)


def create_database(dsn: str, connect_timeout_s: int) -> None:
    """CREATE DATABASE for the DSN's database, through the maintenance database on the same server."""
    name = database_name(dsn)
    admin = psycopg2.connect(make_dsn(dsn, dbname=MAINTENANCE_DB), connect_timeout=connect_timeout_s,
                             application_name="kairos-persister/create-database")
    try:
        admin.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        with admin.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        log.warning("created PostgreSQL database %s (it did not exist; persister.create_database)", name)
    except psycopg2.errors.DuplicateDatabase:
        log.info("PostgreSQL database %s was created meanwhile", name)
    finally:
        admin.close()
