"""Binance Spot user data over the WebSocket API (2026): ``userDataStream.subscribe.signature``.

The client sends ``{"id", "method": "userDataStream.subscribe.signature", "params": {apiKey,
timestamp, recvWindow?, signature}}`` where signature = hex HMAC-SHA256 of the other params sorted
by name as ``k=v&...``; the reply's ``result.subscriptionId`` tags every event
``{"subscriptionId": n, "event": {...}}``: executionReport per order change, then
outboundAccountPosition with the order's two assets. ``ping`` answers ``{}``; server pings are
protocol pings every ``sim.venues.binance.ping_interval_s``.

Orders on the same API: ``order.place`` / ``order.cancel`` take the REST parameters plus ``apiKey``,
``timestamp``, ``recvWindow`` and ``signature`` (signed like the subscription) and are carried out by the
REST trading dialect (kairos/sim/rest_binance.py): the reply's ``result`` is the REST body, a refusal is
``{"id", "status": 400, "error": {"code", "msg"}}`` with the REST code and text.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any, Final

import orjson

from kairos.config import SimConfig, VenueConfig
from kairos.execution.signing import percent_encode
from kairos.execution.signing_binance import binance_check
from kairos.records import Venue
from kairos.sim.exchange import OrderUpdate, SimRefused, plain
from kairos.sim.private import PrivateSession, dumps
from kairos.sim.router import HttpError, now_ms

PATH: Final = "/ws-api/v3"
CHANNEL: Final = "user"
ORDER_METHODS: Final = ("order.place", "order.cancel")
SIGNED: Final = ("apiKey", "signature")
RATE_LIMITS: Final = [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000,
                       "count": 2}]


def execution_report(update: OrderUpdate) -> dict[str, Any]:
    order, last = update.order, update.last
    px, qty, fee, trade_id = last if last is not None else (Decimal(0), Decimal(0), Decimal(0), -1)
    return {
        "e": "executionReport", "E": update.ts_ms, "s": order.symbol, "c": order.client_order_id,
        "S": order.side.name, "o": order.kind, "f": order.tif, "q": plain(order.qty),
        "p": plain(order.price or Decimal(0)), "x": update.exec_type, "X": order.status.value, "r": "NONE",
        "i": order.order_id, "l": plain(qty), "z": plain(order.filled), "L": plain(px), "n": plain(fee),
        "N": order.fee_asset if last is not None else None, "T": order.updated_ms or update.ts_ms, "t": trade_id,
        "w": order.status.value in ("NEW", "PARTIALLY_FILLED"), "m": last is not None and order.kind != "MARKET",
        "O": order.created_ms, "Z": plain(order.quote), "Y": plain(px * qty),
    }


class BinancePrivate:
    venue = Venue.BINANCE
    path = PATH

    def __init__(self, cfg: VenueConfig, sim: SimConfig) -> None:
        self._key, self._secret = cfg.api_key.reveal(), cfg.api_secret.reveal()
        self._sub_ids = itertools.count(0)
        rules = sim.venue("binance")
        self.ping_interval_s = rules.ping_interval_s or None
        self.port = rules.private_port
        self.trading: Any = None

    def on_text(self, session: PrivateSession, text: str) -> list[str]:
        try:
            msg = orjson.loads(text)
            rid, method, params = msg.get("id"), msg["method"], msg.get("params") or {}
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return [_error(None, 400, -1000, "Malformed request.")]
        if method == "ping":
            return [dumps({"id": rid, "status": 200, "result": {}, "rateLimits": RATE_LIMITS})]
        if method in ORDER_METHODS and self.trading is not None:
            return [self._order(session, rid, method, params)]
        if method != "userDataStream.subscribe.signature":
            return [_error(rid, 400, -1000, f"Unknown method '{method}'.")]
        refusal = self._check(params)
        if refusal:
            return [_error(rid, 400, *refusal)]
        session.tag = sub = next(self._sub_ids)
        session.authed = True
        session.subs.add(CHANNEL)
        return [dumps({"id": rid, "status": 200, "result": {"subscriptionId": sub}, "rateLimits": RATE_LIMITS})]

    def _order(self, session: PrivateSession, rid: Any, method: str, params: dict[str, Any]) -> str:
        """order.place / order.cancel through the REST trading dialect's own handler (same checks, same ledger)."""
        refusal = self._check(params)
        if refusal:
            return _error(rid, 400, *refusal)
        session.ordered = True
        fields = {str(k): str(v) for k, v in params.items() if k not in SIGNED}
        handler = self.trading.place if method == "order.place" else self.trading.cancel
        try:
            response = handler(None, fields)
        except HttpError as exc:
            response = exc.response
        except SimRefused as exc:
            response = self.trading.refused(exc, None)
        body = orjson.loads(response.body)
        if response.status >= 400:
            return _error(rid, response.status, body["code"], body["msg"])
        return dumps({"id": rid, "status": 200, "result": body, "rateLimits": RATE_LIMITS})

    def _check(self, params: dict[str, Any]) -> tuple[int, str] | None:
        signature = str(params.get("signature", ""))
        rest = sorted((str(k), str(v)) for k, v in params.items() if k != "signature")
        if not self._key or params.get("apiKey") != self._key:
            return -2015, "Invalid API-key, IP, or permissions for action."
        if not binance_check(self._secret, percent_encode(rest), signature):
            return -1022, "Signature for this request is not valid."
        try:
            stamp, window = int(params["timestamp"]), float(params.get("recvWindow") or 5000)
        except (KeyError, TypeError, ValueError):
            return -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
        now = now_ms()
        if stamp >= now + 1000 or now - stamp > window:
            return -1021, "Timestamp for this request is outside of the recvWindow."
        return None

    def render(self, update: OrderUpdate) -> list[tuple[str, Any]]:
        position = {"e": "outboundAccountPosition", "E": update.ts_ms, "u": update.ts_ms,
                    "B": [{"a": a, "f": plain(f), "l": plain(lk)} for a, (f, lk) in sorted(update.balances.items())]}
        return [(CHANNEL, execution_report(update)), (CHANNEL, position)]

    def wrap(self, session: PrivateSession, channel: str, event: Any) -> str:
        return dumps({"subscriptionId": session.tag, "event": event})

    def terminated(self, session: PrivateSession) -> list[str]:
        if CHANNEL not in session.subs:
            return []
        return [self.wrap(session, CHANNEL, {"e": "eventStreamTerminated", "E": now_ms()})]


def _error(rid: Any, status: int, code: int, msg: str) -> str:
    return dumps({"id": rid, "status": status, "error": {"code": code, "msg": msg}})
