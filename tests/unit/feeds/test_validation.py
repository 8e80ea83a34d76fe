"""Edge validation pieces: the pair checks, the quote guard (jump hold and confirmation), book message
shape, per-book rate-limited logging with a shutdown summary, the board counters, the frame-size check."""

from __future__ import annotations

import contextlib
import logging
import struct
from concurrent.futures import Future

import numpy as np
import orjson
import pytest
import websocket

from kairos import config, logs
from kairos.config import EndpointConfig, FeedConfig
from kairos.errors import ConfigError
from kairos.feeds.agent import FeedAgent
from kairos.feeds.base import RECORD, BookMsg
from kairos.feeds.binance import BinanceFeed
from kairos.feeds.okx import OkxFeed
from kairos.feeds.session import FrameTooLarge, _BoundedFrames
from kairos.feeds.stats import OTHER, FeedStats
from kairos.feeds.sync import BookSync
from kairos.feeds.validate import (
    BAD_BOOK_MSG,
    CROSSED,
    JUMP,
    LEVELS,
    NOT_FINITE,
    NOT_POSITIVE,
    OUT_OF_RANGE,
    QuoteGuard,
    Rejections,
    book_problem,
    level_problem,
)
from kairos.logs import ErrorTally
from kairos.records import MARKET_DATA, Kind
from kairos.status import COUNTERS, StatusBoard
from tests.unit.feeds.conftest import Collect

CFG = FeedConfig()
NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(("price", "qty", "reason"), [
    (60000.0, 1.0, None), (1e-8, 1e12, None), (CFG.max_price, 0.5, None),
    (NAN, 1.0, NOT_FINITE), (60000.0, NAN, NOT_FINITE), (INF, 1.0, NOT_FINITE), (60000.0, -INF, NOT_FINITE),
    (0.0, 1.0, NOT_POSITIVE), (-5.0, 1.0, NOT_POSITIVE), (60000.0, 0.0, NOT_POSITIVE), (1.0, -1.0, NOT_POSITIVE),
    (1e15, 1.0, OUT_OF_RANGE), (60000.0, 1e13, OUT_OF_RANGE), (1e-9, 1.0, OUT_OF_RANGE),
])
def test_level_problem(price: float, qty: float, reason: str | None) -> None:
    assert level_problem(price, qty, CFG.max_price, CFG.max_qty) == reason


class Rows:
    """Parser output rows and a guard that checks them."""

    def __init__(self, cfg: FeedConfig = CFG) -> None:
        self.tally = ErrorTally(logging.getLogger("t.validation"))
        self.rejections = Rejections(self.tally, {1: "BTCUSDT", 2: "ETHUSDT"})
        self.guard = QuoteGuard(cfg, self.rejections)
        self.out = np.zeros(16, MARKET_DATA)

    def check(self, *rows: tuple[int, int, float, float, float, float]) -> list[tuple[float, float]]:
        for i, (kind, inst, p, q, p2, q2) in enumerate(rows):
            RECORD.pack_into(self.out, i << 6, 0, 1, i, p, q, p2, q2, inst, 1, kind, 0)
        end = self.guard.rows(self.out, 0, len(rows))
        return [(float(r["price"]), float(r["price2"])) for r in self.out[:end]]


def bbo(bid: float, ask: float, inst: int = 1, qty: float = 1.0) -> tuple[int, int, float, float, float, float]:
    return (int(Kind.BBO), inst, bid, qty, ask, qty)


def trade(price: float, qty: float = 1.0) -> tuple[int, int, float, float, float, float]:
    return (int(Kind.TRADE), 1, price, qty, 0.0, 0.0)


def test_bad_rows_are_dropped_and_counted_good_ones_keep_their_order() -> None:
    rows = Rows()
    kept = rows.check(bbo(100.0, 101.0), bbo(NAN, 101.0), trade(100.5), bbo(101.0, 100.0), trade(-1.0),
                      bbo(100.0, 101.0, inst=2), bbo(100.0, 100.0))
    assert kept == [(100.0, 101.0), (100.5, 0.0), (100.0, 101.0)]
    assert rows.rejections.counts == {(1, NOT_FINITE): 1, (1, CROSSED): 2, (1, NOT_POSITIVE): 1}
    assert rows.rejections.total == 4


def test_a_jump_is_held_and_dropped_when_the_next_quote_disagrees() -> None:
    rows = Rows()
    assert rows.check(bbo(100.0, 101.0)) == [(100.0, 101.0)]
    assert rows.check(bbo(1e-8, 2e-8), bbo(100.5, 101.5)) == [(100.5, 101.5)]
    assert rows.check(bbo(1000.0, 1001.0), bbo(100.0, 101.0)) == [(100.0, 101.0)]
    assert rows.rejections.counts == {(1, JUMP): 2}
    assert rows.check(trade(1000.0)) == [(1000.0, 0.0)]  # trades are bounds-checked, not jump-checked


