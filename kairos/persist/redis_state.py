"""Redis sink: one pipelined MULTI/EXEC per batch of coalesced `Changes`; process status every second.

Each transaction also reads the marker ``{prefix}:epoch``. A missing marker means this Redis holds
none of our state (first run, or it restarted without persistence): the sink then writes its whole
in-memory `HotState`, so nothing written before the restart is lost. On the first connect the
in-memory copy is loaded from Redis. Any Redis error is `SinkUnavailable`: the worker retries.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

import orjson
import redis

from kairos.errors import ConfigError, SinkUnavailable
from kairos.persist.batch import Batch
from kairos.persist.hotstate import Changes, HotState, enum_name
from kairos.records import ProcState
from kairos.status import BoardRow

log = logging.getLogger(__name__)

StatusSource = Callable[[], list[BoardRow]]
CLIENT_NAME = "kairos-persister"


class RedisSink:
    """Writes hot state under ``prefix``; publishes the status board every ``status_every_s``."""

    name = "redis"

    def __init__(self, url: str, prefix: str, symbols: Mapping[int, str], status: StatusSource | None = None,
                 status_every_s: float = 1.0, timeout_s: float = 2.0) -> None:
        try:
            redis.connection.parse_url(url)
        except ValueError as exc:
            raise ConfigError(str(exc), "persister.redis_url") from None
        self._url, self.prefix, self._timeout = url, prefix, timeout_s
        self._status, self._status_every = status, status_every_s
        self._next_status = 0.0
        self._r: redis.Redis | None = None
        self._loaded = False
        self.state = HotState(prefix, symbols)
        self.epoch_key = f"{prefix}:epoch"
        self.rewrites = 0

    def connect(self) -> None:
        self.close()
        client = redis.Redis.from_url(self._url, socket_timeout=self._timeout, decode_responses=True,
                                      socket_connect_timeout=self._timeout, client_name=CLIENT_NAME)
        try:
            client.ping()
            if not self._loaded and client.exists(self.epoch_key):
                self.state.hashes = self._load(client)
        except redis.RedisError as exc:
            client.close()
            raise SinkUnavailable(f"Redis unreachable: {exc}") from exc
        self._loaded = True
        self._r = client

    def _load(self, client: redis.Redis) -> dict[str, dict[str, str]]:
        skip = (f"{self.prefix}:status",)
        names = [k for k in client.scan_iter(match=f"{self.prefix}:*", count=1000, _type="hash") if k not in skip]
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(name)
        return dict(zip(names, pipe.execute(), strict=True))

    def write(self, batch: Batch) -> None:
        changes = self.state.changes(batch)
        if not changes:
            return
        had_state = bool(self.state.hashes)
        marker_was_there = self._transact(changes)
        self.state.apply(changes)
        if had_state and not marker_was_there:  # Redis lost our state: write all of it again
            self.rewrites += 1
            log.warning("Redis at %s held no KAIRÓS state (restarted empty?): rewriting %d hashes",
                        self._url, len(self.state.hashes))
            self._transact(Changes(sets=self.state.hashes))

    def _transact(self, changes: Changes) -> bool:
        """Apply in one MULTI/EXEC; returns whether the epoch marker was there before."""
        if self._r is None:
            raise SinkUnavailable("Redis not connected")
        pipe = self._r.pipeline(transaction=True)
        pipe.get(self.epoch_key)
        for name, fields in changes.sets.items():
            if fields:
                pipe.hset(name, mapping=fields)
        for name, keys in changes.deletes.items():
            if keys:
                pipe.hdel(name, *keys)
        pipe.setnx(self.epoch_key, uuid.uuid4().hex)
        return self._execute(pipe)[0] is not None

    def tick(self, now: float) -> None:
        """Publish the status board snapshot (not spooled: only the latest matters)."""
        if self._r is None or self._status is None or now < self._next_status:
            return
        self._next_status = now + self._status_every
        rows = {row.role: orjson.dumps(_status_row(row), option=orjson.OPT_SERIALIZE_NUMPY).decode()  # buckets
                for row in self._status()}
        if not rows:
            return
        pipe = self._r.pipeline(transaction=True)
        pipe.delete(f"{self.prefix}:status")
        pipe.hset(f"{self.prefix}:status", mapping=rows)
        pipe.set(f"{self.prefix}:status:updated_ns", time.time_ns())
        self._execute(pipe)

    def _execute(self, pipe: redis.client.Pipeline) -> list[Any]:
        try:
            return pipe.execute()
        except redis.RedisError as exc:
            self.close()
            raise SinkUnavailable(f"Redis write failed: {exc}") from exc

    def close(self) -> None:
        if self._r is not None:
            client, self._r = self._r, None
            client.close()


def _status_row(row: BoardRow) -> dict[str, Any]:
    """The row as JSON-ready fields (histograms as dicts, numpy buckets left to orjson) plus its state's name."""
    return {**asdict(row), "state_name": enum_name(ProcState, row.state)}
