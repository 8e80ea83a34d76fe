"""The 2022-05-13 OKX session: books rebuilt message by message reproduce OKX's own checksums.

Checksums were real in 2022 (CRC32 of the top 25 levels, interleaved bid:ask, signed int32). The
feed never relies on them (deprecated and fixed to 0 since 2026-06-23), but they prove that every
merge of the rebuilt book was exact. The capture predates seqId, so sequence chains are checked on
the documented snapshot/update pair and on chains derived from it.
"""

from __future__ import annotations

import zlib
from decimal import Decimal

import orjson

from kairos.config import FeedConfig
from kairos.feeds.book import SCALE, L2Book
from kairos.feeds.okx import OkxFeed
from kairos.feeds.sync import State
from kairos.records import BookStatus, Kind
from tests.replay.conftest import OKX_FILE, OKX_SYMBOLS, RecordedSnapshots, Replay, lines
from tests.samples import require_samples, sample, sample_bytes

require_samples()


def _wire(value: Decimal) -> str:
    return f"{value.normalize():f}"


def checksum(book: L2Book) -> int:
    bids = book.levels(True, 25)
    asks = book.levels(False, 25)
    parts: list[str] = []
    for i in range(25):
        for side in (bids, asks):
            if i < len(side):
                key, qty = side[i]
                parts += [_wire(Decimal(key) / SCALE), _wire(Decimal(repr(qty)))]
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def _replay() -> tuple[Replay, int]:
    replay = Replay(OkxFeed(OKX_SYMBOLS, ("bbo", "trades", "depth")), RecordedSnapshots([]), FeedConfig(depth_levels=5))
    verified = 0
    for row in lines(OKX_FILE):
        if row["dir"] != "recv":
            continue
        raw = str(row["raw"]).encode()
        replay.frame(raw)
        message = orjson.loads(raw)
        if message.get("arg", {}).get("channel") == "books" and "data" in message:
            track = replay.sync.tracks[OKX_SYMBOLS[message["arg"]["instId"]]]
            assert track.state == State.LIVE
            assert checksum(track.book) == message["data"][0]["checksum"], (message["arg"], message.get("action"))
            verified += 1
    return replay, verified


def test_every_rebuilt_book_matches_the_recorded_checksum() -> None:
    replay, verified = _replay()
    books = [r for r in lines(OKX_FILE) if r["dir"] == "recv" and '"channel":"books"' in str(r["raw"])
             and '"data"' in str(r["raw"])]
    assert verified == len(books) == 290
    assert replay.tally.total == 0 and replay.sync.counts["rest_requests"] == 0  # in-stream snapshots only
    records = replay.all_records
    for instrument in OKX_SYMBOLS.values():
        statuses = records[(records["kind"] == Kind.STATUS) & (records["instrument"] == instrument)]
        assert list(statuses["flags"]) == [BookStatus.SYNCED]
    assert (records["kind"] == Kind.BBO).sum() > 0 and (records["kind"] == Kind.TRADE).sum() > 0


def test_real_snapshot_and_update_fixtures_apply() -> None:
    replay = Replay(OkxFeed({"BTC-USDT": 1}, ("depth",)), RecordedSnapshots([]), FeedConfig())
    for name in ("okx_books_snapshot_real.json", "okx_books_update_real.json"):
        raw = sample_bytes(name).strip()
        replay.frame(raw)
        assert checksum(replay.sync.tracks[1].book) == orjson.loads(raw)["data"][0]["checksum"]


def _doc(name: str, **changes: int) -> bytes:
    message = sample(name)
    message["data"][0].update(changes)
    return orjson.dumps(message)


def test_documented_seq_chain_continues_and_a_broken_one_resyncs() -> None:
    replay = Replay(OkxFeed({"BTC-USDT": 1}, ("depth",)), RecordedSnapshots([]), FeedConfig())
    replay.frame(_doc("okx_books_snapshot.json"))  # prevSeqId -1, seqId 123456
    replay.frame(_doc("okx_books_update.json"))  # prevSeqId 123456 -> seqId 123457
    track = replay.sync.tracks[1]
    assert track.state == State.LIVE and track.last == 123457
    replay.frame(_doc("okx_books_update.json", prevSeqId=123457, seqId=123457, asks=[], bids=[]))  # keep-alive
    replay.frame(_doc("okx_books_update.json", prevSeqId=123457, seqId=3))  # reset: seqId < prevSeqId
    assert track.state == State.LIVE and track.last == 3 and replay.sync.counts["gaps"] == 0
    replay.frame(_doc("okx_books_update.json", prevSeqId=4, seqId=9))
    assert track.state == State.AWAIT and replay.sync.counts["gaps"] == 1
