"""What every venue feed shares: the adapter contract, quirks as typed data, and the record packer.

A venue module (binance.py, okx.py) is a `FeedAdapter`: data (URLs, channel names, `FeedCaps`) plus
pure functions that turn wire bytes into records. Everything with I/O, timing or state lives in
the shared machinery: `session.WsSession` (socket, subscribe, keepalive, watchdog, backoff),
`sync.BookSync` (snapshot splice, continuity, resync) and `agent.FeedAgent` (duty cycle,
publishing, counters). None of those has an ``if venue ==``: a difference is a `FeedCaps` field or
an adapter method.

``parse(raw, out, at, recv_ns, books) -> int`` writes BBO/TRADE records into ``out`` from row
``at`` and returns how many; order-book messages become `BookMsg` tuples appended to ``books``
(the book needs state, so the parser hands them on instead of writing them). Control messages
that ask for a new connection raise `Reconnect`; messages that are not understood raise
`ProtocolError` (or the ValueError/KeyError/TypeError/IndexError of the bad field), which the
agent counts and skips.
"""

from __future__ import annotations

import random
import struct
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Final, NamedTuple

import numpy as np
import orjson

from kairos.errors import ProtocolError
from kairos.records import MARKET_DATA, Venue

RECORD: Final = struct.Struct("<qqQddddIHBB")
"""MARKET_DATA packed field by field; ``RECORD.pack_into(out, row * 64, ...)`` is the hot-path writer."""
assert RECORD.size == MARKET_DATA.itemsize
assert [off for _, off in MARKET_DATA.fields.values()] == [0, 8, 16, 24, 32, 40, 48, 56, 60, 62, 63]

BAD_INPUT: Final = (ValueError, KeyError, TypeError, IndexError, AttributeError, struct.error)
"""What a malformed or unexpected venue message raises inside a parser (orjson errors are ValueError)."""


class Channel(StrEnum):
    BBO = "bbo"
    TRADES = "trades"
    DEPTH = "depth"


class Reconnect(Exception):
    """The venue asked for a new connection (Binance serverShutdown, OKX 64008)."""


class BookMsg(NamedTuple):
    """One order-book message. Continuity: ``first == previous last + 1`` (first = -1: unsequenced)."""

    instrument: int
    first: int
    last: int
    ts_exchange_ns: int
    bids: list[Any]  # wire levels [[price, size, ...], ...] as strings, parsed once by L2Book
    asks: list[Any]
    snapshot: bool


class Snapshot(NamedTuple):
    """A REST book snapshot valid at update id ``last`` (Binance lastUpdateId, OKX seqId)."""

    last: int
    ts_exchange_ns: int
    bids: list[Any]
    asks: list[Any]


UNSEQUENCED: Final = -1


@dataclass(frozen=True, slots=True)
class FeedCaps:
    """A venue's transport quirks, read by the shared machinery instead of ``if venue ==``."""

    ping_text: bytes | None  # client keepalive sent after ping_interval_s of silence (OKX b"ping")
    pong_text: bytes | None  # its answer, swallowed before the JSON parser (OKX b"pong")
    max_subscriptions: int  # streams (Binance 1024) or args per connection
    max_control_per_s: float  # outgoing control frames allowed per second (Binance 5)
    max_ping_interval_s: float  # keepalive must fire before the venue's idle cut (OKX < 30 s)
    snapshot_depth: int  # levels asked for in a REST snapshot
    session_limit_s: float = 0.0  # the venue cuts connections this old (Binance 24 h); 0 = no limit
    stream_snapshots: bool = False
    """Books are seeded only by the stream's own snapshot, sent on every (re)subscribe (Bybit: its REST book
    follows another depth's update ids): a book that needs one is resubscribed, never fetched over REST."""


@dataclass(frozen=True, slots=True)
class SnapshotRequest:
    url: str
    params: dict[str, str]


class FeedAdapter(ABC):
    """One venue: data plus pure parsers, built once from the instrument table."""

    venue: ClassVar[Venue]
    caps: ClassVar[FeedCaps]
    channel_names: ClassVar[dict[Channel, str]]
    loads: ClassVar[Callable[[bytes], Any]] = staticmethod(orjson.loads)
    """JSON decoder used by `parse` (a benchmark subclass swaps in json.loads as its baseline)."""

    def __init__(self, symbols: dict[str, int], channels: tuple[str, ...]) -> None:
        self.symbols = dict(symbols)  # venue symbol -> instrument id
        self.channels = tuple(Channel(c) for c in channels)

    def check_subscriptions(self) -> int:
        """How many subscriptions this feed needs; ValueError above the venue's per-connection cap."""
        count = len(self.symbols) * len(self.channels)
        if count > self.caps.max_subscriptions:
            raise ValueError(f"{count} subscriptions exceed the venue cap {self.caps.max_subscriptions}")
        return count

    @abstractmethod
    def stream_url(self, ws_url: str) -> str:
        """The URL to connect to (Binance puts the subscriptions in it)."""

    @abstractmethod
    def subscribe_messages(self) -> list[bytes]:
        """Text frames to send right after connecting (empty when the URL subscribes)."""

    @abstractmethod
    def parse(self, raw: bytes, out: np.ndarray, at: int, recv_ns: int, books: list[BookMsg]) -> int:
        """Decode one frame; write BBO/TRADE rows from ``at``; append book messages; return rows written."""

    def snapshot_request(self, rest_url: str, symbol: str) -> SnapshotRequest:
        """The REST call that returns a book snapshot for ``symbol`` (venues seeded over REST)."""
        raise ProtocolError(f"{self.venue.name} books are seeded by the stream, not REST")

    def parse_snapshot(self, body: bytes) -> Snapshot:
        """Decode a REST snapshot body; ProtocolError when the venue answered an error."""
        raise ProtocolError(f"{self.venue.name} books are seeded by the stream, not REST")

    def resubscribe_messages(self, symbol: str) -> list[bytes]:
        """Frames that make the stream send ``symbol``'s book snapshot again (``caps.stream_snapshots``)."""
        raise ProtocolError(f"{self.venue.name} books are seeded over REST, not by resubscribing")

    @property
    def wants_depth(self) -> bool:
        return Channel.DEPTH in self.channels


class Backoff:
    """Exponential delay with jitter: attempt n waits in [d/2, d], d = min(initial * 2**(n-1), max)."""

    __slots__ = ("_initial_ns", "_max_ns", "_rng")

    def __init__(self, initial_ms: int, max_ms: int, rng: random.Random | None = None) -> None:
        self._initial_ns = initial_ms * 1_000_000
        self._max_ns = max(max_ms, initial_ms) * 1_000_000
        self._rng = rng or random.Random()

    def delay_ns(self, attempt: int) -> int:
        if attempt <= 0:
            return 0
        full = min(self._initial_ns << min(attempt - 1, 40), self._max_ns)
        return full // 2 + int(self._rng.random() * (full - full // 2))
