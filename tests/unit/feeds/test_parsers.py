"""Every venue parser against our own frames in each venue's dialect (tests/fixtures), value by value."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from kairos.errors import ProtocolError
from kairos.feeds import FEEDS
from kairos.feeds.base import BAD_INPUT, UNSEQUENCED, BookMsg, Reconnect
from kairos.feeds.binance import BinanceFeed
from kairos.feeds.okx import OkxFeed
from kairos.records import MARKET_DATA, Kind, Side, Venue
from tests.fixtures import fixture_bytes

CHANNELS = ("bbo", "trades", "depth")
MS = 1_000_000


def _parse(feed, raw: bytes) -> tuple[np.ndarray, list[BookMsg]]:
    out, books = np.zeros(64, MARKET_DATA), []
    n = feed.parse(raw, out, 0, 123, books)
    return out[:n], books


def _binance() -> BinanceFeed:
    return BinanceFeed({"ETHUSDT": 7, "SOLBTC": 8}, CHANNELS)


def _okx() -> OkxFeed:
    return OkxFeed({"ETH-USDT": 1, "SOL-USDT-SWAP": 2}, CHANNELS)


def test_registry_names_every_venue() -> None:
    assert set(FEEDS) == {"binance", "okx", "bybit"}
    assert {cls.venue for cls in FEEDS.values()} == {Venue.BINANCE, Venue.OKX, Venue.BYBIT}


def test_binance_book_ticker() -> None:
    recs, books = _parse(_binance(), fixture_bytes("binance/bookTicker.json"))
    assert not books and len(recs) == 1
    r = recs[0]
    assert (r["kind"], r["venue"], r["instrument"], r["venue_seq"]) == (Kind.BBO, Venue.BINANCE, 7, 7300411851)
    assert (r["price"], r["qty"], r["price2"], r["qty2"]) == (2417.36, 12.4083, 2417.37, 0.612)
    assert (r["ts_exchange_ns"], r["ts_recv_ns"], r["flags"]) == (0, 123, 0)  # bookTicker carries no event time


def test_binance_depth_update_is_a_book_message() -> None:
    recs, books = _parse(_binance(), fixture_bytes("binance/depthUpdate.json"))
    assert len(recs) == 0
    assert books == [BookMsg(7, 7300411840, 7300411851, 1764851200450 * MS,
                             [["2417.36000000", "12.40830000"], ["2416.90000000", "0.00000000"]],
                             [["2417.38000000", "0.00000000"], ["2417.37000000", "0.61200000"]], False)]


def test_binance_agg_trade_and_trade() -> None:
    recs, _ = _parse(_binance(), fixture_bytes("binance/aggTrade.json"))
    r = recs[0]  # "m": false -> the buyer took liquidity
    assert (r["kind"], r["instrument"], r["venue_seq"], r["price"], r["qty"]) == (Kind.TRADE, 7, 905512317, 2417.37,
                                                                                   0.25)
    assert (r["flags"], r["ts_exchange_ns"], r["ts_recv_ns"]) == (Side.BUY, 1764851200509 * MS, 123)  # T, not E
    recs, _ = _parse(_binance(), fixture_bytes("binance/trade.json"))
    r = recs[0]  # "m": true -> the buyer was the maker -> the aggressor sold
    assert (r["instrument"], r["venue_seq"], r["price"], r["qty"], r["flags"]) == (8, 48810277, 0.0015123, 3.5,
                                                                                    Side.SELL)
    assert r["ts_exchange_ns"] == 1764851201001 * MS


def test_binance_control_frames() -> None:
    feed = _binance()
    assert _parse(feed, fixture_bytes("binance/subscribe_response.json"))[0].size == 0
    with pytest.raises(Reconnect):
        _parse(feed, fixture_bytes("binance/serverShutdown_combined.json"))
    with pytest.raises(Reconnect):
        _parse(feed, fixture_bytes("binance/serverShutdown_raw.json"))
    with pytest.raises(ProtocolError):
        _parse(feed, b'{"stream":"ethusdt@kline_1m","data":{"e":"kline"}}')
    with pytest.raises(ProtocolError, match="-1121"):
        _parse(feed, fixture_bytes("binance/error_-1121.json"))


def test_binance_snapshots() -> None:
    snap = _binance().parse_snapshot(fixture_bytes("binance/depth_snapshot.json"))
    assert (snap.last, snap.ts_exchange_ns, len(snap.bids), len(snap.asks)) == (7300411845, 0, 4, 4)
    assert (snap.bids[0], snap.asks[-1]) == (["2417.35000000", "3.10000000"], ["2420.00000000", "11.00000000"])
    with pytest.raises(ProtocolError):
        _binance().parse_snapshot(fixture_bytes("binance/error_-1121.json"))


def test_binance_url_subscribes_every_stream() -> None:
    url = BinanceFeed({"BTCUSDT": 1}, CHANNELS).stream_url("wss://stream.binance.com:9443/stream")
    assert url == "wss://stream.binance.com:9443/stream?streams=btcusdt@bookTicker/btcusdt@trade/btcusdt@depth@100ms"


def test_okx_tickers() -> None:
    recs, _ = _parse(_okx(), fixture_bytes("okx/tickers.json"))
    r = recs[0]
    assert (r["kind"], r["venue"], r["instrument"], r["venue_seq"]) == (Kind.BBO, Venue.OKX, 1, 0)
    assert (r["price"], r["qty"], r["price2"], r["qty2"]) == (2417.4, 0.25, 2417.41, 3.8012)
    assert (r["ts_exchange_ns"], r["ts_recv_ns"]) == (1764851200733 * MS, 123)


def test_okx_trades_one_record_per_taker_order() -> None:
    recs, _ = _parse(_okx(), fixture_bytes("okx/trades.json"))
    assert len(recs) == 2 and set(recs["kind"]) == {Kind.TRADE} and set(recs["instrument"]) == {1}
    assert [(int(r["venue_seq"]), float(r["price"]), float(r["qty"]), int(r["flags"]), int(r["ts_exchange_ns"]))
            for r in recs] == [(602113579, 2417.41, 0.12, Side.BUY, 1764851200801 * MS),
                               (602113580, 2417.4, 0.5, Side.SELL, 1764851200802 * MS)]  # side = the taker's


def test_okx_bbo_tbt() -> None:
    recs, _ = _parse(_okx(), fixture_bytes("okx/bbo-tbt.json"))
    r = recs[0]
    assert (r["kind"], r["instrument"], r["venue_seq"], r["ts_exchange_ns"]) == (Kind.BBO, 2, 55120031,
                                                                                 1764851200815 * MS)
    assert (r["price"], r["qty"], r["price2"], r["qty2"]) == (187.22, 96.0, 187.23, 412.0)


def test_okx_books_sequence_fields() -> None:
    _, books = _parse(_okx(), fixture_bytes("okx/books_snapshot.json"))
    assert books[0][:4] == (1, 0, 1710052100, 1764851200700 * MS) and books[0].snapshot
    assert books[0].bids[0] == ["2417.4", "0.25", "0", "2"] and books[0].asks[-1] == ["2418", "25", "0", "11"]
    _, books = _parse(_okx(), fixture_bytes("okx/books_update.json"))
    assert books[0][:3] == (1, 1710052101, 1710052131) and not books[0].snapshot  # prevSeqId + 1 .. seqId
    assert books[0].asks == [["2417.41", "0", "0", "0"], ["2417.44", "0.6", "0", "1"]]
    _, books = _parse(_okx(), fixture_bytes("okx/books_update_unsequenced.json"))
    assert books[0][1:3] == (UNSEQUENCED, UNSEQUENCED)  # archived format: no seqId yet


def test_okx_events() -> None:
    feed = _okx()
    assert _parse(feed, fixture_bytes("okx/subscribe_response.json"))[0].size == 0
    with pytest.raises(ProtocolError, match="60012"):
        _parse(feed, fixture_bytes("okx/subscribe_error.json"))
    with pytest.raises(Reconnect):
        _parse(feed, fixture_bytes("okx/notice_64008.json"))


def test_okx_rest_snapshot_and_subscribe_frames() -> None:
    snap = _okx().parse_snapshot(fixture_bytes("okx/rest_books.json"))
    assert (snap.last, snap.ts_exchange_ns) == (1710052090, 1764851200650 * MS)
    assert snap.bids == [["2417.4", "0.25", "0", "2"], ["2417.33", "4", "0", "3"]]
    assert snap.asks == [["2417.41", "3.8012", "0", "7"], ["2417.45", "0.2", "0", "1"]]
    with pytest.raises(ProtocolError, match="51001"):
        _okx().parse_snapshot(fixture_bytes("okx/rest_books_error.json"))
    frames = [orjson.loads(f) for f in _okx().subscribe_messages()]
    assert [(a["channel"], a["instId"]) for f in frames for a in f["args"]] == [
        (c, i) for i in ("ETH-USDT", "SOL-USDT-SWAP") for c in ("bbo-tbt", "trades", "books")]


def test_okx_subscribe_frames_stay_under_64kb() -> None:
    feed = OkxFeed({f"COIN{i:04d}-USDT": i + 1 for i in range(1200)}, CHANNELS)
    frames = feed.subscribe_messages()
    assert len(frames) > 1 and all(len(f) < 64 * 1024 for f in frames)
    assert sum(len(orjson.loads(f)["args"]) for f in frames) == 3600


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b"null", b'{"stream":"ethusdt@bookTicker"}',
                                 b'{"stream":"ethusdt@bookTicker","data":{"u":1,"b":"x","B":"1","a":"1","A":"1"}}',
                                 b'{"stream":"ethusdt@bookTicker","data":{"u":-1,"b":"1","B":"1","a":"1","A":"1"}}'])
def test_binance_bad_input_raises_a_counted_kind(raw: bytes) -> None:
    with pytest.raises((ProtocolError, *BAD_INPUT)):
        _parse(_binance(), raw)


@pytest.mark.parametrize("raw", [b"pong", b'{"arg":{"channel":"books","instId":"NOPE"},"data":[{}]}',
                                 b'{"arg":{"channel":"trades","instId":"ETH-USDT"},"data":[{"px":"1"}]}',
                                 b'{"arg":{"channel":"trades","instId":"ETH-USDT"},"data":[{"px":"1","sz":"1",'
                                 b'"side":"up","ts":"1","tradeId":"1"}]}', b'{"event":"error","code":"60012"}'])
def test_okx_bad_input_raises_a_counted_kind(raw: bytes) -> None:
    with pytest.raises((ProtocolError, *BAD_INPUT)):
        _parse(_okx(), raw)
