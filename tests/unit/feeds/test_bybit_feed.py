"""Bybit v5 spot feed: parsers on our venue fixtures, the orderbook.50 rules (u chain, snapshot resets,
u == 1, resubscribe instead of REST after a gap) and hostile input that must publish nothing wrong."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from kairos.errors import BookSyncError, ProtocolError
from kairos.feeds.base import BookMsg
from kairos.feeds.bybit import BybitFeed
from kairos.feeds.sync import State
from kairos.records import MARKET_DATA, BookStatus, Kind, Side, Venue
from tests.fixtures import fixture, fixture_bytes
from tests.unit.feeds.test_sync import CFG, Harness, _wire

SYMBOLS = {"BTCUSDT": 1, "ETHUSDT": 2}


def _parse(feed: BybitFeed, raw: bytes) -> tuple[np.ndarray, list[BookMsg]]:
    out, books = np.zeros(16, MARKET_DATA), []
    n = feed.parse(raw, out, 0, 7, books)
    return out[:n], books


def test_subscribe_frames_carry_at_most_ten_topics() -> None:
    symbols = {f"S{i}USDT": i for i in range(1, 5)}
    frames = [orjson.loads(f) for f in BybitFeed(symbols, ("bbo", "trades", "depth")).subscribe_messages()]
    assert [len(f["args"]) for f in frames] == [10, 2] and {f["op"] for f in frames} == {"subscribe"}
    assert frames[0]["args"][:3] == ["orderbook.1.S1USDT", "publicTrade.S1USDT", "orderbook.50.S1USDT"]
    assert BybitFeed.caps.ping_text == b'{"op":"ping"}' and BybitFeed.caps.stream_snapshots


def test_orderbook1_is_the_bbo() -> None:
    rows, books = _parse(BybitFeed(SYMBOLS, ("bbo",)), fixture_bytes("bybit/orderbook1.json"))
    r = rows[0]
    assert books == [] and (r["kind"], r["venue"], r["instrument"], r["venue_seq"]) == (Kind.BBO, Venue.BYBIT, 1,
                                                                                         4417720)
    assert (r["price"], r["qty"], r["price2"], r["qty2"]) == (91250.4, 0.352, 91250.5, 1.204)
    assert r["ts_exchange_ns"] == 1764851400123 * 1_000_000 and r["ts_recv_ns"] == 7


def test_public_trades_one_row_each_with_the_taker_side() -> None:
    rows, _ = _parse(BybitFeed(SYMBOLS, ("trades",)), fixture_bytes("bybit/publicTrade.json"))
    assert [(int(r["venue_seq"]), r["price"], r["qty"], int(r["flags"])) for r in rows] == [
        (2290000000912345678, 91250.5, 0.004, Side.BUY), (2290000000912345679, 91250.4, 0.12, Side.SELL)]
    assert set(rows["kind"]) == {Kind.TRADE}


def test_book_messages_snapshot_delta_and_restart() -> None:
    feed = BybitFeed(SYMBOLS, ("depth",))
    _, (snap,) = _parse(feed, fixture_bytes("bybit/orderbook50_snapshot.json"))
    _, (delta,) = _parse(feed, fixture_bytes("bybit/orderbook50_delta.json"))
    assert (snap.instrument, snap.first, snap.last, snap.snapshot) == (2, 0, 902100, True)
    assert (delta.first, delta.last, delta.snapshot) == (902101, 902101, False)
    restarted = fixture("bybit/orderbook50_delta.json")
    restarted["data"]["u"] = 1  # the service restarted: this "delta" is the whole book
    assert _parse(feed, orjson.dumps(restarted))[1][0].snapshot


@pytest.mark.parametrize("name", ["bybit/subscribe_response.json", "bybit/pong.json"])
def test_acks_and_pongs_write_nothing(name: str) -> None:
    rows, books = _parse(BybitFeed(SYMBOLS, ("depth",)), fixture_bytes(name))
    assert len(rows) == 0 and books == []


def test_a_failed_subscribe_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="Invalid topic"):
        _parse(BybitFeed(SYMBOLS, ("depth",)), fixture_bytes("bybit/subscribe_error.json"))


def _book(u: int, kind: str = "delta", bid: str = "3105.5", symbol: str = "ETHUSDT") -> bytes:
    msg = fixture("bybit/orderbook50_delta.json")
    msg["topic"], msg["type"] = f"orderbook.50.{symbol}", kind
    msg["data"].update(u=u, b=[[bid, "1"]], a=[["3106", "1"]])
    return orjson.dumps(msg)


def _bybit() -> tuple[BybitFeed, Harness]:
    feed = BybitFeed(SYMBOLS, ("depth",))
    return feed, Harness(feed)


def test_wire_frames_chain_by_u_and_a_snapshot_replaces_the_book() -> None:
    feed, h = _bybit()
    _wire(h, feed, fixture_bytes("bybit/orderbook50_snapshot.json"))
    _wire(h, feed, fixture_bytes("bybit/orderbook50_delta.json"))
    track = h.sync.tracks[2]
    assert track.state == State.LIVE and track.last == 902101
    assert track.book.top() == (3105.5, 0.8, 3105.52, 0.25)  # 3105.51 deleted by size "0"
    _wire(h, feed, _book(500, "snapshot", bid="3000"))  # a snapshot resets, whatever its u
    assert track.state == State.LIVE and track.last == 500 and track.book.top()[0] == 3000.0
    _wire(h, feed, _book(1, bid="2999"))  # u == 1: the service restarted, a new book
    _wire(h, feed, _book(2))
    assert track.last == 2 and h.sync.counts["gaps"] == 0 and h.statuses(2) == [BookStatus.SYNCED] * 3
    assert h.snapshots.requests == [] and h.sync.counts["rest_requests"] == 0


def test_a_gap_resubscribes_that_book_and_never_asks_rest() -> None:
    feed, h = _bybit()
    _wire(h, feed, _book(10, "snapshot"))
    _wire(h, feed, _book(10, "snapshot", symbol="BTCUSDT"))
    _wire(h, feed, _book(12))  # 11 is missing
    track = h.sync.tracks[2]
    assert track.state == State.AWAIT and h.statuses(2) == [BookStatus.SYNCED, BookStatus.RESYNCING]
    h.poll()
    assert [orjson.loads(f) for f in h.sync.outbox] == [
        {"req_id": "unsre-ETHUSDT", "op": "unsubscribe", "args": ["orderbook.50.ETHUSDT"]},
        {"req_id": "subre-ETHUSDT", "op": "subscribe", "args": ["orderbook.50.ETHUSDT"]}]
    assert h.snapshots.requests == [] and h.sync.counts["resubscribes"] == 1
    h.poll()
    assert h.sync.counts["resubscribes"] == 1  # waits for the answer before asking again
    _wire(h, feed, _book(13))  # still arriving before the unsubscribe took effect: buffered
    _wire(h, feed, _book(20, "snapshot"))  # the resubscription's answer
    _wire(h, feed, _book(21))
    assert track.state == State.LIVE and track.last == 21 and track.retries == 0
    assert h.sync.tracks[1].state == State.LIVE and h.statuses(1) == [BookStatus.SYNCED]


def test_resubscriptions_are_bounded() -> None:
    feed, h = _bybit()
    _wire(h, feed, _book(10, "snapshot"))
    _wire(h, feed, _book(12))
    track = h.sync.tracks[2]
    with pytest.raises(BookSyncError, match="resubscriptions"):
        for _ in range(CFG.snapshot_retries + 2):
            track.next_try_ns = 0  # the wait for each answer is over: no snapshot came
            h.poll()
    assert h.sync.counts["resubscribes"] == CFG.snapshot_retries


@pytest.mark.parametrize("raw", [
    b'{"topic":"orderbook.50.ETHUSDT","ts":1,"type":"delta","data":{"b":[["x","1"]],"a":[],"u":11}}',
    b'{"topic":"orderbook.50.ETHUSDT","ts":1,"type":"delta","data":{"b":[["-1","1"]],"a":[],"u":11}}',
    b'{"topic":"orderbook.50.ETHUSDT","ts":1,"type":"delta","data":{"b":"lots","a":[],"u":11}}',
    b'{"topic":"orderbook.50.ETHUSDT","ts":1,"type":"delta","data":{"b":[],"a":[],"u":99999999999999999999}}',
    b'{"topic":"orderbook.50.ETHUSDT","ts":1,"type":"delta","data":{"b":[["3200","1"]],"a":[],"u":11}}',
])
def test_hostile_book_messages_resync_and_publish_nothing_wrong(raw: bytes) -> None:
    feed, h = _bybit()
    _wire(h, feed, _book(10, "snapshot"))
    _wire(h, feed, raw)
    track = h.sync.tracks[2]
    assert track.state == State.AWAIT and h.statuses(2) == [BookStatus.SYNCED, BookStatus.RESYNCING]
    published = np.concatenate(h.rows)
    assert not [r for r in published if r["kind"] == Kind.DEPTH and r["price2"] and r["price"] >= r["price2"]]


@pytest.mark.parametrize("raw", [
    b'not json', b'{"topic":"orderbook.50.XRPUSDT","ts":1,"type":"delta","data":{"b":[],"a":[],"u":2}}',
    b'{"topic":"orderbook.50.ETHUSDT","ts":1,"type":"partial","data":{"b":[],"a":[],"u":2}}',
    b'{"topic":"publicTrade.BTCUSDT","ts":1,"data":[{"i":"1","T":1,"p":"1","v":"1","S":"Up"}]}',
    b'{"topic":"orderbook.1.BTCUSDT","ts":1,"data":{"b":[],"a":[]}}', b'{"op":"auth","success":true}', b"[]",
])
def test_malformed_frames_raise_what_the_agent_counts_and_skips(raw: bytes) -> None:
    from kairos.feeds.agent import SKIPPED

    with pytest.raises(SKIPPED):
        _parse(BybitFeed(SYMBOLS, ("bbo", "trades", "depth")), raw)