def test_a_real_move_is_published_once_enough_quotes_confirm_it() -> None:
    rows = Rows(FeedConfig(max_jump_bps=500.0, jump_confirm_quotes=2))
    rows.check(bbo(100.0, 101.0), bbo(100.0, 101.0, inst=2))
    assert rows.check(bbo(110.0, 111.0), bbo(110.1, 111.1)) == []  # held: the move and one agreeing quote
    assert rows.check(bbo(110.0, 111.0, inst=2)) == []  # each instrument holds its own
    assert rows.check(bbo(110.2, 111.2)) == [(110.2, 111.2)]  # the second agreeing quote confirms
    assert rows.check(bbo(110.3, 111.3)) == [(110.3, 111.3)]
    assert rows.rejections.counts == {(1, JUMP): 2, (2, JUMP): 1}


def test_a_rebuilt_book_confirms_the_move_at_once() -> None:
    rows = Rows()
    rows.check(bbo(100.0, 101.0))
    assert rows.check(bbo(120.0, 121.0)) == []
    rows.guard.rebase(1, 120.0, 121.0)
    assert rows.check(bbo(120.1, 121.1)) == [(120.1, 121.1)]


def _msg(first: object = 1, last: object = 2, ts: object = 5, bids: object = None, asks: object = None) -> BookMsg:
    return BookMsg(1, first, last, ts, [] if bids is None else bids, [] if asks is None else asks, False)  # type: ignore[arg-type]


@pytest.mark.parametrize(("msg", "reason"), [
    (_msg(), None), (_msg(first=-1, last=-1), None), (_msg(bids=[["1", "1"]] * CFG.max_levels), None),
    (_msg(first="1"), BAD_BOOK_MSG), (_msg(last=2.0), BAD_BOOK_MSG), (_msg(last=True), BAD_BOOK_MSG),
    (_msg(ts=None), BAD_BOOK_MSG), (_msg(bids={"1": "1"}), BAD_BOOK_MSG), (_msg(asks="12"), BAD_BOOK_MSG),
    (_msg(last=1 << 63), BAD_BOOK_MSG), (_msg(ts=-1), BAD_BOOK_MSG), (_msg(last=-2), BAD_BOOK_MSG),
    (_msg(asks=[["1", "1"]] * (CFG.max_levels + 1)), LEVELS),
])
def test_book_problem(msg: BookMsg, reason: str | None) -> None:
    assert book_problem(msg, CFG.max_levels) == reason


def test_tally_logs_each_book_and_summarises_what_it_suppressed(caplog: pytest.LogCaptureFixture) -> None:
    tally = ErrorTally(logging.getLogger("t.tally"), interval_s=3600)
    with caplog.at_level(logging.WARNING, logger="t.tally"):
        for _ in range(3):
            tally("book_gap", "expected 5", key="BTC-USDT")
        tally("book_gap", "expected 9", key="ETH-USDT")
        tally("malformed_json", "{")
        assert [r.getMessage().split(":")[0] for r in caplog.records] == [
            "book_gap [BTC-USDT] (total 1)", "book_gap [ETH-USDT] (total 4)", "malformed_json (total 1)"]
        caplog.clear()
        assert tally.flush() == 1
        assert [r.getMessage() for r in caplog.records] == ["book_gap [BTC-USDT]: 2 more since last report (total 4)"]
        caplog.clear()
        assert tally.flush() == 0 and caplog.records == []
    assert tally.counts == {"book_gap": 4, "malformed_json": 1} and tally.total == 5


def test_tally_next_line_for_a_key_says_how_many_were_suppressed(caplog: pytest.LogCaptureFixture,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0]
    monkeypatch.setattr(logs.time, "monotonic_ns", lambda: now[0])
    tally = ErrorTally(logging.getLogger("t.tally2"), interval_s=10.0)
    with caplog.at_level(logging.WARNING, logger="t.tally2"):
        tally("jump", "a", key="BTCUSDT")
        tally("jump", "b", key="BTCUSDT")
        now[0] = 10_000_000_000
        tally("jump", "c", key="BTCUSDT")
    assert [r.getMessage() for r in caplog.records] == ["jump [BTCUSDT] (total 1): a",
                                                        "jump [BTCUSDT] (total 3) (1 more since last report): c"]


def _ticker(symbol: str, bid: str, ask: str) -> bytes:
    return orjson.dumps({"stream": f"{symbol.lower()}@bookTicker",
                         "data": {"u": 1, "s": symbol, "b": bid, "B": "1", "a": ask, "A": "1"}})


