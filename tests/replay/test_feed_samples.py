"""Every venue parser against the recorded and documented frames in exchange-samples, value by value."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from kairos.errors import ProtocolError
from kairos.feeds.base import UNSEQUENCED, BookMsg, Reconnect
from kairos.feeds.binance import BinanceFeed
from kairos.feeds.book import L2Book
from kairos.feeds.okx import OkxFeed
from kairos.records import MARKET_DATA, Kind, Side, Venue
from tests.samples import require_samples, sample, sample_bytes

require_samples()

CHANNELS = ("bbo", "trades", "depth")


def _raw(name: str) -> bytes:
    """A sample file as compact wire bytes (pretty-printed doc samples are re-serialised)."""
    return orjson.dumps(sample(name))


def _combined(name: str, stream: str) -> bytes:
    return orjson.dumps({"stream": stream, "data": sample(name)})


def _parse(feed, raw: bytes) -> tuple[np.ndarray, list[BookMsg]]:
    out, books = np.zeros(64, MARKET_DATA), []
    n = feed.parse(raw, out, 0, 123, books)
    return out[:n], books


def _binance() -> BinanceFeed:
    return BinanceFeed({"NKNUSDT": 7, "BNBBTC": 8}, CHANNELS)


def _okx() -> OkxFeed:
    return OkxFeed({"BTC-USDT": 1, "BCH-USDT-SWAP": 2}, CHANNELS)


def test_binance_book_ticker_real() -> None:
    recs, books = _parse(_binance(), sample_bytes("binance_bookTicker_real_combined.json").strip())
    assert not books and len(recs) == 1
    r = recs[0]
    assert (r["kind"], r["venue"], r["instrument"], r["venue_seq"]) == (Kind.BBO, Venue.BINANCE, 7, 499869768)
    assert (r["price"], r["qty"], r["price2"], r["qty2"]) == (0.3521, 672.0, 0.3526, 3199.0)
    assert (r["ts_exchange_ns"], r["ts_recv_ns"]) == (0, 123)  # bookTicker carries no event time


def test_binance_depth_update_real() -> None:
    recs, books = _parse(_binance(), sample_bytes("binance_depthUpdate_real_combined.json").strip())
    assert len(recs) == 0
    assert books == [BookMsg(7, 499869750, 499869752, 1633998512068 * 1_000_000,
                             [["0.35130000", "6195.00000000"], ["0.34750000", "5548.00000000"],
                              ["0.34640000", "6222.00000000"]], [], False)]


def test_binance_agg_trade_real_and_trade_doc() -> None:
    recs, _ = _parse(_binance(), sample_bytes("binance_aggTrade_real_combined.json").strip())
    r = recs[0]
    assert (r["kind"], r["venue_seq"], r["price"], r["qty"]) == (Kind.TRADE, 15683430, 0.3528, 58.0)
    assert r["flags"] == Side.BUY
    assert r["ts_exchange_ns"] == 1633998523963 * 1_000_000
    recs, _ = _parse(_binance(), _combined("binance_trade.json", "bnbbtc@trade"))
    r = recs[0]  # "m": true -> the buyer was the maker -> the aggressor sold
    assert (r["instrument"], r["venue_seq"], r["price"], r["qty"], r["flags"]) == (8, 12345, 0.001, 100.0, Side.SELL)


def test_binance_control_frames() -> None:
    feed = _binance()
    assert _parse(feed, _raw("binance_ws_subscribe_response.json"))[0].size == 0
    with pytest.raises(Reconnect):
        _parse(feed, _raw("binance_serverShutdown_combined.json"))
    with pytest.raises(Reconnect):
        _parse(feed, _raw("binance_serverShutdown_raw.json"))


def test_binance_snapshots() -> None:
    snap = _binance().parse_snapshot(sample_bytes("binance_depth_snapshot_real_NKNUSDT.json"))
    assert (snap.last, len(snap.bids), len(snap.asks)) == (499869752, 609, 1000)
    assert snap.bids[0] == ["0.35210000", "672.00000000"]
    assert _binance().parse_snapshot(_raw("binance_depth_snapshot.json")).last == 1027024
    with pytest.raises(ProtocolError):
        _binance().parse_snapshot(_raw("binance_error_-1121.json"))


def test_real_snapshot_loads_in_order() -> None:
    snap = sample("binance_depth_snapshot_real_NKNUSDT.json")
    book = L2Book(1, 1, 10)
    book.load(snap["bids"], snap["asks"])
    assert book.top() == (0.3521, 672.0, 0.3525, 3959.0)
    bids = [k for k, _ in book.levels(True, 1000)]
    asks = [k for k, _ in book.levels(False, 1000)]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and len(asks) == 1000
    assert not book.crossed()


def test_okx_tickers_and_trades_real() -> None:
    recs, _ = _parse(_okx(), sample_bytes("okx_tickers_real.json").strip())
    r = recs[0]
    assert (r["kind"], r["venue"], r["instrument"]) == (Kind.BBO, Venue.OKX, 1)
    assert (r["price"], r["qty"], r["price2"], r["qty2"]) == (30228.6, 0.23393, 30228.7, 1.55896972)
    assert r["ts_exchange_ns"] == 1652459224956 * 1_000_000
    recs, _ = _parse(_okx(), sample_bytes("okx_trades_real.json").strip())
    r = recs[0]
    assert (r["kind"], r["venue_seq"], r["price"], r["qty"], r["flags"]) == (Kind.TRADE, 338476307, 30236.0, 0.0002,
                                                                              Side.BUY)


def test_okx_bbo_tbt_doc() -> None:
    recs, _ = _parse(_okx(), _raw("okx_bbo-tbt.json"))
    r = recs[0]
    assert (r["instrument"], r["venue_seq"], r["price"], r["qty"], r["price2"], r["qty2"]) == (
        2, 363996337, 111.05, 57745.0, 111.06, 55154.0)


def test_okx_books_sequence_fields() -> None:
    _, books = _parse(_okx(), _raw("okx_books_snapshot.json"))
    assert books[0][:3] == (1, 0, 123456) and books[0].snapshot
    _, books = _parse(_okx(), _raw("okx_books_update.json"))
    assert books[0][:3] == (1, 123457, 123457) and not books[0].snapshot  # prevSeqId 123456 + 1 .. seqId
    _, books = _parse(_okx(), sample_bytes("okx_books_update_real.json").strip())
    assert books[0][1:3] == (UNSEQUENCED, UNSEQUENCED)  # 2022 capture: no seqId yet


def test_okx_events() -> None:
    feed = _okx()
    assert _parse(feed, _raw("okx_ws_subscribe_response.json"))[0].size == 0
    with pytest.raises(ProtocolError):
        _parse(feed, _raw("okx_ws_subscribe_error.json"))


def test_okx_rest_snapshot() -> None:
    snap = _okx().parse_snapshot(_raw("okx_rest_books.json"))
    assert snap.last == 3235851742 and snap.bids == [["41006.3", "0.30178218", "0", "2"]]
