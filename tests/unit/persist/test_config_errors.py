"""A malformed DSN, Redis URL or schema name is a boot error naming the key, before any connection."""

from __future__ import annotations

import pytest

from kairos.errors import EXIT_BOOT_ERROR, ConfigError
from kairos.persist.pg import PgSink
from kairos.persist.redis_state import RedisSink


@pytest.mark.parametrize(("build", "key"), [
    (lambda: PgSink("garbage", "kairos"), "persister.dsn"),
    (lambda: PgSink("postgresql://postgres@127.0.0.1/test", "Bad-Schema"), "persister.schema"),
    (lambda: RedisSink("http://127.0.0.1:6379", "kairos", {}), "persister.redis_url"),
])
def test_bad_settings_fail_at_construction(build: object, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        build()
    assert info.value.key == key and info.value.exit_code == EXIT_BOOT_ERROR