def test_rejections_reach_the_board_per_book_and_reason_bounded_by_the_row(board: StatusBoard) -> None:
    stats = FeedStats(board.claim("feed.binance"))
    symbols = {f"S{i}USDT": i for i in range(1, 3 + COUNTERS)}
    agent = FeedAgent(BinanceFeed(symbols, ("bbo",)), EndpointConfig("http://127.0.0.1:9", "ws://127.0.0.1:9"),
                      CFG, Collect(), stats)
    try:
        for bid, ask in (("NaN", "2"), ("NaN", "2"), ("5", "4"), ("1", "2")):
            assert agent.ingest(_ticker("S1USDT", bid, ask), 0)
        assert agent.ingest(_ticker("S2USDT", "1", "inf"), 0)
        stats.maybe_flush(0, agent, force=True)
        counters = board.snapshot()[0].counters
        assert counters["rejected"] == 4 and counters[OTHER] == 0
        assert counters["rej.not_finite.S1USDT"] == 2 and counters["rej.crossed.S1USDT"] == 1
        assert counters["rej.not_finite.S2USDT"] == 1
        for i in range(3, 3 + COUNTERS):  # more books than the row has room for
            agent.ingest(_ticker(f"S{i}USDT", "-1", "2"), 0)
        stats.maybe_flush(0, agent, force=True)
        counters = board.snapshot()[0].counters
        assert len(counters) == COUNTERS and counters["rejected"] == 4 + COUNTERS and counters[OTHER] > 0
        assert sum(v for k, v in counters.items() if k.startswith("rej.")) == 4 + COUNTERS
    finally:
        agent.on_close()


def _frames(*frames: tuple[int, int, int]) -> bytes:
    """Server frames (fin, opcode, payload length), unmasked, with 64-bit lengths."""
    return b"".join(struct.pack("!BBQ", fin << 7 | opcode, 127, n) + b"x" * n for fin, opcode, n in frames)


class _Wire:
    """The bytes a server sent, read the way websocket-client's socket reader returns them."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)

    def _recv(self, n: int) -> bytes:
        if not self._data:
            raise websocket.WebSocketConnectionClosedException("end of the test stream")
        chunk, self._data = bytes(self._data[:n]), self._data[n:]
        return chunk


@pytest.mark.parametrize(("frames", "delivered"), [
    ([(1, 1, 1024)], 1),
    ([(1, 1, 1025)], 0),
    ([(0, 1, 600), (1, 9, 4), (1, 0, 424)], 3),  # fragments add up; a ping between them does not count
    ([(0, 1, 600), (1, 9, 4), (1, 0, 425)], 2),
    ([(1, 1, 1024), (1, 1, 1024)], 2),
])
def test_frame_size_is_checked_from_the_header(frames: list[tuple[int, int, int]], delivered: int) -> None:
    wire = _Wire(_frames(*frames))
    reader = _BoundedFrames(wire, 1024)  # type: ignore[arg-type]
    got = 0
    with contextlib.suppress(FrameTooLarge):
        for _ in frames:
            reader.recv_frame()
            got += 1
    assert got == delivered
    assert len(wire._data) == (0 if delivered == len(frames) else sum(n for _, _, n in frames[delivered:]))


def test_config_ranges_are_declared(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, bad in (("MAX_JUMP_BPS", "0"), ("MAX_FRAME_BYTES", "100"), ("MAX_PRICE", "100000000.0"),
                     ("MAX_LEVELS", "0"), ("MAX_QTY", "0.0")):
        with pytest.raises(ConfigError, match=f"feeds.{key.lower()}"):
            config.load(env={f"KAIROS__FEEDS__{key}": bad})
    assert config.load(env={}).feeds.max_frame_bytes == 1_048_576


def test_every_live_tally_is_summarised_at_exit(caplog: pytest.LogCaptureFixture) -> None:
    tally = ErrorTally(logging.getLogger("t.exit"), interval_s=3600)
    with caplog.at_level(logging.WARNING, logger="t.exit"):
        tally("bad_message", "x", key="ETH-USDT")
        tally("bad_message", "y", key="ETH-USDT")
        assert logs.flush_all() >= 1
    assert caplog.records[-1].getMessage() == "bad_message [ETH-USDT]: 1 more since last report (total 2)"


def test_gaps_on_two_okx_books_within_the_interval_are_both_logged(caplog: pytest.LogCaptureFixture) -> None:
    snapshots: list[Future[bytes]] = []

    class Rest:
        def fetch(self, url: str, params: dict[str, str]) -> Future[bytes]:
            snapshots.append(Future())
            return snapshots[-1]

        def close(self) -> None:
            return None

    feed = OkxFeed({"BTC-USDT": 1, "ETH-USDT": 2}, ("depth",))
    sync = BookSync(feed, "http://venue", CFG, Rest(), ErrorTally(logging.getLogger("t.gaps")), book_bbo=False)
    out = np.zeros(256, MARKET_DATA)
    sync.start()
    for inst in (1, 2):
        sync.on_book(BookMsg(inst, 0, 10, 1, [["100", "1"]], [["101", "1"]], True), out, 0, 1)  # WS snapshot
    with caplog.at_level(logging.WARNING, logger="t.gaps"):
        for inst in (1, 2):
            sync.on_book(BookMsg(inst, 15, 15, 1, [], [], False), out, 0, 1)
    assert [r.getMessage() for r in caplog.records] == ["book_gap [BTC-USDT] (total 1): expected first 11, got 15..15",
                                                        "book_gap [ETH-USDT] (total 2): expected first 11, got 15..15"]
    assert sync.counts["gaps"] == 2 and len(snapshots) == 0  # the REST snapshots are asked for on the next poll
