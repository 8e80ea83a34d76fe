"""The simulator speaking OKX v5: public WS channels with seqId/prevSeqId, and public REST.

WebSocket ``/ws/v5/public``: text ``ping`` -> ``pong``; ``{"op": "subscribe", "args": [...]}`` for
``books`` (snapshot first when ``sim.venues.okx.ws_snapshot``, then updates; checksum always 0, as since
2026-06-23), ``bbo-tbt``, ``tickers``, ``trades``; unknown channel or instrument -> error 60018,
bad request -> 60012. A ``books`` subscription with no update for ``sim.venues.okx.keepalive_s`` gets
an empty keep-alive update (``prevSeqId == seqId``). A connection with no push and no client frame
for ``sim.venues.okx.idle_timeout_s`` is closed. REST: GET /api/v5/market/books (seqId coherent with the
stream), /api/v5/public/time, /api/v5/public/instruments (tickSz, lotSz, minSz, and the ``instIdCode``
that WebSocket orders name the instrument by: `inst_codes`).
"""

from __future__ import annotations

from typing import Any

import orjson

from kairos.config import SimConfig
from kairos.records import Side, Venue
from kairos.sim.book import BookStyle, BookView, DepthEvent, Event, TopEvent, TradeEvent, VenueSpec
from kairos.sim.hub import Session
from kairos.sim.market import SimMarket
from kairos.sim.replay import Recording
from kairos.sim.router import Request, Response, Router, json_response, json_text, now_ms

CHANNELS = ("books", "bbo-tbt", "tickers", "trades")
INST_CODE_BASE = 2_000_000  # the simulator's codes; real ones differ per instrument and between prod and demo


def inst_codes(symbols: list[str]) -> dict[str, int]:
    """Each instrument's ``instIdCode``, from its place in the venue's symbol list (public and private side agree)."""
    return {symbol: INST_CODE_BASE + 7 * n + 1 for n, symbol in enumerate(symbols)}


