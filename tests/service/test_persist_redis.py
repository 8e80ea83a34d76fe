"""Redis hot state against real redis-servers: content, replays, client kills and an empty restart."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import redis

from kairos.persist.batch import STREAM_FINGERPRINTS, Batch, Stream
from kairos.persist.redis_state import CLIENT_NAME, RedisSink
from kairos.persist.spool import Spool
from kairos.persist.synthetic import exec_events, market_data, net_positions
from kairos.persist.worker import SinkWorker
from kairos.records import BookStatus, ExecKind, Kind, OrderState, ProcState, Venue
from kairos.status import StatusBoard
from tests.service.persist_support import PrivateRedis
from tests.service.test_persist_worker import wait_caught_up

SYMBOLS = {1: "BTC-USDT", 2: "ETH-USDT"}
MD_FP, EV_FP = STREAM_FINGERPRINTS[Stream.MD_BINANCE], STREAM_FINGERPRINTS[Stream.EVENTS]


def expected_state(prefix: str, md: np.ndarray, events: np.ndarray) -> dict[str, dict[str, str]]:
    """Recomputed record by record (the sink does it vectorised and coalesced)."""
    out: dict[str, dict[str, str]] = {}
    for rec in md:
        symbol = SYMBOLS.get(int(rec["instrument"]), str(rec["instrument"]))
        name = f"{prefix}:bbo:{Venue(rec['venue']).name.lower()}:{symbol}"
        if rec["kind"] == Kind.BBO:
            out[name] = {"bid_px": repr(float(rec["price"])), "bid_qty": repr(float(rec["qty"])),
                         "ask_px": repr(float(rec["price2"])), "ask_qty": repr(float(rec["qty2"])),
                         "ts_exchange_ns": str(rec["ts_exchange_ns"]), "ts_recv_ns": str(rec["ts_recv_ns"]),
                         "venue_seq": str(rec["venue_seq"]), "book_status": "SYNCED"}
        elif rec["kind"] == Kind.STATUS:
            out.setdefault(name, {})["book_status"] = BookStatus(rec["flags"]).name
    open_orders: dict[str, dict[str, str]] = {}
    for ev in events:
        name = f"{prefix}:orders:open:{Venue(ev['venue']).name.lower()}"
        cid = ev["client_order_id"].decode()
        if ev["state"] in (OrderState.FILLED, OrderState.CANCELED, OrderState.REJECTED, OrderState.EXPIRED):
            open_orders.setdefault(name, {}).pop(cid, None)
        else:
            open_orders.setdefault(name, {})[cid] = OrderState(ev["state"]).name
    out.update({k: v for k, v in open_orders.items() if v})
    for (venue, inst), qty in net_positions(events).items():
        out.setdefault(f"{prefix}:positions:{Venue(venue).name.lower()}", {})[SYMBOLS[inst]] = qty
    return out


def actual_state(client: redis.Redis, prefix: str) -> dict[str, dict[str, str]]:
    out = {}
    for name in client.scan_iter(match=f"{prefix}:*", _type="hash"):
        if name.endswith((":status", ":hwm")) or ":balances:" in name:
            continue
        fields = client.hgetall(name)
        if ":orders:open:" in name:
            fields = {cid: value.split('"state":"')[1].split('"')[0] for cid, value in fields.items()}
        if ":positions:" in name:
            fields = {k: float(v) for k, v in fields.items()}
        out[name] = fields
    return out


def assert_state(client: redis.Redis, prefix: str, md: np.ndarray, events: np.ndarray) -> None:
    want, got = expected_state(prefix, md, events), actual_state(client, prefix)
    for name, fields in want.items():
        if ":positions:" in name:
            assert got[name].keys() == fields.keys()
            assert all(abs(got[name][k] - v) < 1e-9 for k, v in fields.items()), (got[name], fields)
        else:
            assert got.get(name) == fields, name
    assert got.keys() == want.keys()


def events_with_open_orders(orders: int, start: int = 0) -> np.ndarray:
    """Orders that end FILLED/CANCELED, plus every third order left open after its ACK."""
    ev = exec_events(orders, start)
    keep = np.ones(len(ev), bool)
    for k in range(0, orders, 3):
        keep[3 * k + 1 : 3 * k + 3] = False
    return ev[keep]


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)


def batch(md: np.ndarray, events: np.ndarray) -> Batch:
    return Batch(md=[md], events=[events], rows=len(md) + len(events))


def test_hot_state_content_coalesced_and_replays_change_nothing(redis_url: str, redis_prefix: str) -> None:
    sink = RedisSink(redis_url, redis_prefix, SYMBOLS)
    sink.connect()
    md, events = market_data(1000, instruments=3), events_with_open_orders(30)
    sink.write(batch(md[:600], events[:40]))
    sink.write(batch(md[600:], events[40:]))
    sink.write(batch(md[300:], events[20:]))  # replayed tail: fills must not count twice
    sink.write(batch(md[600:], events[40:]))
    c = client(redis_url)
    assert_state(c, redis_prefix, md, events)
    assert len(c.hgetall(f"{redis_prefix}:orders:open:binance")) == 10
    fills = events[events["kind"] == ExecKind.FILL]
    assert c.hgetall(f"{redis_prefix}:positions:hwm") == {
        "event_seq": str(fills["event_seq"].max()), "ts_event_ns": str(fills["ts_event_ns"].max())}
    sink.close()


def test_a_new_sink_loads_the_state_and_continues_the_positions(redis_url: str, redis_prefix: str) -> None:
    events = exec_events(20)
    first = RedisSink(redis_url, redis_prefix, SYMBOLS)
    first.connect()
    first.write(batch(market_data(0), events[:30]))
    first.close()
    second = RedisSink(redis_url, redis_prefix, SYMBOLS)
    second.connect()
    second.write(batch(market_data(0), events[15:]))  # overlap: the loaded high-water mark dedupes it
    assert_state(client(redis_url), redis_prefix, market_data(0), events)
    second.close()


def test_balances_from_gate_state_latest_wins(redis_url: str, redis_prefix: str) -> None:
    sink = RedisSink(redis_url, redis_prefix, SYMBOLS)
    sink.connect()
    sink.write(Batch(balances=[(1, 1, "USDT", 990.0, 5.0), (2, 1, "USDT", 980.0, 15.0), (2, 2, "BTC", 1.0, 0.0)],
                     rows=3))
    c = client(redis_url)
    assert c.hgetall(f"{redis_prefix}:balances:binance") == {"USDT": '{"free":980.0,"locked":15.0,"ts_ns":2}'}
    assert c.hgetall(f"{redis_prefix}:balances:okx") == {"BTC": '{"free":1.0,"locked":0.0,"ts_ns":2}'}
    sink.close()


def test_status_board_is_published(redis_url: str, redis_prefix: str, shm_prefix: str) -> None:
    board = StatusBoard.create(shm_prefix)
    try:
        slot = board.claim("feed.binance")
        slot.set_state(ProcState.RUNNING)
        slot.counter("msgs").add(42)
        slot.histogram("latency_ns").record(1000)  # the row carries its numpy buckets: must still serialise
        sink = RedisSink(redis_url, redis_prefix, SYMBOLS, status=board.snapshot)
        sink.connect()
        sink.tick(time.monotonic())
        row = client(redis_url).hget(f"{redis_prefix}:status", "feed.binance")
        assert '"state_name":"RUNNING"' in row and '"msgs":42' in row
        assert json.loads(row)["histograms"]["latency_ns"]["count"] == 1
        sink.close()
    finally:
        board.close()
        StatusBoard.unlink(shm_prefix)


def stream_through_worker(url: str, prefix: str, tmp_path: Path, outage: callable) -> tuple[RedisSink, SinkWorker]:
    """200 frames of md + events through a worker while ``outage()`` runs in another thread."""
    spool = Spool(tmp_path / "spool")
    sink = RedisSink(url, prefix, SYMBOLS, timeout_s=0.5)
    worker = SinkWorker(sink, spool, batch_rows=500, flush_s=0.02, retry_s=0.2)
    md, events = market_data(40_000, instruments=3), events_with_open_orders(600)
    done = threading.Event()

    def produce() -> None:
        for i in range(200):
            spool.append(Stream.MD_BINANCE, MD_FP, md[200 * i : 200 * (i + 1)])
            spool.append(Stream.EVENTS, EV_FP, events[len(events) * i // 200 : len(events) * (i + 1) // 200])
            time.sleep(0.01)
        done.set()

    worker.start()
    threads = [threading.Thread(target=produce), threading.Thread(target=outage, args=(done,))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    wait_caught_up(worker, spool)
    worker.stop(1.0)
    worker.join()
    spool.close()
    assert_state(client(url), prefix, md, events)
    return sink, worker


def test_client_kill_mid_stream_loses_nothing(redis_url: str, redis_prefix: str, tmp_path: Path) -> None:
    killed: list[int] = []

    def outage(done: threading.Event) -> None:
        admin = client(redis_url)
        for _ in range(50):
            if done.wait(0.3):
                return
            for info in admin.client_list():
                if info.get("name") == CLIENT_NAME:
                    killed.append(admin.client_kill_filter(_id=info["id"]))

    stream_through_worker(redis_url, redis_prefix, tmp_path, outage)
    assert sum(killed) >= 2, killed  # connections really cut (redis-py may retry them transparently)


def test_redis_restarted_empty_mid_stream_gets_the_whole_state_back(private_redis: PrivateRedis,
                                                                    tmp_path: Path) -> None:
    restarts: list[float] = []

    def outage(done: threading.Event) -> None:
        for _ in range(2):
            if done.wait(0.6):
                return
            private_redis.kill()  # kill -9: everything it held is gone (no persistence)
            time.sleep(0.5)
            private_redis.start()
            restarts.append(time.monotonic())
        private_redis.client().execute_command("CLIENT", "KILL", "TYPE", "normal")

    sink, worker = stream_through_worker(private_redis.url, "kp", tmp_path, outage)
    assert restarts and worker.failures >= 1 and sink.rewrites >= 1, (restarts, worker.failures, sink.rewrites)
