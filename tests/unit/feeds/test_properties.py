"""Property tests (hypothesis) of each venue's parser and book, through the feed's own ingest path: for any
byte string or JSON shape, no exception escapes and nothing invalid is published."""

from __future__ import annotations

import json
import math
from concurrent.futures import Future
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kairos.config import EndpointConfig, FeedConfig
from kairos.errors import BookSyncError
from kairos.feeds import FEEDS
from kairos.feeds.agent import FeedAgent
from kairos.feeds.book import BAD_LEVEL, L2Book
from kairos.feeds.stats import FeedStats
from kairos.feeds.sync import State
from kairos.records import Kind, Venue
from tests.unit.feeds.conftest import Collect

CFG = FeedConfig(depth_levels=5)
EXAMPLES = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SYMBOLS = {Venue.BINANCE: {"BTCUSDT": 1, "ETHUSDT": 2}, Venue.OKX: {"BTC-USDT": 1, "ETH-USDT": 2},
           Venue.BYBIT: {"BTCUSDT": 1, "ETHUSDT": 2}}
GOOD_BIDS = [["100", "1"], ["99", "2"], ["98", "3"]]
GOOD_ASKS = [["101", "1"], ["102", "2"], ["103", "3"]]

numberish = st.one_of(
    st.sampled_from(["NaN", "nan", "inf", "-inf", "Infinity", "-5", "0", "0.0", "1e15", "1e-9", "0.00000001", "100",
                     "100.5", "101", "99.5", "abc", "", " 100", "1_000"]),
    st.floats().map(repr), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.none(), st.booleans(), st.lists(st.integers(), max_size=2),
)


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Seven in eight draws from ``good``, so valid data reaches the books and gets published, the rest ``bad``."""
    return st.integers(0, 7).flatmap(lambda k: bad if k == 7 else good)  # 0, the simplest draw, is good


below = st.decimals(min_value=95, max_value="100.5", places=2).map(str)  # bid prices around the good book (100)
above = st.decimals(min_value="100.5", max_value=106, places=2).map(str)  # ask prices around the good book (101)
size = st.decimals(min_value=0, max_value=5, places=3).map(str)  # "0.000" deletes a level
bid, ask = mostly(below, numberish), mostly(above, numberish)
qty = mostly(size.filter(lambda q: float(q) > 0), st.one_of(size, numberish))
ids = mostly(st.integers(0, 6),
             st.one_of(st.integers(-(2**64), 2**65), st.sampled_from(["5", "x", 5.0, None, [], True])))
junk_level = st.one_of(st.lists(numberish, max_size=5), numberish, st.dictionaries(st.text(max_size=2), numberish))
junk_side = st.one_of(numberish, st.dictionaries(st.text(max_size=2), numberish))
bids = mostly(st.lists(mostly(st.tuples(bid, mostly(size, numberish)).map(list), junk_level), max_size=6), junk_side)
asks = mostly(st.lists(mostly(st.tuples(ask, mostly(size, numberish)).map(list), junk_level), max_size=6), junk_side)
json_any = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                                  st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8)),
                        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                   max_size=4), max_leaves=12)


def _maybe_drop(d: dict[str, Any], drop: list[str]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in drop}


@st.composite
def binance_message(draw: st.DrawFn) -> Any:
    sym = draw(mostly(st.just("btcusdt"), st.sampled_from(["ethusdt", "xrpusdt"])))
    kind = draw(mostly(st.just("depth@100ms"), st.sampled_from(["bookTicker", "trade", "aggTrade", "kline_1m"])))
    data = {
        "bookTicker": {"u": draw(ids), "s": sym.upper(), "b": draw(bid), "B": draw(qty),
                       "a": draw(ask), "A": draw(qty)},
        "trade": {"e": "trade", "E": draw(ids), "t": draw(ids), "p": draw(bid), "q": draw(qty),
                  "T": draw(ids), "m": draw(json_any)},
        "aggTrade": {"e": "aggTrade", "a": draw(ids), "p": draw(bid), "q": draw(qty), "T": draw(ids),
                     "m": draw(st.booleans())},
        "depth@100ms": {"e": "depthUpdate", "E": draw(ids), "U": draw(mostly(st.just(2), ids)), "u": draw(ids),
                        "b": draw(bids), "a": draw(asks)},
        "kline_1m": draw(json_any),
    }[kind]
    if isinstance(data, dict) and data:
        data = _maybe_drop(data, draw(mostly(st.just([]), st.lists(st.sampled_from(list(data)), max_size=1))))
    wrapped = {"stream": f"{sym}@{kind}", "data": data}
    return draw(mostly(st.just(wrapped), st.sampled_from([data, {"result": None, "id": 1}])))


@st.composite
def okx_message(draw: st.DrawFn) -> Any:
    inst = draw(mostly(st.just("BTC-USDT"), st.sampled_from(["ETH-USDT", "XRP-USDT"])))
    channel = draw(mostly(st.just("books"), st.sampled_from(["bbo-tbt", "tickers", "trades", "candle1m"])))
    seq = draw(ids)
    row = {
        "bbo-tbt": {"bids": draw(bids), "asks": draw(asks), "ts": draw(ids), "seqId": seq},
        "tickers": {"bidPx": draw(bid), "bidSz": draw(qty), "askPx": draw(ask), "askSz": draw(qty),
                    "ts": draw(ids)},
        "trades": {"tradeId": draw(ids), "px": draw(bid), "sz": draw(qty),
                   "side": draw(st.sampled_from(["buy", "sell", "x"])), "ts": draw(ids)},
        "books": {"bids": draw(bids), "asks": draw(asks), "ts": draw(ids), "seqId": seq,
                  "prevSeqId": draw(mostly(st.just(1), ids)), "checksum": 0},
        "candle1m": draw(json_any),
    }[channel]
    if isinstance(row, dict) and row:
        row = _maybe_drop(row, draw(mostly(st.just([]), st.lists(st.sampled_from(list(row)), max_size=1))))
    data = draw(mostly(st.just([row]), st.sampled_from([row, [], [row, row]])))
    msg = {"arg": {"channel": channel, "instId": inst}, "data": data}
    if channel == "books":
        msg["action"] = draw(mostly(st.just("update"), st.sampled_from(["snapshot", "x"])))
    events = [{"event": "subscribe"}, {"event": "error", "code": draw(st.sampled_from(["60012", "1"])), "msg": "x"}]
    return draw(mostly(st.just(msg), st.sampled_from([*events, row])))


@st.composite
def bybit_message(draw: st.DrawFn) -> Any:
    sym = draw(mostly(st.just("BTCUSDT"), st.sampled_from(["ETHUSDT", "XRPUSDT"])))
    channel = draw(mostly(st.just("orderbook.50"), st.sampled_from(["orderbook.1", "publicTrade", "tickers"])))
    data = {
        "orderbook.50": {"s": sym, "b": draw(bids), "a": draw(asks), "u": draw(mostly(st.just(2), ids)),
                         "seq": draw(ids)},
        "orderbook.1": {"s": sym, "b": draw(mostly(st.tuples(bid, qty).map(lambda lv: [list(lv)]), bids)),
                        "a": draw(mostly(st.tuples(ask, qty).map(lambda lv: [list(lv)]), asks)), "u": draw(ids),
                        "seq": draw(ids)},
        "publicTrade": [{"i": draw(ids), "T": draw(ids), "p": draw(bid), "v": draw(qty), "s": sym,
                         "S": draw(st.sampled_from(["Buy", "Sell", "x"])), "BT": False}],
        "tickers": draw(json_any),
    }[channel]
    if isinstance(data, dict) and data:
        data = _maybe_drop(data, draw(mostly(st.just([]), st.lists(st.sampled_from(list(data)), max_size=1))))
    kind = draw(mostly(st.just("delta" if channel == "orderbook.50" else "snapshot"),
                       st.sampled_from(["snapshot", "delta", "x"])))
    msg = {"topic": f"{channel}.{sym}", "ts": draw(ids), "type": kind, "data": data}
    control = [{"success": True, "op": "subscribe", "ret_msg": ""}, {"success": True, "op": "pong"},
               {"success": False, "op": "subscribe", "ret_msg": "Invalid topic"}]
    return draw(mostly(st.just(msg), st.sampled_from([*control, data])))


class RestSnapshots:
    """REST snapshots answered at once with a good book at update id 0 (the venue side of a resync; Bybit's
    books are never asked over REST)."""

    def __init__(self, venue: Venue) -> None:
        book = {"bids": GOOD_BIDS, "asks": GOOD_ASKS}
        body = {"lastUpdateId": 0, **book} if venue == Venue.BINANCE else {
            "code": "0", "data": [{"bids": [[*lv, "0", "1"] for lv in GOOD_BIDS],
                                   "asks": [[*lv, "0", "1"] for lv in GOOD_ASKS], "ts": "1", "seqId": 0}]}
        self._body = orjson.dumps(body)

    def fetch(self, url: str, params: dict[str, str]) -> Future[bytes]:
        future: Future[bytes] = Future()
        future.set_result(self._body)
        return future

    def close(self) -> None:
        return None


def live_agent(venue: Venue) -> tuple[FeedAgent, Collect]:
    """A feed whose BTC book is LIVE at update id 1 (no socket: frames go straight to ``ingest``)."""
    adapter = FEEDS[venue.name.lower()](SYMBOLS[venue], ("bbo", "trades", "depth"))
    out = Collect()
    agent = FeedAgent(adapter, EndpointConfig("http://127.0.0.1:9", "ws://127.0.0.1:9"), CFG, out, FeedStats(None),
                      fetcher=RestSnapshots(venue))
    agent.sync.start()
    first = {Venue.BINANCE: {"stream": "btcusdt@depth@100ms", "data": {"E": 1, "U": 1, "u": 1, "b": [], "a": []}},
             Venue.OKX: {"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": "update",
                         "data": [{"bids": [], "asks": [], "ts": "1", "seqId": 1, "prevSeqId": 0}]},
             Venue.BYBIT: {"topic": "orderbook.50.BTCUSDT", "ts": 1, "type": "snapshot",  # seeded in the stream
                           "data": {"s": "BTCUSDT", "b": GOOD_BIDS, "a": GOOD_ASKS, "u": 1, "seq": 1}}}[venue]
    assert agent.ingest(orjson.dumps(first), 0)
    agent.poll_books()  # asks for the snapshot ...
    agent.poll_books()  # ... and splices it
    assert agent.sync.tracks[1].state == State.LIVE
    return agent, out


def _pair_ok(price: float, qty: float) -> bool:
    return math.isfinite(price) and math.isfinite(qty) and 1e-8 <= price <= CFG.max_price and 0 < qty <= CFG.max_qty


def assert_valid(records: np.ndarray) -> None:
    for rec in records:
        kind, p, q, p2, q2 = int(rec["kind"]), rec["price"], rec["qty"], rec["price2"], rec["qty2"]
        if kind == Kind.TRADE:
            assert _pair_ok(p, q), rec
        elif kind == Kind.BBO:
            assert _pair_ok(p, q) and _pair_ok(p2, q2) and p < p2, rec
        elif kind == Kind.DEPTH:
            assert (p, q) == (0.0, 0.0) or _pair_ok(p, q), rec
            assert (p2, q2) == (0.0, 0.0) or _pair_ok(p2, q2), rec
            if rec["flags"] == 0:
                assert _pair_ok(p, q) and _pair_ok(p2, q2) and p < p2, rec  # a published book has two sides


def run_frames(venue: Venue, frames: list[bytes]) -> None:
    agent, out = live_agent(venue)
    try:
        for frame in frames:
            try:
                assert agent.ingest(frame, 0) in (True, False)  # False: the venue asked for a new connection
                agent.poll_books()
            except BookSyncError:  # the designed exit (exit 1, restarted): only after snapshot_retries refusals
                counts = agent.sync.counts  # (Bybit: or resubscriptions that brought no snapshot)
                assert counts["snapshot_failures"] + counts["resubscribes"] >= CFG.snapshot_retries
                break
            agent.flush()
        agent.flush()
        assert_valid(out.records)
    finally:
        agent.on_close()


@pytest.mark.parametrize("venue", [Venue.BINANCE, Venue.OKX, Venue.BYBIT])
@EXAMPLES
@given(frames=st.lists(st.binary(max_size=300), max_size=5))
def test_any_bytes(venue: Venue, frames: list[bytes]) -> None:
    run_frames(venue, frames)


@EXAMPLES
@given(msgs=st.lists(st.one_of(binance_message(), json_any), min_size=1, max_size=8))
def test_any_binance_json_shape(msgs: list[Any]) -> None:
    run_frames(Venue.BINANCE, [json.dumps(m).encode() for m in msgs])


@EXAMPLES
@given(msgs=st.lists(st.one_of(okx_message(), json_any), min_size=1, max_size=8))
def test_any_okx_json_shape(msgs: list[Any]) -> None:
    run_frames(Venue.OKX, [json.dumps(m).encode() for m in msgs])


@EXAMPLES
@given(msgs=st.lists(st.one_of(bybit_message(), json_any), min_size=1, max_size=8))
def test_any_bybit_json_shape(msgs: list[Any]) -> None:
    run_frames(Venue.BYBIT, [json.dumps(m).encode() for m in msgs])


@EXAMPLES
@given(updates=st.lists(st.tuples(bids, asks), max_size=6))
def test_book_holds_only_valid_levels(updates: list[tuple[Any, Any]]) -> None:
    book = L2Book(1, 1, 5, CFG.max_price, CFG.max_qty)
    book.load(GOOD_BIDS, GOOD_ASKS)
    for bids, asks in updates:
        try:
            book.apply(bids, asks)
        except BAD_LEVEL:
            book.load(GOOD_BIDS, GOOD_ASKS)  # what a resync does
        for side in (book.bids, book.asks):
            assert all(key > 0 and 0 < qty <= CFG.max_qty for key, qty in side.items())
        assert book.bid_ranks == sorted(-k for k in book.bids) and book.ask_ranks == sorted(book.asks)
