"""The 2021-10-11 Binance session: books rebuilt from diff depth + REST snapshots agree with bookTicker."""

from __future__ import annotations

import orjson

from kairos.config import FeedConfig
from kairos.feeds.binance import BinanceFeed
from kairos.feeds.sync import State
from kairos.records import BookStatus, Kind
from tests.replay.conftest import BINANCE_FILE, BINANCE_SYMBOLS, RecordedSnapshots, Replay, lines
from tests.samples import require_samples

require_samples()


def _replay() -> tuple[Replay, RecordedSnapshots, dict[tuple[str, int], tuple[float, float, float, float]], list]:
    rows = lines(BINANCE_FILE)
    snapshots = RecordedSnapshots(rows)
    replay = Replay(BinanceFeed(BINANCE_SYMBOLS, ("bbo", "trades", "depth")), snapshots, FeedConfig())
    states: dict[tuple[str, int], tuple[float, float, float, float]] = {}
    tickers = []
    for row in rows:
        if row["src"] != "ws":
            continue
        raw = str(row["raw"]).encode()
        message = orjson.loads(raw)
        if message["stream"].endswith("@bookTicker"):
            tickers.append(message["data"])
        replay.frame(raw)
        for track in replay.sync.tracks.values():
            if track.state == State.LIVE:
                states[(track.symbol, track.last)] = track.book.top()
    return replay, snapshots, states, tickers


def test_every_book_syncs_from_the_recorded_snapshots_without_gaps() -> None:
    replay, snapshots, _, _ = _replay()
    assert sorted(snapshots.asked) == sorted(BINANCE_SYMBOLS)  # one snapshot per book, no resync
    assert all(t.state == State.LIVE for t in replay.sync.tracks.values())
    assert replay.sync.counts["gaps"] == 0 and replay.sync.counts["resyncs"] == 0
    assert set(replay.tally.counts) == {"ProtocolError"}  # only the kline streams we never asked for
    records = replay.all_records
    for instrument in BINANCE_SYMBOLS.values():
        statuses = records[(records["kind"] == Kind.STATUS) & (records["instrument"] == instrument)]
        assert list(statuses["flags"]) == [BookStatus.SYNCED]


def test_rebuilt_books_match_the_recorded_book_tickers_where_comparable() -> None:
    _, _, states, tickers = _replay()
    compared = 0
    for ticker in tickers:
        state = states.get((ticker["s"], ticker["u"]))  # the book after the depth event that ended at the same u
        if state is None:
            continue
        compared += 1
        assert state == (float(ticker["b"]), float(ticker["B"]), float(ticker["a"]), float(ticker["A"])), ticker
    assert compared >= 20, compared


def test_book_ticker_and_trade_records_carry_the_recorded_values() -> None:
    replay, _, _, tickers = _replay()
    records = replay.all_records
    bbo = records[records["kind"] == Kind.BBO]
    assert len(bbo) == len(tickers)
    assert [int(s) for s in bbo["venue_seq"]] == [t["u"] for t in tickers]
    assert list(bbo["price"]) == [float(t["b"]) for t in tickers]
    trades = records[records["kind"] == Kind.TRADE]
    assert len(trades) >= 1 and (trades["ts_exchange_ns"] > 1_633_000_000_000_000_000).all()
