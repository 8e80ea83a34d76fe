"""A hostile venue over real loopback sockets, in every venue's dialect: nothing invalid is published,
every rejection is counted with its reason, the books end equal to a good snapshot, and the strategy
that reads the published records finds nothing to trade.

`HostileVenue` is a small WebSocket server (websockets, sync API) plus an HTTP server for REST
snapshots; the test pushes each frame and answers each snapshot request (Bybit's books are seeded by
a snapshot in the stream, the answer to a resubscription: the test sends it as a frame), then runs the
feed's duty cycle until the feed has reacted, so every step is deterministic.
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from kairos import config
from kairos.config import ArbitrageConfig, EndpointConfig, FeedConfig
from kairos.feeds import FEEDS
from kairos.feeds.agent import FeedAgent
from kairos.feeds.stats import FeedStats
from kairos.feeds.sync import State
from kairos.feeds.validate import (
    BAD_BOOK_MSG,
    CROSSED,
    EMPTY_BOOK,
    FRAME_SIZE,
    INVALID_LEVEL,
    JUMP,
    LEVELS,
    NOT_FINITE,
    NOT_POSITIVE,
    OUT_OF_RANGE,
    VENUE_WIDE,
)
from kairos.instruments import InstrumentTable
from kairos.records import BookStatus, Kind, Venue
from kairos.strategy.api import IntentSink, ManualClock, MarketView, OrderIds, new_run_id
from kairos.strategy.arbitrage import ARBITRAGE_ID, CrossArbitrage
from tests.unit.feeds.conftest import Collect, pump

CFG = dict(ws_reconnect_delay_ms=20, ws_max_reconnect_delay_ms=40, watchdog_ms=30_000, depth_levels=10,
           snapshot_retries=3)
A = 1  # the instrument under attack (BTC); the other one gets no data
LEVELS_PER_SIDE = 12


class HostileVenue:
    """Loopback WS server sending what the test pushes, and REST snapshots the test queues per symbol."""

    def __init__(self) -> None:
        self.frames: queue.Queue[str] = queue.Queue()
        self.snapshots: dict[str, list[bytes]] = {}
        self.received: list[str] = []  # what the feed sent (subscriptions), pings aside
        self.connections = 0
        self._stop = threading.Event()
        self._ws: Server = serve(self._session, "127.0.0.1", 0, ping_interval=None, compression=None,
                                 max_size=None)
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (self._ws, self._http)]
        for thread in self._threads:
            thread.start()

    @property
    def urls(self) -> EndpointConfig:
        return EndpointConfig(rest_url=f"http://127.0.0.1:{self._http.server_address[1]}",
                              ws_url=f"ws://127.0.0.1:{self._ws.socket.getsockname()[1]}/stream")

    def _session(self, conn: ServerConnection) -> None:
        self.connections += 1
        while not self._stop.is_set():
            try:
                text = conn.recv(timeout=0.005)
                if text == "ping":
                    conn.send("pong")
                elif "ping" not in text:
                    self.received.append(str(text))
            except TimeoutError:
                pass
            except ConnectionClosed:
                return
            while not self.frames.empty():
                try:
                    conn.send(self.frames.get_nowait())
                except ConnectionClosed:
                    return

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        venue = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlparse(self.path).query)
                symbol = (query.get("symbol") or query.get("instId") or [""])[0]
                bodies = venue.snapshots.get(symbol, [])
                body = bodies.pop(0) if bodies else b'{"code": -1121, "msg": "no snapshot queued"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        return Handler

    def close(self) -> None:
        self._stop.set()
        self._ws.shutdown()
        self._http.shutdown()
        self._http.server_close()
        for thread in self._threads:
            thread.join(5)


class Dialect:
    """A venue's market-data frames as the hostile venue sends them; each venue's subclass writes its wire format
    (``bbo``, ``trade``, ``depth``, ``snapshot``: a REST body, or a frame where the stream seeds books)."""

    venue: Venue
    symbol: str
    first_id = 0  # the update id of the first snapshot
    stream_seeded = False  # snapshots come over REST

    @staticmethod
    def level(price: object, qty: object) -> list[object]:
        return [price, qty]

    def depth(self, first: object, last: object, bids: list[Any], asks: list[Any]) -> str:
        raise NotImplementedError

    def bad_ids(self, last: int) -> str:
        """A depth frame whose update ids the feed cannot read."""
        return self.depth(last, str(last), [], [])


class Binance(Dialect):
    venue = Venue.BINANCE
    symbol = "BTCUSDT"

    def bbo(self, bid: object, bid_qty: object, ask: object, ask_qty: object, seq: object = 1) -> str:
        return _json({"stream": "btcusdt@bookTicker",
                      "data": {"u": seq, "s": self.symbol, "b": bid, "B": bid_qty, "a": ask, "A": ask_qty}})

    def trade(self, price: object, qty: object, trade_id: int) -> str:
        return _json({"stream": "btcusdt@trade", "data": {"e": "trade", "E": _ms(), "s": self.symbol, "t": trade_id,
                                                           "p": price, "q": qty, "T": _ms(), "m": False}})

    def depth(self, first: object, last: object, bids: list[Any], asks: list[Any]) -> str:
        return _json({"stream": "btcusdt@depth@100ms", "data": {"e": "depthUpdate", "E": _ms(), "s": self.symbol,
                                                                 "U": first, "u": last, "b": bids, "a": asks}})

    def snapshot(self, last: int, bids: list[Any], asks: list[Any]) -> bytes:
        return json.dumps({"lastUpdateId": last, "bids": bids, "asks": asks}).encode()


class Okx(Dialect):
    venue = Venue.OKX
    symbol = "BTC-USDT"

    @staticmethod
    def level(price: object, qty: object) -> list[object]:
        return [price, qty, "0", "1"]

    def bbo(self, bid: object, bid_qty: object, ask: object, ask_qty: object, seq: object = 1) -> str:
        return _json({"arg": {"channel": "bbo-tbt", "instId": self.symbol},
                      "data": [{"bids": [self.level(bid, bid_qty)], "asks": [self.level(ask, ask_qty)],
                                "ts": str(_ms()), "seqId": seq}]})

    def trade(self, price: object, qty: object, trade_id: int) -> str:
        return _json({"arg": {"channel": "trades", "instId": self.symbol},
                      "data": [{"instId": self.symbol, "tradeId": str(trade_id), "px": price, "sz": qty,
                                "side": "buy", "ts": str(_ms())}]})

    def depth(self, first: object, last: object, bids: list[Any], asks: list[Any]) -> str:
        prev = first - 1 if isinstance(first, int) else first
        return _json({"arg": {"channel": "books", "instId": self.symbol}, "action": "update",
                      "data": [{"bids": bids, "asks": asks, "ts": str(_ms()), "checksum": 0, "prevSeqId": prev,
                                "seqId": last}]})

    def snapshot(self, last: int, bids: list[Any], asks: list[Any]) -> bytes:
        return json.dumps({"code": "0", "msg": "", "data": [{"bids": bids, "asks": asks, "ts": str(_ms()),
                                                              "seqId": last}]}).encode()


class Bybit(Dialect):
    """orderbook.1 / publicTrade / orderbook.50; a snapshot is a frame (ids start at 100: u == 1 restarts a book)."""

    venue = Venue.BYBIT
    symbol = "BTCUSDT"
    first_id = 100
    stream_seeded = True

    def bbo(self, bid: object, bid_qty: object, ask: object, ask_qty: object, seq: object = 1) -> str:
        return _json({"topic": f"orderbook.1.{self.symbol}", "ts": _ms(), "type": "snapshot",
                      "data": {"s": self.symbol, "b": [[bid, bid_qty]], "a": [[ask, ask_qty]], "u": seq, "seq": 7}})

    def trade(self, price: object, qty: object, trade_id: int) -> str:
        return _json({"topic": f"publicTrade.{self.symbol}", "type": "snapshot", "ts": _ms(),
                      "data": [{"i": str(trade_id), "T": _ms(), "p": price, "v": qty, "S": "Buy", "s": self.symbol,
                                "BT": False}]})

    def depth(self, first: object, last: object, bids: list[Any], asks: list[Any], kind: str = "delta",
              seq: int = 5) -> str:
        return _json({"topic": f"orderbook.50.{self.symbol}", "ts": _ms(), "type": kind,
                      "data": {"s": self.symbol, "b": bids, "a": asks, "u": last, "seq": seq}})

    def bad_ids(self, last: int) -> str:
        return self.depth(last, 10**20, [], [])  # more than a record's sequence field holds

    def snapshot(self, last: int, bids: list[Any], asks: list[Any]) -> str:
        return self.depth(last, last, bids, asks, "snapshot")


DIALECTS: Final = [Binance(), Okx(), Bybit()]


def _json(obj: object) -> str:
    return json.dumps(obj)


def _ms() -> int:
    return time.time_ns() // 1_000_000


class Book:
    """The venue's true book (what every good snapshot holds)."""

    def __init__(self) -> None:
        self.bids = {60_000.0 - i: 1.0 + i for i in range(LEVELS_PER_SIDE)}
        self.asks = {60_001.0 + i: 1.5 + i for i in range(LEVELS_PER_SIDE)}

    def levels(self, dialect: Dialect, side: dict[float, float]) -> list[list[object]]:
        return [dialect.level(repr(p), repr(q)) for p, q in sorted(side.items())]

    def top(self, count: int) -> list[tuple[float, float, float, float]]:
        bids, asks = sorted(self.bids.items(), reverse=True), sorted(self.asks.items())
        return [(*bids[i], *asks[i]) for i in range(count)]


