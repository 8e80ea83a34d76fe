"""BookSync rules, message by message: splice, continuity, keep-alives, resets, resync scope, retries."""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future

import numpy as np
import orjson
import pytest

from kairos.config import FeedConfig
from kairos.errors import BookSyncError
from kairos.feeds.base import BookMsg
from kairos.feeds.binance import BinanceFeed
from kairos.feeds.okx import OkxFeed
from kairos.feeds.stats import FeedStats
from kairos.feeds.sync import MAX_BUFFER, BookSync, State
from kairos.logs import ErrorTally
from kairos.records import MARKET_DATA, BookStatus, Kind
from kairos.status import StatusBoard
from tests.fixtures import fixture, fixture_bytes

CFG = FeedConfig(depth_levels=3, ws_reconnect_delay_ms=1, ws_max_reconnect_delay_ms=2, snapshot_retries=2,
                 max_jump_bps=10_000.0)  # synthetic books move far per message; jumps: test_validation.py


class Snapshots:
    """The REST round trip, answered by the test: each request is a future the test completes."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], Future[bytes]]] = []

    def fetch(self, url: str, params: dict[str, str]) -> Future[bytes]:
        future: Future[bytes] = Future()
        self.requests.append((params, future))
        return future

    def answer(self, body: dict[str, object]) -> dict[str, str]:
        params, future = self.requests.pop(0)
        future.set_result(orjson.dumps(body))
        return params


class Harness:
    def __init__(self, feed, book_bbo: bool = False) -> None:
        self.snapshots = Snapshots()
        self.sync = BookSync(feed, "http://venue", CFG, self.snapshots, ErrorTally(logging.getLogger("t")), book_bbo)
        self.out = np.zeros(4096, MARKET_DATA)
        self.rows: list[np.ndarray] = []
        self.sync.start()

    def feed(self, msg: BookMsg) -> np.ndarray:
        n = self.sync.on_book(msg, self.out, 0, 1)
        return self._keep(n)

    def poll(self) -> np.ndarray:
        return self._keep(self.sync.poll(self.out, 0, len(self.out), 1))

    def _keep(self, n: int) -> np.ndarray:
        rows = self.out[:n].copy()
        self.rows.append(rows)
        return rows

    def statuses(self, instrument: int) -> list[int]:
        recs = np.concatenate(self.rows)
        return [int(r["flags"]) for r in recs if r["kind"] == Kind.STATUS and r["instrument"] == instrument]


def _bn(first: int, last: int, bids: list | None = None, instrument: int = 1) -> BookMsg:
    return BookMsg(instrument, first, last, 5_000_000, bids if bids is not None else [[f"{last % 50 + 1}.5", "1"]],
                   [["99", "1"]], False)


def _depth(last: int, bids: list | None = None) -> dict[str, object]:
    return {"lastUpdateId": last, "bids": bids or [["1", "2"]], "asks": [["99", "3"]]}


def _binance() -> Harness:
    return Harness(BinanceFeed({"AAAUSDT": 1, "BBBUSDT": 2}, ("depth",)))


def test_binance_documented_splice_then_every_message_must_continue() -> None:
    h = _binance()
    h.feed(_bn(100, 102))
    h.poll()
    assert h.snapshots.requests[0][0] == {"symbol": "AAAUSDT", "limit": "1000"}  # asked once an event is buffered
    h.feed(_bn(103, 105))
    h.snapshots.answer(_depth(104))
    rows = h.poll()
    track = h.sync.tracks[1]
    assert track.state == State.LIVE and track.last == 105  # 100-102 dropped (u <= 104), 103-105 bridged
    assert rows[0]["kind"] == Kind.STATUS and rows[0]["flags"] == BookStatus.SYNCED
    assert len(rows) == 1 + CFG.depth_levels
    h.feed(_bn(106, 107))
    assert track.last == 107
    rows = h.feed(_bn(107, 108))  # U must be exactly the previous u + 1 on every message
    assert track.state == State.AWAIT and list(rows["flags"]) == [BookStatus.RESYNCING]
    assert h.sync.counts["gaps"] == 1 and h.statuses(1) == [BookStatus.SYNCED, BookStatus.RESYNCING]


def test_snapshot_older_than_the_buffer_is_fetched_again() -> None:
    h = _binance()
    h.feed(_bn(200, 201))
    h.poll()
    h.snapshots.answer(_depth(150))  # lastUpdateId + 1 < first U: too old
    h.poll()
    assert h.sync.tracks[1].state == State.AWAIT and h.sync.counts["snapshot_failures"] == 1
    deadline = time.monotonic() + 5
    while not h.snapshots.requests and time.monotonic() < deadline:
        h.poll()
    h.snapshots.answer(_depth(200))
    h.poll()
    assert h.sync.tracks[1].state == State.LIVE and h.sync.tracks[1].last == 201


def test_snapshot_newer_than_the_buffer_waits_for_the_bridging_event() -> None:
    h = _binance()
    h.feed(_bn(100, 102))
    h.poll()
    h.snapshots.answer(_depth(110))
    h.poll()
    track = h.sync.tracks[1]
    assert track.state == State.LIVE and track.last == 110
    assert len(h.feed(_bn(105, 108))) == 0 and h.sync.counts["stale_dropped"] == 1
    h.feed(_bn(109, 112))  # U <= lastUpdateId + 1 <= u
    h.feed(_bn(113, 113))
    assert track.last == 113 and h.sync.counts["gaps"] == 0
    h.feed(_bn(115, 116))
    assert track.state == State.AWAIT and h.sync.counts["gaps"] == 1


def test_a_gap_resyncs_only_its_own_book() -> None:
    h = _binance()
    for instrument in (1, 2):
        h.feed(_bn(10, 11, instrument=instrument))
    h.poll()
    h.snapshots.answer(_depth(10))
    h.snapshots.answer(_depth(10))
    h.poll()
    h.feed(_bn(13, 14, instrument=1))
    h.feed(_bn(12, 12, instrument=2))
    assert h.sync.tracks[1].state == State.AWAIT and h.sync.tracks[2].state == State.LIVE
    assert h.statuses(2) == [BookStatus.SYNCED] and h.statuses(1) == [BookStatus.SYNCED, BookStatus.RESYNCING]
    h.poll()
    assert [p["symbol"] for p, _ in h.snapshots.requests] == ["AAAUSDT"]  # the resync fetches that book only
    assert (h.sync.counts["resyncs"], h.sync.tracks[1].resyncs, h.sync.tracks[2].resyncs) == (1, 1, 0)


def test_resyncs_reach_the_board_per_book(board: StatusBoard) -> None:
    stats, h = FeedStats(board.claim("feed.binance")), _binance()
    assert stats.resync_counters(h.sync) == {}  # no counter is claimed before a book resyncs
    h.feed(_bn(10, 11))
    h.poll()
    h.snapshots.answer(_depth(10))
    h.poll()
    for first in (13, 30):  # two gaps in book 1
        h.feed(_bn(first, first))
        h.poll()
        h.snapshots.answer(_depth(first))
        h.poll()
    assert stats.resync_counters(h.sync) == {"resyncs.AAAUSDT": 2}
    assert board.snapshot()[0].counters["resyncs.AAAUSDT"] == 0  # claimed; maybe_flush sets the value


def test_retries_are_bounded() -> None:
    h = _binance()
    h.feed(_bn(10, 11))
    with pytest.raises(BookSyncError):
        for _ in range(10_000):
            h.poll()
            if h.snapshots.requests:
                h.snapshots.answer({"code": -1003, "msg": "Too many requests"})
    assert h.sync.counts["snapshot_failures"] == CFG.snapshot_retries + 1


def test_bad_level_in_an_update_resyncs_and_publishes_nothing_wrong() -> None:
    h = Harness(BinanceFeed({"AAAUSDT": 1}, ("depth",)), book_bbo=True)
    h.feed(_bn(10, 11))
    h.poll()
    h.snapshots.answer(_depth(10))
    h.poll()
    rows = h.feed(_bn(12, 12, bids=[["2", "1"], ["oops", "1"]]))
    assert list(rows["kind"]) == [Kind.STATUS] and rows[0]["flags"] == BookStatus.RESYNCING
    assert not h.sync.tracks[1].book.bids


def test_book_bbo_is_published_on_top_change_when_no_bbo_channel() -> None:
    h = Harness(BinanceFeed({"AAAUSDT": 1}, ("depth",)), book_bbo=True)
    h.feed(_bn(10, 11, bids=[["1", "2"]]))
    h.poll()
    h.snapshots.answer(_depth(10))
    rows = h.poll()
    assert [int(k) for k in rows["kind"]] == [Kind.STATUS] + [Kind.DEPTH] * 3 + [Kind.BBO]
    rows = h.feed(_bn(12, 12, bids=[["1", "5"]]))
    assert rows[-1]["kind"] == Kind.BBO and (rows[-1]["price"], rows[-1]["qty"]) == (1.0, 5.0)


def test_disconnect_invalidates_books_that_were_not_idle() -> None:
    h = _binance()
    h.feed(_bn(10, 11))
    n = h.sync.stop(h.out, 0, 1)
    assert n == 2 and set(h.out[:2]["flags"]) == {BookStatus.DISCONNECTED}
    assert all(t.state == State.IDLE and not t.buffer for t in h.sync.tracks.values())
    assert h.sync.stop(h.out, 0, 1) == 0


def test_buffer_is_bounded() -> None:
    h = _binance()
    for i in range(MAX_BUFFER + 5):
        h.feed(_bn(i * 2 + 1, i * 2 + 2))
    assert len(h.sync.tracks[1].buffer) == MAX_BUFFER


def _okx(prev: int, seq: int, bids: list | None = None, snapshot: bool = False) -> BookMsg:
    return BookMsg(1, 0 if snapshot else prev + 1, seq, 7_000_000, [["10", "1"]] if bids is None else bids,
                   [] if bids == [] else [["11", "1"]], snapshot)


def test_okx_keepalive_and_reset_continue_the_chain() -> None:
    h = Harness(OkxFeed({"BTC-USDT": 1}, ("depth",)))
    h.feed(_okx(-1, 100, snapshot=True))
    track = h.sync.tracks[1]
    assert track.state == State.LIVE and track.last == 100 and not h.snapshots.requests
    h.feed(_okx(100, 103))
    assert len(h.feed(_okx(103, 103, bids=[]))) == 0 and track.last == 103  # keep-alive: seqId == prevSeqId
    h.feed(_okx(103, 50))  # maintenance reset: seqId < prevSeqId is legal
    h.feed(_okx(50, 52))
    assert track.state == State.LIVE and track.last == 52 and h.sync.counts["gaps"] == 0
    h.feed(_okx(51, 53))
    assert track.state == State.AWAIT and h.sync.counts["gaps"] == 1


def test_okx_rest_seed_is_spliced_by_seq_id() -> None:
    h = Harness(OkxFeed({"BTC-USDT": 1}, ("depth",)))
    for prev, seq in ((90, 95), (95, 99), (99, 104)):
        h.feed(_okx(prev, seq))
    h.poll()
    level = {"asks": [["11", "1", "0", "1"]], "bids": [["10", "1", "0", "2"]], "ts": "1", "seqId": 97}
    params = h.snapshots.answer({"code": "0", "data": [level]})
    assert params == {"instId": "BTC-USDT", "sz": "400"}
    h.poll()
    assert h.sync.tracks[1].state == State.LIVE and h.sync.tracks[1].last == 104


def _wire(h: Harness, feed, raw: bytes) -> None:
    """One frame as the agent handles it: parse, then every book message into the sync."""
    books: list[BookMsg] = []
    feed.parse(raw, h.out, 0, 1, books)
    for msg in books:
        h.feed(msg)


def test_binance_wire_frames_splice_into_the_book_the_ticker_reports() -> None:
    feed = BinanceFeed({"ETHUSDT": 1}, ("bbo", "depth"))
    h = Harness(feed)
    _wire(h, feed, fixture_bytes("binance/depthUpdate.json"))  # U 7300411840 <= snapshot + 1 <= u 7300411851
    h.poll()
    h.snapshots.answer(fixture("binance/depth_snapshot.json"))
    h.poll()
    track = h.sync.tracks[1]
    assert track.state == State.LIVE and track.last == 7300411851 and h.statuses(1) == [BookStatus.SYNCED]
    ticker = fixture("binance/bookTicker.json")["data"]
    assert ticker["u"] == track.last
    assert track.book.top() == (float(ticker["b"]), float(ticker["B"]), float(ticker["a"]), float(ticker["A"]))


def _okx_frame(name: str, **changes: object) -> bytes:
    message = fixture(name)
    message["data"][0].update(changes)
    return orjson.dumps(message)


def test_okx_wire_frames_chain_by_seq_id_and_a_broken_chain_resyncs() -> None:
    feed = OkxFeed({"ETH-USDT": 1}, ("depth",))
    h = Harness(feed)
    _wire(h, feed, fixture_bytes("okx/books_snapshot.json"))  # prevSeqId -1, seqId 1710052100
    _wire(h, feed, fixture_bytes("okx/books_update.json"))  # prevSeqId 1710052100 -> seqId 1710052131
    track = h.sync.tracks[1]
    assert track.state == State.LIVE and track.last == 1710052131
    assert track.book.top() == (2417.4, 0.9, 2417.44, 0.6)  # 2417.41 deleted by size "0"
    _wire(h, feed, _okx_frame("okx/books_update.json", prevSeqId=1710052131, seqId=1710052131, asks=[], bids=[]))
    _wire(h, feed, _okx_frame("okx/books_update.json", prevSeqId=1710052131, seqId=12))  # reset: seqId < prevSeqId
    assert track.state == State.LIVE and track.last == 12 and h.sync.counts["gaps"] == 0
    _wire(h, feed, _okx_frame("okx/books_update.json", prevSeqId=13, seqId=20))
    assert track.state == State.AWAIT and h.sync.counts["gaps"] == 1
    assert h.statuses(1) == [BookStatus.SYNCED, BookStatus.RESYNCING]
