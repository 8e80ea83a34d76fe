"""The simulator speaking Bybit v5 spot: public WS topics with snapshot/delta books, and public REST.

WebSocket ``/v5/public/spot``: ``{"op": "ping"}`` -> ``{"success": true, "ret_msg": "pong", "op":
"ping"}``; ``{"op": "subscribe"|"unsubscribe", "args": ["orderbook.50.BTCUSDT", ...]}`` (at most 10
args) acked with ``{"success": true, "ret_msg": "subscribe", "op": ...}``; an unknown topic, depth or
symbol, or a bad request, answers ``success: false``. Every ``orderbook.50`` subscription starts with a
snapshot, then deltas whose ``u`` advances by one per message (``seq`` by more: it has gaps); size
"0" deletes. ``orderbook.1`` sends the best bid/offer as snapshots; ``publicTrade`` the trades. A
connection with no push and no client frame for ``sim.venues.bybit.idle_timeout_s`` is closed.
REST: GET /v5/market/orderbook (its ``u`` is the 1000-level stream's, so a feed cannot splice it
into orderbook.50), /v5/market/time, /v5/market/instruments-info (tickSize, basePrecision,
minOrderAmt).
"""

from __future__ import annotations

import itertools
from typing import Any, Final

import orjson

from kairos.config import SimConfig
from kairos.records import Side, Venue
from kairos.sim.book import BookStyle, BookView, DepthEvent, Event, TopEvent, TradeEvent, VenueSpec
from kairos.sim.hub import Session
from kairos.sim.market import SimMarket
from kairos.sim.replay import Recording
from kairos.sim.router import Request, Response, Router, json_response, json_text, now_ms

BOOK_DEPTH: Final = 50
MAX_ARGS: Final = 10
REST_U_OFFSET: Final = 7_000_000  # the REST book's u counts the 1000-level stream, not orderbook.50's
TRADE_ID_BASE: Final = 2_290_000_000_000_000_000