@pytest.fixture
def hostile() -> Iterator[HostileVenue]:
    venue = HostileVenue()
    yield venue
    venue.close()


@pytest.fixture
def make_feed(hostile: HostileVenue) -> Iterator[Callable[[Venue], tuple[FeedAgent, Collect]]]:
    agents: list[FeedAgent] = []

    def make(venue: Venue) -> tuple[FeedAgent, Collect]:
        settings = config.load()
        symbols = InstrumentTable(settings.instruments).venue_symbols(venue)
        adapter = FEEDS[venue.name.lower()](symbols, ("bbo", "trades", "depth"))
        out = Collect()
        agent = FeedAgent(adapter, hostile.urls, FeedConfig(**CFG), out, FeedStats(None))
        agents.append(agent)
        return agent, out

    yield make
    for agent in agents:
        agent.on_close()


class Run:
    """Pushes frames and runs the feed until it has read them (or a condition holds)."""

    def __init__(self, hostile: HostileVenue, agent: FeedAgent, dialect: Dialect) -> None:
        self.hostile, self.agent, self.dialect = hostile, agent, dialect
        self.book = Book()
        self.last = dialect.first_id  # update id of the book state `self.book` holds

    def send(self, *frames: str, until: Callable[[], bool] | None = None) -> None:
        target = self.agent.stats.frames + len(frames)
        for frame in frames:
            self.hostile.frames.put(frame)
        assert pump(self.agent, until or (lambda: self.agent.stats.frames >= target), timeout_s=10)

    def rejected(self, reason: str, instrument: int = A) -> int:
        return self.agent.rejections.counts.get((instrument, reason), 0)

    @property
    def track(self) -> Any:
        return self.agent.sync.tracks[A]

    def live(self) -> bool:
        return self.track.state == State.LIVE

    def resync(self) -> None:
        """The venue serves a good snapshot at ``last`` and sends the next good update: the book is LIVE again."""
        d = self.dialect
        self.good_update(*self.serve(d.snapshot(self.last, self.book.levels(d, self.book.bids),
                                                self.book.levels(d, self.book.asks))))

    def serve(self, *snapshots: bytes | str) -> list[str]:
        """Snapshots where the dialect serves them: queued for REST, or frames to send before the next update."""
        if self.dialect.stream_seeded:
            return [str(s) for s in snapshots]
        self.hostile.snapshots[self.dialect.symbol] = [bytes(s) for s in snapshots]  # type: ignore[arg-type]
        return []

    def good_update(self, *before: str) -> None:
        self.last += 1
        price = 60_000.0 - 3
        self.book.bids[price] = self.book.bids[price] + 0.25
        level = self.dialect.level(repr(price), repr(self.book.bids[price]))
        update = self.dialect.depth(self.last, self.last, [level], [])
        last = self.last
        self.send(*before, update, until=lambda: self.live() and self.track.last == last)