class OkxDialect:
    venue = Venue.OKX
    # as live: a tick 10x coarser than Binance's, and seqIds that are not consecutive (the feed must not assume +1)
    style = BookStyle(tick_scale=10, fixed_decimals=0, first_id=5_000_000, stride=3)
    ws_path = "/ws/v5/public"

    def __init__(self, market: SimMarket, cfg: SimConfig) -> None:
        self._market = market
        rules = cfg.venue("okx")
        self.ports = (rules.rest_port, rules.ws_port)
        self._ws_snapshot = rules.ws_snapshot
        self.server_ping_interval_s = rules.ping_interval_s or None
        self.idle_timeout_s = rules.idle_timeout_s or None
        self.keepalive_s = rules.keepalive_s or None
        self._last_trade: dict[str, tuple[str, str]] = {}
        self._last_seq: dict[str, int] = {}  # per instrument: the seqId last pushed on books

    # -- WebSocket -----------------------------------------------------------------------------------
    def subscriptions_from_path(self, path: str) -> set[str] | None:
        return set() if path.split("?")[0].rstrip("/") == self.ws_path else None

    def keepalive_reply(self, text: str) -> str | None:
        return "pong" if text == "ping" else None

    def keepalive(self, key: str) -> str | None:
        """A books subscription idle for ``sim.venues.okx.keepalive_s``: empty sides, ``prevSeqId == seqId``."""
        channel, _, inst = key.partition(":")
        if channel != "books":
            return None
        seq = self._last_seq.get(inst)
        if seq is None:
            seq = self._last_seq[inst] = self._market.book(self.venue, inst, 1).update_id
        data = {"asks": [], "bids": [], "ts": str(now_ms()), "checksum": 0,
                "prevSeqId": seq, "seqId": seq}
        return _push("books", inst, [data], "update")[1]

    def on_text(self, session: Session, text: str) -> list[str]:
        pong = self.keepalive_reply(text)
        if pong is not None:
            return [pong]
        try:
            msg = orjson.loads(text)
            op, args = msg["op"], msg["args"]
            pairs = [(a["channel"], a["instId"]) for a in args]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return [json_text({"event": "error", "code": "60012", "msg": f"Invalid request: {text[:200]}",
                           "connId": f"c{session.id}"})]
        if op not in ("subscribe", "unsubscribe"):
            return [json_text({"event": "error", "code": "60012", "msg": f"Invalid request: op {op}",
                           "connId": f"c{session.id}"})]
        replies = []
        for channel, inst in pairs:
            replies.extend(self._subscribe(session, op, channel, inst, msg.get("id")))
        return replies

    def _subscribe(self, session: Session, op: str, channel: str, inst: str, ident: Any) -> list[str]:
        if channel not in CHANNELS or inst not in self._market.symbols(self.venue):
            return [json_text({"event": "error", "code": "60018",
                               "msg": f"Wrong URL or channel:{channel},instId:{inst}", "connId": f"c{session.id}"})]
        key = f"{channel}:{inst}"
        ack = {"event": op, "arg": {"channel": channel, "instId": inst}, "connId": f"c{session.id}"}
        if ident is not None:
            ack["id"] = ident
        if op == "unsubscribe":
            session.subs.discard(key)
            return [json_text(ack)]
        session.subs.add(key)
        replies = [json_text(ack)]
        if channel == "books" and self._ws_snapshot:
            view = self._market.book(self.venue, inst, 400)
            sides = _book_sides(self._market.spec(self.venue, inst), view)
            data = {**sides, "ts": str(view.ts_ms), "checksum": 0, "prevSeqId": -1, "seqId": view.update_id}
            replies.append(json_text({"arg": ack["arg"], "action": "snapshot", "data": [data]}))
        return replies

    def render(self, event: Event) -> list[tuple[str, str]]:
        spec = event.spec
        inst = spec.symbol
        if isinstance(event, DepthEvent):
            self._last_seq[inst] = event.last_id
            data = {"asks": _levels(spec, event.asks), "bids": _levels(spec, event.bids), "ts": str(event.ts_ms),
                    "checksum": 0, "prevSeqId": event.prev_id, "seqId": event.last_id}
            return [_push("books", inst, [data], "update")]
        if isinstance(event, TopEvent):
            bid, ask = (spec.px(event.bid[0]), spec.sz(event.bid[1])), (spec.px(event.ask[0]), spec.sz(event.ask[1]))
            bbo = {"asks": [[ask[0], ask[1], "0", "1"]], "bids": [[bid[0], bid[1], "0", "1"]], "ts": str(event.ts_ms),
                   "seqId": event.update_id}
            last = self._last_trade.get(inst, bid)
            ticker = {"instType": "SPOT", "instId": inst, "last": last[0], "lastSz": last[1], "askPx": ask[0],
                      "askSz": ask[1], "bidPx": bid[0], "bidSz": bid[1], "ts": str(event.ts_ms)}
            return [_push("bbo-tbt", inst, [bbo]), _push("tickers", inst, [ticker])]
        return [self._trade(event)]

    def _trade(self, event: TradeEvent) -> tuple[str, str]:
        spec = event.spec
        px, sz = spec.px(event.ticks), spec.sz(event.lots)
        self._last_trade[spec.symbol] = (px, sz)
        data = {"instId": spec.symbol, "tradeId": str(event.trade_id), "px": px, "sz": sz,
                "side": "buy" if event.aggressor == Side.BUY else "sell", "ts": str(event.ts_ms), "count": "1",
                "source": "0", "seqId": event.trade_id}
        return _push("trades", spec.symbol, [data])

    def malformed(self, count: int) -> list[str]:
        inst = self._market.symbols(self.venue)[0]
        samples = [f'{{"arg":{{"channel":"books","instId":"{inst}"}},"action":"update","data":[{{"asks":[[',
                   "definitely not json",
                   f'{{"arg":{{"channel":"trades","instId":"{inst}"}},"data":[{{"px":"1","sz":"x","side":"buy"}}]}}']
        return [samples[i % len(samples)] for i in range(count)]

    def shutdown_notice(self) -> str:
        return json_text({"event": "notice", "code": "64008", "connId": "c0",
                      "msg": "The connection will soon be closed for a service upgrade. Please reconnect."})

    # -- REST ------------------------------------------------------------------------------------
    def register(self, router: Router, recording: Recording | None = None) -> None:
        """Public routes (a replayed session's frames are the hub's; the REST routes stay the random walk's)."""
        router.register("GET", "/api/v5/market/books", self._books)
        router.register("GET", "/api/v5/public/time", lambda r: ok_response([{"ts": str(now_ms())}]))
        router.register("GET", "/api/v5/public/instruments", self._instruments)

    def _books(self, request: Request) -> Response:
        inst = request.query.get("instId", "")
        if inst not in self._market.symbols(self.venue):
            return json_response({"code": "51001", "msg": "Instrument ID does not exist", "data": []})
        depth = min(int(request.query.get("sz", "1") or 1), 400)
        view = self._market.book(self.venue, inst, depth)
        spec = self._market.spec(self.venue, inst)
        return ok_response([{**_book_sides(spec, view), "ts": str(view.ts_ms), "seqId": view.update_id}])

    def _instruments(self, request: Request) -> Response:
        if request.query.get("instType", "SPOT") != "SPOT":
            return ok_response([])
        wanted = request.query.get("instId")
        symbols = self._market.symbols(self.venue)
        codes = inst_codes(symbols)
        specs = [self._market.spec(self.venue, s) for s in symbols if wanted in (None, s)]
        return ok_response([{"instType": "SPOT", "instId": s.symbol, "instIdCode": codes[s.symbol], "baseCcy": s.base,
                     "quoteCcy": s.quote, "tickSz": s.dec(s.tick), "lotSz": s.dec(s.lot), "minSz": s.dec(s.min_qty),
                     "state": "live", "maxLmtSz": "9999999999", "maxMktSz": "1000000", "ctVal": "", "settleCcy": ""}
                    for s in specs])


def _book_sides(spec: VenueSpec, view: BookView) -> dict[str, list[list[str]]]:
    return {
        "asks": [[spec.dec(lvl.price), spec.dec(lvl.qty), "0", "1"] for lvl in view.asks],
        "bids": [[spec.dec(lvl.price), spec.dec(lvl.qty), "0", "1"] for lvl in view.bids],
    }


def _levels(spec: VenueSpec, levels: tuple[tuple[int, int], ...]) -> list[list[str]]:
    return [[spec.px(p), spec.sz(q), "0", "1" if q else "0"] for p, q in levels]


def _push(channel: str, inst: str, data: list[dict[str, Any]], action: str | None = None) -> tuple[str, str]:
    payload: dict[str, Any] = {"arg": {"channel": channel, "instId": inst}}
    if action:
        payload["action"] = action
    payload["data"] = data
    return f"{channel}:{inst}", json_text(payload)


def ok_response(data: list[Any]) -> Response:
    return json_response({"code": "0", "msg": "", "data": data})
