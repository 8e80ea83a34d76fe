"""OKX v5 public market data: bbo-tbt (or tickers), trades, books with seqId/prevSeqId continuity.

Wire facts used here (OKX v5 docs; EXCHANGE-PROTOCOLS.md B2-B4):
- subscribe ``{"op": "subscribe", "args": [{"channel", "instId"}, ...]}`` (<= 64 KB per frame);
  acks ``{"event": "subscribe"}``, errors ``{"event": "error", "code"}``; ``64008`` = reconnect soon.
- keepalive: text ``ping`` after N < 30 s without a message, answered by text ``pong`` (not JSON).
- books: ``action`` snapshot/update; a snapshot has ``prevSeqId = -1``; continuity is
  ``prevSeqId == previous seqId`` (mapped to first = prevSeqId + 1, last = seqId), which also
  accepts keep-alive updates (``seqId == prevSeqId``, empty sides) and legal resets
  (``seqId < prevSeqId``). ``checksum`` is deprecated (always 0 since 2026-06-23) and ignored.
  Messages without seqId (archived 2022 format) are passed on as unsequenced.
- trades ``side`` is the taker side; ``tickers``/``bbo-tbt`` give the best bid/ask.
- REST ``GET /api/v5/market/books?instId=&sz=`` returns the book with its ``seqId`` for seeding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Final

import numpy as np
import orjson

from kairos.errors import ProtocolError
from kairos.feeds.base import (
    RECORD,
    UNSEQUENCED,
    BookMsg,
    Channel,
    FeedAdapter,
    FeedCaps,
    Reconnect,
    Snapshot,
    SnapshotRequest,
)
from kairos.records import Kind, Side, Venue

_VENUE: Final = int(Venue.OKX)
_BBO: Final = int(Kind.BBO)
_TRADE: Final = int(Kind.TRADE)
_SIDES: Final = {"buy": int(Side.BUY), "sell": int(Side.SELL)}
_MS: Final = 1_000_000
_MAX_FRAME: Final = 60_000  # subscribe args must stay under 64 KB per frame
RECONNECT_CODES: Final = frozenset({"64008"})

Route = Callable[[list[dict[str, Any]], np.ndarray, int, int, int, dict[str, Any], list[BookMsg]], int]


class OkxFeed(FeedAdapter):
    venue: ClassVar[Venue] = Venue.OKX
    caps: ClassVar[FeedCaps] = FeedCaps(
        ping_text=b"ping", pong_text=b"pong", max_subscriptions=4096,
        max_control_per_s=3.0, max_ping_interval_s=29.0, snapshot_depth=400,
    )
    channel_names: ClassVar[dict[Channel, str]] = {
        Channel.BBO: "bbo-tbt", Channel.TRADES: "trades", Channel.DEPTH: "books",
    }

    def __init__(self, symbols: dict[str, int], channels: tuple[str, ...]) -> None:
        super().__init__(symbols, channels)
        handlers: dict[str, Route] = {"bbo-tbt": self._bbo_tbt, "tickers": self._ticker, "trades": self._trades,
                                      "books": self._books}
        self._routes: dict[str, dict[str, tuple[Route, int]]] = {
            channel: {s: (handler, i) for s, i in self.symbols.items()} for channel, handler in handlers.items()
        }

    def stream_url(self, ws_url: str) -> str:
        self.check_subscriptions()
        return ws_url

    def subscribe_messages(self) -> list[bytes]:
        args = [{"channel": self.channel_names[c], "instId": s} for s in self.symbols for c in self.channels]
        frames: list[bytes] = []
        batch: list[dict[str, str]] = []
        for arg in args:
            batch.append(arg)
            if len(orjson.dumps(batch)) > _MAX_FRAME:
                frames.append(_subscribe(batch[:-1], len(frames)))
                batch = [arg]
        if batch:
            frames.append(_subscribe(batch, len(frames)))
        return frames

    def parse(self, raw: bytes, out: np.ndarray, at: int, recv_ns: int, books: list[BookMsg]) -> int:
        msg = self.loads(raw)
        data = msg.get("data")
        if data is None:
            return _event(msg)
        arg = msg["arg"]
        handler, instrument = self._routes[arg["channel"]][arg["instId"]]
        return handler(data, out, at, recv_ns, instrument, msg, books)

    @staticmethod
    def _bbo_tbt(data: list[dict[str, Any]], out: np.ndarray, at: int, recv_ns: int, inst: int,
                 msg: dict[str, Any], books: list[BookMsg]) -> int:
        d = data[0]
        bid = d["bids"][0] if d["bids"] else ("0", "0")
        ask = d["asks"][0] if d["asks"] else ("0", "0")
        RECORD.pack_into(out, at << 6, int(d["ts"]) * _MS, recv_ns, d.get("seqId", 0), float(bid[0]), float(bid[1]),
                         float(ask[0]), float(ask[1]), inst, _VENUE, _BBO, 0)
        return 1

    @staticmethod
    def _ticker(data: list[dict[str, Any]], out: np.ndarray, at: int, recv_ns: int, inst: int,
                msg: dict[str, Any], books: list[BookMsg]) -> int:
        d = data[0]
        RECORD.pack_into(out, at << 6, int(d["ts"]) * _MS, recv_ns, 0, float(d["bidPx"] or 0), float(d["bidSz"] or 0),
                         float(d["askPx"] or 0), float(d["askSz"] or 0), inst, _VENUE, _BBO, 0)
        return 1

    @staticmethod
    def _trades(data: list[dict[str, Any]], out: np.ndarray, at: int, recv_ns: int, inst: int,
                msg: dict[str, Any], books: list[BookMsg]) -> int:
        pack = RECORD.pack_into
        for n, d in enumerate(data):
            pack(out, (at + n) << 6, int(d["ts"]) * _MS, recv_ns, int(d["tradeId"]), float(d["px"]), float(d["sz"]),
                 0.0, 0.0, inst, _VENUE, _TRADE, _SIDES[d["side"]])
        return len(data)

    @staticmethod
    def _books(data: list[dict[str, Any]], out: np.ndarray, at: int, recv_ns: int, inst: int,
               msg: dict[str, Any], books: list[BookMsg]) -> int:
        d = data[0]
        snapshot = msg["action"] == "snapshot"
        if "seqId" in d:
            first, last = (0 if snapshot else d["prevSeqId"] + 1), d["seqId"]
        else:
            first = last = UNSEQUENCED
        books.append(BookMsg(inst, first, last, int(d["ts"]) * _MS, d["bids"], d["asks"], snapshot))
        return 0

    def snapshot_request(self, rest_url: str, symbol: str) -> SnapshotRequest:
        params = {"instId": symbol, "sz": str(self.caps.snapshot_depth)}
        return SnapshotRequest(f"{rest_url.rstrip('/')}/api/v5/market/books", params)

    def parse_snapshot(self, body: bytes) -> Snapshot:
        msg = orjson.loads(body)
        if msg.get("code") != "0" or not msg.get("data"):
            raise ProtocolError(f"books snapshot error: {body[:200]!r}")
        d = msg["data"][0]
        return Snapshot(int(d["seqId"]), int(d["ts"]) * _MS, d["bids"], d["asks"])


def _subscribe(args: list[dict[str, str]], index: int) -> bytes:
    return orjson.dumps({"id": f"sub{index}", "op": "subscribe", "args": args})


def _event(msg: dict[str, Any]) -> int:
    """Acks are fine; 64008 asks for a new connection; errors and anything else are unexpected."""
    event = msg.get("event")
    if event in ("subscribe", "unsubscribe"):
        return 0
    code = str(msg.get("code", ""))
    if code in RECONNECT_CODES:
        raise Reconnect(f"okx {code}: {msg.get('msg')}")
    raise ProtocolError(f"okx {event or 'message'} {code}: {msg.get('msg') or str(msg)[:200]}")