def _valid_pair(price: float, qty: float, cfg: FeedConfig) -> bool:
    return math.isfinite(price) and math.isfinite(qty) and 0 < price <= cfg.max_price and 0 < qty <= cfg.max_qty


def assert_nothing_invalid(records: np.ndarray, cfg: FeedConfig) -> None:
    """Every BBO/TRADE pair valid, every BBO and DEPTH top uncrossed and near the true book (59 000..61 000)."""
    for rec in records:
        kind, p, q, p2, q2 = int(rec["kind"]), rec["price"], rec["qty"], rec["price2"], rec["qty2"]
        if kind == Kind.TRADE:
            assert _valid_pair(p, q, cfg), rec
        elif kind == Kind.BBO or (kind == Kind.DEPTH and rec["flags"] == 0):
            assert _valid_pair(p, q, cfg) and _valid_pair(p2, q2, cfg) and p < p2, rec
            assert 59_000 < p < p2 < 61_000, rec
        elif kind == Kind.DEPTH:
            assert (p, q) == (0.0, 0.0) or _valid_pair(p, q, cfg), rec
            assert (p2, q2) == (0.0, 0.0) or _valid_pair(p2, q2, cfg), rec


def intents_from(records: np.ndarray, venue: Venue) -> int:
    """Intents the arbitrage strategy sends on ``records``, against a steady good quote on the other venue."""
    other = Venue.OKX if venue == Venue.BINANCE else Venue.BINANCE
    clock, view = ManualClock(0), MarketView(2)
    sink = IntentSink(clock)
    cfg = ArbitrageConfig(enabled=True, instruments=("BTC-USDT",), min_edge_bps=5.0, max_qty=0.01)
    arb = CrossArbitrage(cfg, {venue: 10.0, other: 10.0}, {A: tuple(sorted((venue, other)))}, view,
                         OrderIds(ARBITRAGE_ID, new_run_id(time.time_ns())), clock)
    steady = np.zeros(1, records.dtype)
    for name, value in (("venue", other), ("instrument", A), ("kind", Kind.BBO), ("price", 60_000.0), ("qty", 1.0),
                        ("price2", 60_001.0), ("qty2", 1.0)):
        steady[name] = value
    intents = 0
    for rec in records:
        clock.set(int(rec["ts_recv_ns"]))
        steady["ts_recv_ns"] = clock.now_ns()
        batch = np.concatenate([steady, rec.reshape(1)])
        view.update(batch)
        arb.on_market(batch, sink)
        view.clear_touched()
        intents += len(sink.take())
    return intents


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.venue.name.lower())
def test_hostile_venue_publishes_nothing_invalid(hostile: HostileVenue, make_feed, dialect: Dialect) -> None:
    agent, out = make_feed(dialect.venue)
    run, d, cfg = Run(hostile, agent, dialect), dialect, FeedConfig(**CFG)
    assert pump(agent, lambda: hostile.connections == 1 and agent.sync.tracks[A].state == State.AWAIT)

    # quotes and trades: one good, then every kind of bad, then good again
    run.send(d.bbo("60000", "1", "60001", "1"), d.trade("60000.5", "0.1", 1))
    hostile_quotes = {
        NOT_FINITE: [d.bbo("NaN", "1", "60001", "1"), d.bbo("60000", "1", "inf", "1"),
                     d.bbo("60000", "NaN", "60001", "1"), d.trade("NaN", "1", 2), d.trade("60000", "inf", 3)],
        NOT_POSITIVE: [d.bbo("-5", "1", "-4", "1"), d.bbo("60000", "0", "60001", "1"), d.trade("-1", "1", 4)],
        OUT_OF_RANGE: [d.bbo("1e15", "1", "1.1e15", "1"), d.bbo("60000", "1e13", "60001", "1"),
                       d.trade("1e15", "1", 5)],
        CROSSED: [d.bbo("60600", "1", "60000", "1")],
        JUMP: [d.bbo("0.00000001", "1", "0.00000002", "1")],
    }
    for frames in hostile_quotes.values():
        run.send(*frames)
    run.send(d.bbo("abc", "1", "60001", "1"), d.bbo("60000", "1", "60001", "1", seq="12x"))  # not numbers at all
    run.send(d.bbo("60000.5", "1", "60001.5", "1"), d.trade("60001", "0.2", 6))
    for reason, frames in hostile_quotes.items():
        assert run.rejected(reason) == len(frames), (reason, agent.rejections.counts)
    assert agent.tally.counts["bad_message"] == 2
    published = out.kind(Kind.BBO, A)
    assert [(r["price"], r["price2"]) for r in published] == [(60000.0, 60001.0), (60000.5, 60001.5)]
    assert list(out.kind(Kind.TRADE, A)["price"]) == [60000.5, 60001.0]

    # the depth book: an empty snapshot is refused, the next good one seeds it
    book = run.book
    run.good_update(*run.serve(d.snapshot(run.last, [], []),
                               d.snapshot(run.last, book.levels(d, book.bids), book.levels(d, book.asks))))
    assert run.rejected(EMPTY_BOOK) == 1 and out.statuses(A) == [BookStatus.SYNCED]

    # every hostile book message is refused, the book resyncs to a good snapshot each time
    lvl = d.level
    hostile_books = [
        (LEVELS, lambda n: d.depth(n, n, [lvl(f"{50_000 + i * 0.01:.2f}", "1") for i in range(6000)], [])),
        (CROSSED, lambda n: d.depth(n, n, [lvl("60002", "1")], [])),
        (INVALID_LEVEL, lambda n: d.depth(n, n, [lvl("59999", "NaN")], [])),
        (INVALID_LEVEL, lambda n: d.depth(n, n, [lvl("59999", "inf")], [])),
        (INVALID_LEVEL, lambda n: d.depth(n, n, [lvl("1e15", "1")], [])),
        (INVALID_LEVEL, lambda n: d.depth(n, n, [lvl("-5", "1")], [])),
        (INVALID_LEVEL, lambda n: d.depth(n, n, [lvl("abc", "1")], [])),
        (INVALID_LEVEL, lambda n: d.depth(n, n, [lvl("0.000000001", "1")], [])),
        (BAD_BOOK_MSG, d.bad_ids),
        (JUMP, lambda n: d.depth(n, n, [], [lvl(repr(p), "0") for p in book.asks] + [lvl("70000", "1")])),
        (EMPTY_BOOK, lambda n: d.depth(n, n, [lvl(repr(p), "0") for p in book.bids], [])),
    ]
    for reason, frame in hostile_books:
        before, resyncs = run.rejected(reason), agent.sync.counts["resyncs"] + 1
        run.send(frame(run.last + 1), until=lambda n=resyncs: agent.sync.counts["resyncs"] == n)
        assert run.rejected(reason) == before + 1, reason
        run.resync()
    for stale in (run.last, run.last - 5):  # a duplicate and an out-of-order update id: a gap, resynced
        gaps = agent.sync.counts["gaps"] + 1
        run.send(d.depth(stale, stale, [lvl("59990", "7")], []), until=lambda n=gaps: agent.sync.counts["gaps"] == n)
        run.resync()
    assert run.rejected(CROSSED) == 2 and agent.sync.counts["crossed"] == 1

    # a 10 MB frame is refused from its header: the connection is closed and opened again
    run.send("x" * 10_000_000, until=lambda: run.rejected(FRAME_SIZE, VENUE_WIDE) == 1)
    assert agent.stats.disconnects == 1 and agent.stats.frames < 100
    assert pump(agent, lambda: hostile.connections == 2 and run.track.state == State.AWAIT)
    run.resync()
    run.send(d.bbo("60000", "2", "60001", "2"))

    statuses = out.statuses(A)
    assert statuses.count(BookStatus.RESYNCING) == len(hostile_books) + 2
    assert statuses[-2:] == [BookStatus.DISCONNECTED, BookStatus.SYNCED]
    burst = out.last_burst(A, cfg.depth_levels)
    assert [tuple(r[["price", "qty", "price2", "qty2"]]) for r in burst] == book.top(cfg.depth_levels)
    assert out.kind(Kind.BBO, A)[-1]["qty"] == 2.0
    assert_nothing_invalid(out.records, cfg)
    assert intents_from(out.records, d.venue) == 0
    rich = out.kind(Kind.BBO, A)[-1:].copy()
    rich["price"], rich["price2"] = 60_600.0, 60_601.0  # the check can fail: a quote 1 % rich is traded
    assert intents_from(rich, d.venue) == 2
    assert len(out.kind(Kind.DEPTH, 2)) == 0 and all(i in (A, VENUE_WIDE) for i, _ in agent.rejections.counts)


