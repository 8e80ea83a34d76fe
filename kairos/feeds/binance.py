"""Binance Spot public market data: combined streams, bookTicker / trade / aggTrade / diff depth.

Wire facts used here (binance-spot-api-docs, web-socket-streams.md):
- combined stream ``/stream?streams=a/b/c`` wraps every payload as ``{"stream": name, "data": raw}``;
  stream names are lowercase; at most 1024 streams per connection; 5 incoming control frames/s.
- bookTicker has no event time: its records carry ``ts_exchange_ns = 0``; ``u`` is the book update id.
- trade/aggTrade ``m`` = buyer is maker, so ``m: true`` means the aggressor SOLD.
- depthUpdate ``U``/``u`` are the first/last update ids; sizes are absolute, ``"0"`` deletes.
- ``{"e": "serverShutdown"}`` (stream ``!serverShutdown``) precedes a shutdown: reconnect at once;
  so does the 24 h cut of every connection, however it arrives (close frame or reset).
- REST ``GET /api/v3/depth?symbol=&limit=`` returns ``lastUpdateId`` + bids/asks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Final

import numpy as np
import orjson

from kairos.errors import ProtocolError
from kairos.feeds.base import RECORD, BookMsg, Channel, FeedAdapter, FeedCaps, Reconnect, Snapshot, SnapshotRequest
from kairos.records import Kind, Side, Venue

_VENUE: Final = int(Venue.BINANCE)
_BBO: Final = int(Kind.BBO)
_TRADE: Final = int(Kind.TRADE)
_BUY: Final = int(Side.BUY)
_SELL: Final = int(Side.SELL)
_MS: Final = 1_000_000

Route = Callable[[dict[str, Any], np.ndarray, int, int, int, list[BookMsg]], int]


class BinanceFeed(FeedAdapter):
    venue: ClassVar[Venue] = Venue.BINANCE
    caps: ClassVar[FeedCaps] = FeedCaps(
        ping_text=None, pong_text=None, max_subscriptions=1024,
        max_control_per_s=5.0, max_ping_interval_s=0.0, snapshot_depth=1000, session_limit_s=86_400.0,
    )
    channel_names: ClassVar[dict[Channel, str]] = {
        Channel.BBO: "bookTicker", Channel.TRADES: "trade", Channel.DEPTH: "depth@100ms",
    }

    def __init__(self, symbols: dict[str, int], channels: tuple[str, ...]) -> None:
        super().__init__(symbols, channels)
        handlers: dict[Channel, Route] = {
            Channel.BBO: self._bbo, Channel.TRADES: self._trade, Channel.DEPTH: self._depth,
        }
        self._routes: dict[str, tuple[Route, int]] = {}
        for symbol, instrument in self.symbols.items():
            for channel in self.channels:
                self._routes[self._stream(symbol, channel)] = (handlers[channel], instrument)
        if Channel.TRADES in self.channels:  # aggTrade decodes the same way when a deployment prefers it
            for symbol, instrument in self.symbols.items():
                self._routes[f"{symbol.lower()}@aggTrade"] = (self._trade, instrument)

    def _stream(self, symbol: str, channel: Channel) -> str:
        return f"{symbol.lower()}@{self.channel_names[channel]}"

    def stream_url(self, ws_url: str) -> str:
        self.check_subscriptions()
        names = [self._stream(s, c) for s in self.symbols for c in self.channels]
        return f"{ws_url.rstrip('/')}?streams={'/'.join(names)}"

    def subscribe_messages(self) -> list[bytes]:
        return []

    def parse(self, raw: bytes, out: np.ndarray, at: int, recv_ns: int, books: list[BookMsg]) -> int:
        msg = self.loads(raw)
        route = self._routes.get(msg.get("stream"))
        if route is None:
            return _control(msg)
        handler, instrument = route
        return handler(msg["data"], out, at, recv_ns, instrument, books)

    @staticmethod
    def _bbo(d: dict[str, Any], out: np.ndarray, at: int, recv_ns: int, inst: int, books: list[BookMsg]) -> int:
        RECORD.pack_into(out, at << 6, 0, recv_ns, d["u"], float(d["b"]), float(d["B"]), float(d["a"]),
                         float(d["A"]), inst, _VENUE, _BBO, 0)
        return 1

    @staticmethod
    def _trade(d: dict[str, Any], out: np.ndarray, at: int, recv_ns: int, inst: int, books: list[BookMsg]) -> int:
        seq = d["t"] if "t" in d else d["a"]
        RECORD.pack_into(out, at << 6, int(d["T"]) * _MS, recv_ns, seq, float(d["p"]), float(d["q"]), 0.0, 0.0,
                         inst, _VENUE, _TRADE, _SELL if d["m"] else _BUY)
        return 1

    @staticmethod
    def _depth(d: dict[str, Any], out: np.ndarray, at: int, recv_ns: int, inst: int, books: list[BookMsg]) -> int:
        books.append(BookMsg(inst, d["U"], d["u"], int(d["E"]) * _MS, d["b"], d["a"], False))
        return 0

    def snapshot_request(self, rest_url: str, symbol: str) -> SnapshotRequest:
        params = {"symbol": symbol, "limit": str(self.caps.snapshot_depth)}
        return SnapshotRequest(f"{rest_url.rstrip('/')}/api/v3/depth", params)

    def parse_snapshot(self, body: bytes) -> Snapshot:
        msg = orjson.loads(body)
        if "lastUpdateId" not in msg:
            raise ProtocolError(f"depth snapshot error: {body[:200]!r}")
        return Snapshot(msg["lastUpdateId"], 0, msg["bids"], msg["asks"])


def _control(msg: dict[str, Any]) -> int:
    """Subscription acks are fine; serverShutdown asks for a new connection; anything else is unexpected."""
    if "result" in msg and "id" in msg:
        return 0
    data = msg.get("data", msg)
    if data.get("e") == "serverShutdown":
        raise Reconnect("serverShutdown")
    if "code" in data:
        raise ProtocolError(f"venue error {data.get('code')}: {data.get('msg')}")
    raise ProtocolError(f"unexpected stream {msg.get('stream')!r}")
