"""Redis hot state: latest top of book, open orders, positions and process status (keys: docs/PERSISTENCE.md).

One pipelined MULTI/EXEC per batch, coalesced so each key is written once (latest record wins).
Positions add up fills; a high-water mark (event_seq, ts_event_ns) stored in the same transaction
makes a replayed fill count once. Any Redis error means `SinkUnavailable`: the worker retries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import orjson
import redis

from kairos.errors import SinkUnavailable
from kairos.persist.batch import Batch
from kairos.records import BookStatus, ExecKind, Kind, OrderState, ProcState, Side, Venue

log = logging.getLogger(__name__)

TERMINAL = frozenset({OrderState.FILLED, OrderState.CANCELED, OrderState.REJECTED, OrderState.EXPIRED})
StatusSource = Callable[[], list[dict[str, Any]]]


def _venue(v: int) -> str:
    return Venue(v).name.lower() if v in Venue._value2member_map_ else str(v)


class RedisSink:
    """Writes batches under ``prefix``; publishes the status board every ``status_every_s``."""

    name = "redis"

    def __init__(self, url: str, prefix: str, symbols: Mapping[int, str], status: StatusSource | None = None,
                 status_every_s: float = 1.0, timeout_s: float = 2.0) -> None:
        self._url, self.prefix, self._symbols = url, prefix, symbols
        self._status, self._status_every = status, status_every_s
        self._timeout = timeout_s
        self._next_status = 0.0
        self._r: redis.Redis | None = None
        self._hwm = (-1, -1)

    def _symbol(self, instrument: int) -> str:
        return self._symbols.get(instrument) or str(instrument)

    def connect(self) -> None:
        self.close()
        client = redis.Redis.from_url(self._url, socket_timeout=self._timeout,
                                      socket_connect_timeout=self._timeout, health_check_interval=0)
        try:
            seq, ts = client.hmget(f"{self.prefix}:positions:hwm", "event_seq", "ts_event_ns")
        except redis.RedisError as exc:
            client.close()
            raise SinkUnavailable(f"Redis unreachable: {exc}") from exc
        self._hwm = (int(seq), int(ts)) if seq is not None and ts is not None else (-1, -1)
        self._r = client

    def write(self, batch: Batch) -> None:
        if self._r is None:
            raise SinkUnavailable("Redis not connected")
        pipe = self._r.pipeline(transaction=True)
        self._books(pipe, batch.market_data())
        events = batch.exec_events()
        self._orders(pipe, events)
        hwm = self._positions(pipe, events)
        self._execute(pipe)
        self._hwm = hwm

    def _books(self, pipe: redis.client.Pipeline, md: np.ndarray) -> None:
        """Per venue+instrument, the last BBO (full quote) or STATUS (book_status only) wins."""
        sel = md[(md["kind"] == Kind.BBO) | (md["kind"] == Kind.STATUS)]
        if not len(sel):
            return
        key = (sel["venue"].astype(np.uint64) << np.uint64(32)) | sel["instrument"].astype(np.uint64)
        _, first_in_reversed = np.unique(key[::-1], return_index=True)
        for rec in sel[len(sel) - 1 - first_in_reversed]:
            name = f"{self.prefix}:bbo:{_venue(int(rec['venue']))}:{self._symbol(int(rec['instrument']))}"
            if rec["kind"] == Kind.STATUS:
                pipe.hset(name, "book_status", _book_status(int(rec["flags"])))
                continue
            pipe.hset(name, mapping={
                "bid_px": float(rec["price"]), "bid_qty": float(rec["qty"]), "ask_px": float(rec["price2"]),
                "ask_qty": float(rec["qty2"]), "ts_exchange_ns": int(rec["ts_exchange_ns"]),
                "ts_recv_ns": int(rec["ts_recv_ns"]), "venue_seq": int(rec["venue_seq"]), "book_status": "SYNCED",
            })

    def _orders(self, pipe: redis.client.Pipeline, events: np.ndarray) -> None:
        latest: dict[tuple[str, str], bytes | None] = {}
        for ev in events:
            cid = _cid(ev["client_order_id"])
            if not cid or ev["kind"] == ExecKind.STATE:
                continue
            state = int(ev["state"])
            latest[(_venue(int(ev["venue"])), cid)] = None if state in TERMINAL else self._order_json(ev, cid)
        for (venue, cid), value in latest.items():
            name = f"{self.prefix}:orders:open:{venue}"
            if value is None:
                pipe.hdel(name, cid)
            else:
                pipe.hset(name, cid, value)

    def _order_json(self, ev: np.void, cid: str) -> bytes:
        state, side = int(ev["state"]), int(ev["side"])
        return orjson.dumps({
            "client_order_id": cid, "instrument": self._symbol(int(ev["instrument"])),
            "side": Side(side).name if side in Side._value2member_map_ else side,
            "state": OrderState(state).name if state in OrderState._value2member_map_ else state,
            "price": float(ev["price"]), "order_qty": float(ev["order_qty"]), "cum_qty": float(ev["cum_qty"]),
            "venue_order_id": int(ev["venue_order_id"]), "strategy": int(ev["strategy"]),
            "ts_event_ns": int(ev["ts_event_ns"]), "event_seq": int(ev["event_seq"]),
        })

    def _positions(self, pipe: redis.client.Pipeline, events: np.ndarray) -> tuple[int, int]:
        """Fills newer than the high-water mark move positions; replays (not newer) are skipped."""
        hwm_seq, hwm_ts = self._hwm
        deltas: dict[tuple[str, str], float] = {}
        for ev in events[events["kind"] == ExecKind.FILL]:
            seq, ts = int(ev["event_seq"]), int(ev["ts_event_ns"])
            if seq <= hwm_seq and ts <= hwm_ts:
                continue
            signed = float(ev["qty"]) if ev["side"] == Side.BUY else -float(ev["qty"])
            key = (_venue(int(ev["venue"])), self._symbol(int(ev["instrument"])))
            deltas[key] = deltas.get(key, 0.0) + signed
            hwm_seq, hwm_ts = seq, ts
        for (venue, symbol), delta in deltas.items():
            pipe.hincrbyfloat(f"{self.prefix}:positions:{venue}", symbol, delta)
        if deltas:
            pipe.hset(f"{self.prefix}:positions:hwm", mapping={"event_seq": hwm_seq, "ts_event_ns": hwm_ts})
        return hwm_seq, hwm_ts

    def tick(self, now: float) -> None:
        """Publish the status board snapshot (not spooled: only the latest matters)."""
        if self._r is None or self._status is None or now < self._next_status:
            return
        self._next_status = now + self._status_every
        rows = {row["role"]: orjson.dumps(_status_row(row)) for row in self._status()}
        if not rows:
            return
        pipe = self._r.pipeline(transaction=True)
        pipe.delete(f"{self.prefix}:status")
        pipe.hset(f"{self.prefix}:status", mapping=rows)
        pipe.set(f"{self.prefix}:status:updated_ns", time.time_ns())
        self._execute(pipe)

    def _execute(self, pipe: redis.client.Pipeline) -> None:
        try:
            pipe.execute()
        except redis.RedisError as exc:
            self.close()
            raise SinkUnavailable(f"Redis write failed: {exc}") from exc

    def close(self) -> None:
        if self._r is not None:
            client, self._r = self._r, None
            client.close()


def _cid(raw: bytes) -> str:
    return raw.decode("ascii", "replace").replace("\x00", "?")


def _book_status(value: int) -> str:
    return BookStatus(value).name if value in BookStatus._value2member_map_ else str(value)


def _status_row(row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    state = out.get("state")
    if isinstance(state, int) and state in ProcState._value2member_map_:
        out["state_name"] = ProcState(state).name
    return out