def test_bybit_resubscribes_over_the_socket_and_follows_u_not_seq(hostile: HostileVenue, make_feed) -> None:
    """Bybit's own rules on the wire: the book is seeded by resubscribing (never REST), ``seq`` going back is
    no gap, ``u`` going back is, and ``u == 1`` (the service restarted) is a new book, refused if it is bad."""
    d, cfg = Bybit(), FeedConfig(**CFG)
    agent, out = make_feed(d.venue)
    run, lvl = Run(hostile, agent, d), d.level
    assert pump(agent, lambda: hostile.connections == 1 and run.track.state == State.AWAIT)

    def resubscribed(times: int) -> bool:
        ops = [json.loads(r) for r in hostile.received]
        again = [o["op"] for o in ops if o.get("req_id", "").endswith("re-BTCUSDT")]
        return again == ["unsubscribe", "subscribe"] * times

    run.send(d.depth(run.last, run.last, [lvl("59990", "1")], []))  # buffered: no book yet, so ask for one
    assert pump(agent, lambda: resubscribed(1)), hostile.received
    run.resync()
    assert agent.sync.counts["rest_requests"] == 0 and not hostile.snapshots

    gaps, resyncs = agent.sync.counts["gaps"], agent.sync.counts["resyncs"]
    run.last += 1
    run.book.bids[59_990.5] = 1.0
    last = run.last
    run.send(d.depth(last, last, [lvl("59990.5", "1.0")], [], seq=1), until=lambda: run.track.last == last)
    assert run.live() and (agent.sync.counts["gaps"], agent.sync.counts["resyncs"]) == (gaps, resyncs), "seq ignored"

    run.last = 1  # the service restarted: a "delta" with u == 1 is the whole book
    run.send(d.depth(1, 1, run.book.levels(d, run.book.bids), run.book.levels(d, run.book.asks)),
             until=lambda: run.track.last == 1)
    assert run.live() and agent.sync.counts["resyncs"] == resyncs
    run.good_update()

    crossed = run.rejected(CROSSED)
    run.send(d.depth(1, 1, [lvl("60002", "1")], [lvl("60001", "1")]), until=lambda: run.rejected(CROSSED) > crossed)
    assert not run.live(), "a crossed restart book is refused, not published"
    run.resync()

    gaps = agent.sync.counts["gaps"]
    run.send(d.depth(run.last - 1, run.last - 1, [lvl("59990", "3")], []),
             until=lambda: agent.sync.counts["gaps"] == gaps + 1)
    assert pump(agent, lambda: resubscribed(2)), hostile.received
    run.resync()

    burst = out.last_burst(A, cfg.depth_levels)
    assert [tuple(r[["price", "qty", "price2", "qty2"]]) for r in burst] == run.book.top(cfg.depth_levels)
    assert_nothing_invalid(out.records, cfg)
