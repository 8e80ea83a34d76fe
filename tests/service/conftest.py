"""Persister service fixtures: a throwaway PostgreSQL schema, a Redis key prefix, a private redis-server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from tests.service.persist_support import REDIS_SERVER, PrivateRedis, fresh_redis_prefix, fresh_schema


@pytest.fixture
def pg_schema(pg_dsn: str) -> Iterator[str]:
    """A schema no other test uses, dropped (with every partition) afterwards."""
    yield from fresh_schema(pg_dsn)


@pytest.fixture
def pg(pg_dsn: str) -> Iterator[psycopg2.extensions.connection]:
    conn = psycopg2.connect(pg_dsn, connect_timeout=5)
    conn.autocommit = True
    yield conn
    conn.close()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix no other test uses; every key under it is deleted afterwards."""
    yield from fresh_redis_prefix(redis_url)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if not Path(REDIS_SERVER).exists():
        message = "redis-server binary not installed"
        pytest.fail(message) if os.environ.get("CI") == "true" else pytest.skip(message)
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()
