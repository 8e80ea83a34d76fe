"""Bybit v5 spot public market data: orderbook.1 (BBO), publicTrade, orderbook.50 chained by ``u``.

Wire facts used here (EXCHANGE-PROTOCOLS.md E):
- subscribe ``{"op": "subscribe", "args": ["orderbook.50.BTCUSDT", ...]}``, at most 10 args per
  frame on spot; acks ``{"success": true, "op": "subscribe", ...}``, failures ``success: false``.
- keepalive: ``{"op": "ping"}`` every 20 s, answered in JSON (``ret_msg: pong``), which is swallowed.
- orderbook.50: ``type`` snapshot|delta, ``data.u`` the update id (a delta continues ``u + 1``),
  ``data.seq`` a cross-depth sequence that only increases, with gaps (so not a continuity check);
  a snapshot replaces the book, and so does ``u == 1`` (the service restarted); size "0" deletes.
  The REST book's ``u`` follows the 1000-level stream, so it cannot seed this book: a book that needs
  a snapshot is resubscribed (``FeedCaps.stream_snapshots``; the answer starts with a snapshot).
- orderbook.1 sends only snapshots (repeated with the same ``u`` after 3 s without change): a BBO.
- publicTrade ``S`` is the taker side, ``i`` the trade id (numeric on spot).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Final

import numpy as np
import orjson

from kairos.errors import ProtocolError
from kairos.feeds.base import RECORD, BookMsg, Channel, FeedAdapter, FeedCaps
from kairos.records import Kind, Side, Venue

_VENUE: Final = int(Venue.BYBIT)
_BBO: Final = int(Kind.BBO)
_TRADE: Final = int(Kind.TRADE)
_SIDES: Final = {"Buy": int(Side.BUY), "Sell": int(Side.SELL)}
_MS: Final = 1_000_000
_ARGS_PER_FRAME: Final = 10  # spot: at most 10 topics per subscribe request
_NO_LEVEL: Final = ("0", "0")
_BOOK_TYPES: Final = {"snapshot": True, "delta": False}  # any other type is a bad message (KeyError)

Route = Callable[[dict[str, Any], np.ndarray, int, int, int, list[BookMsg]], int]


class BybitFeed(FeedAdapter):
    venue: ClassVar[Venue] = Venue.BYBIT
    caps: ClassVar[FeedCaps] = FeedCaps(
        ping_text=b'{"op":"ping"}', pong_text=None, max_subscriptions=200,
        max_control_per_s=5.0, max_ping_interval_s=20.5, snapshot_depth=50, stream_snapshots=True,
    )
    channel_names: ClassVar[dict[Channel, str]] = {
        Channel.BBO: "orderbook.1", Channel.TRADES: "publicTrade", Channel.DEPTH: "orderbook.50",
    }

    def __init__(self, symbols: dict[str, int], channels: tuple[str, ...]) -> None:
        super().__init__(symbols, channels)
        handlers: dict[str, Route] = {"orderbook.1": self._bbo, "publicTrade": self._trades,
                                      "orderbook.50": self._books}
        self._routes: dict[str, tuple[Route, int]] = {
            f"{channel}.{s}": (handler, i) for channel, handler in handlers.items() for s, i in self.symbols.items()
        }

    def stream_url(self, ws_url: str) -> str:
        self.check_subscriptions()
        return ws_url

    def subscribe_messages(self) -> list[bytes]:
        topics = [f"{self.channel_names[c]}.{s}" for s in self.symbols for c in self.channels]
        return [_op("subscribe", topics[i:i + _ARGS_PER_FRAME], i // _ARGS_PER_FRAME)
                for i in range(0, len(topics), _ARGS_PER_FRAME)]

    def resubscribe_messages(self, symbol: str) -> list[bytes]:
        """Unsubscribe and subscribe the symbol's book: the venue answers with a fresh snapshot."""
        topic = [f"{self.channel_names[Channel.DEPTH]}.{symbol}"]
        return [_op("unsubscribe", topic, f"re-{symbol}"), _op("subscribe", topic, f"re-{symbol}")]

    def parse(self, raw: bytes, out: np.ndarray, at: int, recv_ns: int, books: list[BookMsg]) -> int:
        msg = self.loads(raw)
        topic = msg.get("topic")
        if topic is None:
            return _control(msg)
        handler, instrument = self._routes[topic]
        return handler(msg, out, at, recv_ns, instrument, books)

    @staticmethod
    def _bbo(msg: dict[str, Any], out: np.ndarray, at: int, recv_ns: int, inst: int, books: list[BookMsg]) -> int:
        d = msg["data"]
        bid = d["b"][0] if d["b"] else _NO_LEVEL
        ask = d["a"][0] if d["a"] else _NO_LEVEL
        RECORD.pack_into(out, at << 6, int(msg["ts"]) * _MS, recv_ns, int(d["u"]), float(bid[0]), float(bid[1]),
                         float(ask[0]), float(ask[1]), inst, _VENUE, _BBO, 0)
        return 1

    @staticmethod
    def _trades(msg: dict[str, Any], out: np.ndarray, at: int, recv_ns: int, inst: int, books: list[BookMsg]) -> int:
        pack, data = RECORD.pack_into, msg["data"]
        for n, d in enumerate(data):
            pack(out, (at + n) << 6, int(d["T"]) * _MS, recv_ns, int(d["i"]), float(d["p"]), float(d["v"]),
                 0.0, 0.0, inst, _VENUE, _TRADE, _SIDES[d["S"]])
        return len(data)

    @staticmethod
    def _books(msg: dict[str, Any], out: np.ndarray, at: int, recv_ns: int, inst: int, books: list[BookMsg]) -> int:
        d = msg["data"]
        last = int(d["u"])
        snapshot = _BOOK_TYPES[msg["type"]] or last == 1
        books.append(BookMsg(inst, 0 if snapshot else last, last, int(msg["ts"]) * _MS, d["b"], d["a"], snapshot))
        return 0


def _op(op: str, args: list[str], req_id: int | str) -> bytes:
    return orjson.dumps({"req_id": f"{op[:3]}{req_id}", "op": op, "args": args})


def _control(msg: dict[str, Any]) -> int:
    """Subscribe acks and pongs are fine; a failed op or anything else is unexpected."""
    if msg.get("success") is True and msg.get("op") in ("subscribe", "unsubscribe", "ping", "pong"):
        return 0
    raise ProtocolError(f"bybit {msg.get('op') or 'message'}: {msg.get('ret_msg') or str(msg)[:200]}")
