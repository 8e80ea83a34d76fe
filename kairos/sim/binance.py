"""The simulator speaking Binance Spot: combined streams, SUBSCRIBE, depth/time/exchangeInfo REST.

WebSocket: ``/stream?streams=btcusdt@bookTicker/btcusdt@depth@100ms/...`` (also ``@depth``,
``@trade``, ``@aggTrade``); payloads wrapped ``{"stream", "data"}``; SUBSCRIBE/UNSUBSCRIBE/
LIST_SUBSCRIPTIONS answered ``{"result", "id"}``; more than 5 client frames in a second closes
the connection, as Binance does. Server pings every ``sim.venues.binance.ping_interval_s``; no matching
pong within three intervals (Binance: 20 s / 1 min) closes the connection.
REST: GET /api/v3/depth (lastUpdateId coherent with the stream), /api/v3/time, /api/v3/ping,
/api/v3/exchangeInfo (PRICE_FILTER, LOT_SIZE, NOTIONAL).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from kairos.config import SimConfig
from kairos.ratelimit import LIMITS
from kairos.records import Side, Venue
from kairos.sim.book import BookStyle, DepthEvent, Event, TopEvent, TradeEvent, VenueSpec
from kairos.sim.hub import Session
from kairos.sim.market import SimMarket
from kairos.sim.replay import Recording, register_replay_depth
from kairos.sim.router import HttpError, Request, Response, Router, json_response, json_text, now_ms

MAX_CLIENT_FRAMES_PER_S = 5


class BinanceDialect:
    venue = Venue.BINANCE
    style = BookStyle(tick_scale=1, fixed_decimals=8, first_id=1_000_000, stride=1)
    ws_path = "/stream"

    def __init__(self, market: SimMarket, cfg: SimConfig) -> None:
        self._market = market
        rules = cfg.venue("binance")
        self.ports = (rules.rest_port, rules.ws_port)
        self.server_ping_interval_s = rules.ping_interval_s or None
        self.idle_timeout_s = rules.idle_timeout_s or None
        self.keepalive_s = None  # Binance streams have no keep-alive pushes: the server pings instead
        self._weight = LIMITS["binance"].scaled(cfg.rate_limit_scale).windows[0].limit  # enforced: sim/ratelimit.py
        self._rate: dict[int, list[float]] = {}

    # -- WebSocket -----------------------------------------------------------------------------------
    def keepalive(self, key: str) -> str | None:
        return None  # Binance streams have no keep-alive pushes: the server pings instead

    def subscriptions_from_path(self, path: str) -> set[str] | None:
        parts = urlsplit(path)
        if parts.path.rstrip("/") != "/stream":
            return None
        streams = parse_qs(parts.query).get("streams", [""])[0]
        return {s for s in streams.split("/") if s}

    def keepalive_reply(self, text: str) -> str | None:
        return None  # Binance keepalive is protocol ping/pong frames, handled by the websockets library

    def on_text(self, session: Session, text: str) -> list[str]:
        if not self._within_rate(session):
            session.conn.transport.abort()
            return []
        try:
            msg = orjson.loads(text)
            method, params, ident = msg["method"], msg.get("params") or [], msg.get("id")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return [orjson.dumps({"code": 3, "msg": "Invalid JSON: expected a method"}).decode()]
        if method == "SUBSCRIBE":
            session.subs.update(params)
        elif method == "UNSUBSCRIBE":
            session.subs.difference_update(params)
        elif method == "LIST_SUBSCRIPTIONS":
            return [orjson.dumps({"result": sorted(session.subs), "id": ident}).decode()]
        else:
            return [orjson.dumps({"code": 2, "msg": f"Invalid request: unknown method {method}", "id": ident}).decode()]
        return [orjson.dumps({"result": None, "id": ident}).decode()]

    def _within_rate(self, session: Session) -> bool:
        now = time.monotonic()
        recent = [t for t in self._rate.get(session.id, []) if now - t < 1.0]
        recent.append(now)
        self._rate[session.id] = recent
        if len(self._rate) > 1000:  # forget sessions that have been quiet for a second (closed ones, mostly)
            self._rate = {k: v for k, v in self._rate.items() if now - v[-1] < 1.0}
        return len(recent) <= MAX_CLIENT_FRAMES_PER_S

    def render(self, event: Event) -> list[tuple[str, str]]:
        spec = event.spec
        name = spec.symbol.lower()
        if isinstance(event, DepthEvent):
            data = json_text({"e": "depthUpdate", "E": event.ts_ms, "s": spec.symbol, "U": event.prev_id + 1,
                          "u": event.last_id, "b": _levels(spec, event.bids), "a": _levels(spec, event.asks)})
            return [_wrap(f"{name}@depth@100ms", data), _wrap(f"{name}@depth", data)]
        if isinstance(event, TopEvent):
            data = json_text({"u": event.update_id, "s": spec.symbol, "b": spec.px(event.bid[0]),
                          "B": spec.sz(event.bid[1]), "a": spec.px(event.ask[0]), "A": spec.sz(event.ask[1])})
            return [_wrap(f"{name}@bookTicker", data)]
        return self._trade(event, name)

    @staticmethod
    def _trade(event: TradeEvent, name: str) -> list[tuple[str, str]]:
        spec, maker = event.spec, event.aggressor == Side.SELL
        common = {"E": event.ts_ms, "s": spec.symbol, "p": spec.px(event.ticks), "q": spec.sz(event.lots),
                  "T": event.ts_ms, "m": maker, "M": True}
        trade = json_text({"e": "trade", "t": event.trade_id, **common})
        agg = json_text({"e": "aggTrade", "a": event.trade_id, "f": event.trade_id, "l": event.trade_id, **common})
        return [_wrap(f"{name}@trade", trade), _wrap(f"{name}@aggTrade", agg)]

    def malformed(self, count: int) -> list[str]:
        name = self._market.symbols(self.venue)[0].lower()
        samples = [f'{{"stream":"{name}@depth@100ms","data":{{"e":"depthUpdate","U":', "not json at all",
                   f'{{"stream":"{name}@bookTicker","data":{{"u":1,"s":"X","b":"abc","B":"1","a":"2","A":"1"}}}}']
        return [samples[i % len(samples)] for i in range(count)]

    def shutdown_notice(self) -> str:
        data = json_text({"e": "serverShutdown", "E": now_ms()})
        return _wrap("!serverShutdown", data)[1]

    # -- REST ------------------------------------------------------------------------------------
    def register(self, router: Router, recording: Recording | None = None) -> None:
        """Public routes; a replayed session's recorded REST books answer /api/v3/depth instead of the random walk."""
        if recording is None:
            router.register("GET", "/api/v3/depth", self._depth)
        else:
            register_replay_depth(router, recording)
        router.register("GET", "/api/v3/time", lambda r: json_response({"serverTime": now_ms()}))
        router.register("GET", "/api/v3/ping", lambda r: json_response({}))
        router.register("GET", "/api/v3/exchangeInfo", self._exchange_info)

    def _spec(self, symbol: str) -> VenueSpec:
        try:
            return self._market.spec(self.venue, symbol)
        except KeyError:
            raise HttpError(400, {"code": -1121, "msg": "Invalid symbol."}) from None

    def _depth(self, request: Request) -> Response:
        spec = self._spec(request.query.get("symbol", ""))
        limit = min(int(request.query.get("limit", "100") or 100), 5000)
        view = self._market.book(self.venue, spec.symbol, limit)
        return json_response({
            "lastUpdateId": view.update_id,
            "bids": [[spec.dec(lvl.price), spec.dec(lvl.qty)] for lvl in view.bids],
            "asks": [[spec.dec(lvl.price), spec.dec(lvl.qty)] for lvl in view.asks],
        })

    def _exchange_info(self, request: Request) -> Response:
        wanted = request.query.get("symbol")
        many = request.query.get("symbols")
        names = [wanted] if wanted else orjson.loads(many) if many else self._market.symbols(self.venue)
        symbols = [_symbol_info(self._spec(name)) for name in names]
        limits = [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": self._weight},
                  {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100}]
        return json_response({"timezone": "UTC", "serverTime": now_ms(), "rateLimits": limits,
                              "exchangeFilters": [], "symbols": symbols})


def _symbol_info(spec: VenueSpec) -> dict[str, Any]:
    return {
        "symbol": spec.symbol, "status": "TRADING", "baseAsset": spec.base, "baseAssetPrecision": 8,
        "quoteAsset": spec.quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"], "isSpotTradingAllowed": True,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": spec.dec(spec.tick), "maxPrice": spec.dec("1000000"),
             "tickSize": spec.dec(spec.tick)},
            {"filterType": "LOT_SIZE", "minQty": spec.dec(spec.min_qty), "maxQty": spec.dec("9000"),
             "stepSize": spec.dec(spec.lot)},
            {"filterType": "NOTIONAL", "minNotional": spec.dec(spec.min_notional), "applyMinToMarket": True,
             "maxNotional": spec.dec("9000000"), "applyMaxToMarket": False, "avgPriceMins": 5},
        ],
    }


def _levels(spec: VenueSpec, levels: tuple[tuple[int, int], ...]) -> list[list[str]]:
    return [[spec.px(p), spec.sz(q)] for p, q in levels]


def _wrap(stream: str, data: str) -> tuple[str, str]:
    return stream, f'{{"stream":"{stream}","data":{data}}}'