class BybitDialect:
    venue = Venue.BYBIT
    # as live: u advances by one per orderbook.50 message (stride 0), prices in minimal form
    style = BookStyle(tick_scale=1, fixed_decimals=0, first_id=1_000_000, stride=0)
    ws_path = "/v5/public/spot"

    def __init__(self, market: SimMarket, cfg: SimConfig) -> None:
        self._market = market
        rules = cfg.venue("bybit")
        self.ports = (rules.rest_port, rules.ws_port)
        self.server_ping_interval_s = rules.ping_interval_s or None
        self.idle_timeout_s = rules.idle_timeout_s or None
        self.keepalive_s = None  # orderbook.1 repeats itself on the venue; the sim's walk never idles that long
        self._seq = itertools.count(80_000_000_000, 7)  # cross-depth sequence: increases, with gaps

    # -- WebSocket -----------------------------------------------------------------------------------
    def subscriptions_from_path(self, path: str) -> set[str] | None:
        return set() if path.split("?")[0].rstrip("/") == self.ws_path else None

    def keepalive_reply(self, text: str) -> str | None:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(msg, dict) or msg.get("op") != "ping":
            return None
        return json_text({"success": True, "ret_msg": "pong", "conn_id": "sim", "req_id": msg.get("req_id", ""),
                          "op": "ping"})

    def keepalive(self, key: str) -> str | None:
        return None

    def on_text(self, session: Session, text: str) -> list[str]:
        pong = self.keepalive_reply(text)
        if pong is not None:
            return [pong]
        try:
            msg = orjson.loads(text)
            op, args, req_id = msg["op"], msg["args"], msg.get("req_id", "")
            topics = [str(a) for a in args]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return [_answer(session, False, f"error:invalid request {text[:200]}", "", "")]
        if op not in ("subscribe", "unsubscribe") or not 0 < len(topics) <= MAX_ARGS:
            return [_answer(session, False, f"error:op {op} with {len(topics)} args", str(op), req_id)]
        bad = [t for t in topics if self._symbol(t) is None]
        if bad:
            return [_answer(session, False, f"Invalid topic: {bad[0]}", op, req_id)]
        replies = [_answer(session, True, op, op, req_id)]
        for topic in topics:
            if op == "unsubscribe":
                session.subs.discard(topic)
                continue
            session.subs.add(topic)
            if topic.startswith("orderbook.50."):
                replies.append(self._snapshot(topic))
        return replies

    def _symbol(self, topic: str) -> str | None:
        """The symbol of a topic this venue serves, else None."""
        channel, _, symbol = topic.rpartition(".")
        if channel not in ("orderbook.1", "orderbook.50", "publicTrade"):
            return None
        return symbol if symbol in self._market.symbols(self.venue) else None

    def _snapshot(self, topic: str) -> str:
        symbol = topic.rpartition(".")[2]
        view = self._market.book(self.venue, symbol, BOOK_DEPTH)
        data = {"s": symbol, **_sides(self._market.spec(self.venue, symbol), view), "u": view.update_id,
                "seq": next(self._seq)}
        return json_text({"topic": topic, "ts": view.ts_ms, "type": "snapshot", "data": data, "cts": view.ts_ms})

    def render(self, event: Event) -> list[tuple[str, str]]:
        spec = event.spec
        symbol = spec.symbol
        if isinstance(event, DepthEvent):
            topic = f"orderbook.50.{symbol}"
            data = {"s": symbol, "b": _levels(spec, event.bids), "a": _levels(spec, event.asks), "u": event.last_id,
                    "seq": next(self._seq)}
            return [(topic, json_text({"topic": topic, "ts": event.ts_ms, "type": "delta", "data": data,
                                       "cts": event.ts_ms}))]
        if isinstance(event, TopEvent):
            topic = f"orderbook.1.{symbol}"
            data = {"s": symbol, "b": [[spec.px(event.bid[0]), spec.sz(event.bid[1])]],
                    "a": [[spec.px(event.ask[0]), spec.sz(event.ask[1])]], "u": event.update_id, "seq": next(self._seq)}
            return [(topic, json_text({"topic": topic, "ts": event.ts_ms, "type": "snapshot", "data": data,
                                       "cts": event.ts_ms}))]
        return [self._trade(event)]

    def _trade(self, event: TradeEvent) -> tuple[str, str]:
        spec = event.spec
        topic = f"publicTrade.{spec.symbol}"
        data = [{"i": str(TRADE_ID_BASE + event.trade_id), "T": event.ts_ms, "p": spec.px(event.ticks),
                 "v": spec.sz(event.lots), "S": "Buy" if event.aggressor == Side.BUY else "Sell",
                 "seq": next(self._seq), "s": spec.symbol, "BT": False, "RPI": False}]
        return topic, json_text({"topic": topic, "type": "snapshot", "ts": event.ts_ms, "data": data})

    def malformed(self, count: int) -> list[str]:
        symbol = self._market.symbols(self.venue)[0]
        samples = [f'{{"topic":"orderbook.50.{symbol}","type":"delta","data":{{"b":[[',
                   "definitely not json",
                   f'{{"topic":"publicTrade.{symbol}","ts":1,"data":[{{"p":"1","v":"x","S":"Buy"}}]}}']
        return [samples[i % len(samples)] for i in range(count)]

    def shutdown_notice(self) -> str:
        """Bybit announces nothing before a cut: a plain pong, then the hub closes the connection."""
        return json_text({"success": True, "ret_msg": "pong", "conn_id": "sim", "req_id": "", "op": "ping"})

    # -- REST ------------------------------------------------------------------------------------
    def register(self, router: Router, recording: Recording | None = None) -> None:
        """Public routes (a replayed session's frames are the hub's; the REST routes stay the random walk's)."""
        router.register("GET", "/v5/market/orderbook", self._orderbook)
        router.register("GET", "/v5/market/time", self._time)
        router.register("GET", "/v5/market/instruments-info", self._instruments)

    def _orderbook(self, request: Request) -> Response:
        symbol = request.query.get("symbol", "")
        if request.query.get("category") != "spot" or symbol not in self._market.symbols(self.venue):
            return bybit_response({}, 10001, "params error: symbol invalid")
        depth = min(max(int(request.query.get("limit", "1") or 1), 1), 200)
        view = self._market.book(self.venue, symbol, depth)
        sides = _sides(self._market.spec(self.venue, symbol), view)
        return bybit_response({"s": symbol, **sides, "ts": view.ts_ms, "u": REST_U_OFFSET + view.update_id,
                               "seq": next(self._seq), "cts": view.ts_ms})

    def _time(self, request: Request) -> Response:
        now_ns = now_ms() * 1_000_000
        return bybit_response({"timeSecond": str(now_ns // 1_000_000_000), "timeNano": str(now_ns)})

    def _instruments(self, request: Request) -> Response:
        if request.query.get("category") != "spot":
            return bybit_response({}, 10001, "params error: category invalid")
        wanted = request.query.get("symbol")
        specs = [self._market.spec(self.venue, s) for s in self._market.symbols(self.venue) if wanted in (None, s)]
        return bybit_response({"category": "spot", "list": [_instrument(s) for s in specs]})


def _instrument(s: VenueSpec) -> dict[str, Any]:
    lot = {"basePrecision": s.dec(s.lot), "quotePrecision": "0.00000001", "minOrderQty": s.dec(s.min_qty),
           "maxOrderQty": "9000", "minOrderAmt": s.dec(s.min_notional), "maxOrderAmt": "100000000",
           "maxLimitOrderQty": "9000", "maxMarketOrderQty": "4500"}
    return {"symbol": s.symbol, "baseCoin": s.base, "quoteCoin": s.quote, "innovation": "0", "status": "Trading",
            "marginTrading": "none", "stTag": "0", "lotSizeFilter": lot, "priceFilter": {"tickSize": s.dec(s.tick)}}


def _sides(spec: VenueSpec, view: BookView) -> dict[str, list[list[str]]]:
    return {"b": [[spec.dec(lvl.price), spec.dec(lvl.qty)] for lvl in view.bids],
            "a": [[spec.dec(lvl.price), spec.dec(lvl.qty)] for lvl in view.asks]}


def _levels(spec: VenueSpec, levels: tuple[tuple[int, int], ...]) -> list[list[str]]:
    return [[spec.px(p), spec.sz(q)] for p, q in levels]


def _answer(session: Session, success: bool, message: str, op: str, req_id: str) -> str:
    return json_text({"success": success, "ret_msg": message, "conn_id": f"c{session.id}", "req_id": req_id,
                      "op": op})


def bybit_response(result: dict[str, Any], code: int = 0, message: str = "OK") -> Response:
    """The v5 envelope: HTTP 200, ``retCode`` 0 or the error."""
    return json_response({"retCode": code, "retMsg": message, "result": result, "retExtInfo": {}, "time": now_ms()})
