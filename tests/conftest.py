"""Shared fixtures: unique shm prefixes with guaranteed cleanup, and the machine's real services."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kairos.status import StatusBoard

SHM_DIR = Path("/dev/shm")
PG_DSN = os.environ.get("KAIROS_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("KAIROS_TEST_REDIS", "redis://127.0.0.1:6379/15")


def _leftovers(prefix: str) -> list[Path]:
    return [p for p in SHM_DIR.iterdir() if p.name.startswith((prefix, f"sem.{prefix}"))]


@pytest.fixture
def shm_prefix() -> Iterator[str]:
    """A prefix no other test (or concurrent run) uses; every segment under it is removed afterwards."""
    prefix = f"kairos-t{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield prefix
    for path in _leftovers(prefix):
        path.unlink(missing_ok=True)


@pytest.fixture
def board(shm_prefix: str) -> Iterator[StatusBoard]:
    """A fresh status board under the test's prefix, closed and unlinked afterwards."""
    created = StatusBoard.create(shm_prefix)
    try:
        yield created
    finally:
        created.close()
        StatusBoard.unlink(shm_prefix)


def _service_unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable: {exc}"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: a missing service is a failure)")
    pytest.skip(message)


@pytest.fixture
def pg_dsn() -> str:
    import psycopg2

    try:
        psycopg2.connect(PG_DSN, connect_timeout=3).close()
    except psycopg2.Error as exc:
        _service_unavailable("PostgreSQL", exc)
    return PG_DSN


@pytest.fixture
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=3).ping()
    except redis.RedisError as exc:
        _service_unavailable("Redis", exc)
    return REDIS_URL
