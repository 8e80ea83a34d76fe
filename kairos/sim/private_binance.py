"""Binance Spot user data over the WebSocket API (2026): ``userDataStream.subscribe.signature``.

The client sends ``{"id", "method": "userDataStream.subscribe.signature", "params": {apiKey,
timestamp, recvWindow?, signature}}`` where signature = hex HMAC-SHA256 of the other params sorted
by name as ``k=v&...``; the reply's ``result.subscriptionId`` tags every event
``{"subscriptionId": n, "event": {...}}``: executionReport per order change, then
outboundAccountPosition with the order's two assets; a deposit or withdrawal: balanceUpdate then
outboundAccountPosition with that asset. ``ping`` answers ``{}``; server pings are
protocol pings every ``sim.venues.binance.ping_interval_s``.

Orders on the same API: ``order.place`` / ``order.cancel`` take the REST parameters plus ``apiKey``,
``timestamp``, ``recvWindow`` and ``signature`` (signed like the subscription) and are carried out by the
REST trading dialect (kairos/sim/rest_binance.py): the reply's ``result`` is the REST body, a refusal is
``{"id", "status": 400, "error": {"code", "msg"}}`` with the REST code and text. An Ed25519 key (the
configured secret a PEM private key: kairos/execution/signing_binance.py) may ``session.logon`` (signed, weight
2); that connection's requests may then leave out ``apiKey`` and ``signature`` (``timestamp`` and
``recvWindow`` are still checked). An HMAC key's logon is refused with -4056, as Binance does.

Rate limits: every request is charged to the venue's REST meter (kairos/sim/ratelimit.py) at its REST
twin's weight (order.place = POST /api/v3/order, ...; others 1), and every reply's ``rateLimits`` tells
that meter's REQUEST_WEIGHT count. Over the limit the answer is ``status`` 429 (then 418 when repeated,
as REST) with ``error`` ``{"code": -1003, "msg", "data": {"serverTime", "retryAfter"}}`` (epoch ms).
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from functools import partial
from typing import Any, Final

import orjson

from kairos.config import SimConfig, VenueConfig
from kairos.execution.signing import percent_encode
from kairos.execution.signing_binance import binance_check, is_ed25519
from kairos.records import Venue
from kairos.sim.exchange import BalanceChange, OrderUpdate, plain
from kairos.sim.private import PrivateSession, carried_out, dumps, over_limit
from kairos.sim.router import now_ms

PATH: Final = "/ws-api/v3"
CHANNEL: Final = "user"
ORDER_METHODS: Final = ("order.place", "order.cancel")
SIGNED: Final = ("apiKey", "signature")
REST_TWIN: Final = {"order.place": ("POST", "/api/v3/order"), "order.cancel": ("DELETE", "/api/v3/order"),
                     "ping": ("GET", "/api/v3/ping")}


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
    connect_route = ("GET", PATH)  # a WS API connection costs 2 REQUEST_WEIGHT (kairos/ratelimit/binance.py)

    def __init__(self, cfg: VenueConfig, sim: SimConfig) -> None:
        self._key, self._secret = cfg.api_key.reveal(), cfg.api_secret.reveal()
        self._sub_ids = itertools.count(0)
        rules = sim.venue("binance")
        self.ping_interval_s = rules.ping_interval_s or None
        self.port = rules.private_port
        self.trading: Any = None
        self.meter: Any = None

    def on_text(self, session: PrivateSession, text: str) -> list[str]:
        try:
            msg = orjson.loads(text)
            rid, method, params = msg.get("id"), msg["method"], msg.get("params") or {}
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return [_error(None, 400, -1000, "Malformed request.")]
        limited = self._charge(rid, str(method))
        if limited:
            return [limited]
        if method == "ping":
            return [dumps({"id": rid, "status": 200, "result": {}, "rateLimits": self._limits()})]
        if method in ORDER_METHODS and self.trading is not None:
            return [self._order(session, rid, method, params)]
        if method == "session.logon":
            return [self._logon(session, rid, params)]
        if method != "userDataStream.subscribe.signature":
            return [_error(rid, 400, -1000, f"Unknown method '{method}'.")]
        refusal = self._check(params)
        if refusal:
            return [_error(rid, 400, *refusal)]
        session.tag = sub = next(self._sub_ids)
        session.authed = True
        session.subs.add(CHANNEL)
        return [dumps({"id": rid, "status": 200, "result": {"subscriptionId": sub}, "rateLimits": self._limits()})]

    def _logon(self, session: PrivateSession, rid: Any, params: dict[str, Any]) -> str:
        """``session.logon``: signed like any request; Ed25519 keys only."""
        refusal = self._check(params)
        if refusal:
            return _error(rid, 400, *refusal)
        if not is_ed25519(self._secret):
            return _error(rid, 400, -4056, "HMAC_SHA256 API key is not supported.")
        session.logon = self._key
        now = now_ms()
        return dumps({"id": rid, "status": 200, "result": {
            "apiKey": self._key, "authorizedSince": now, "connectedSince": now, "returnRateLimits": True,
            "serverTime": now, "userDataStream": CHANNEL in session.subs}, "rateLimits": self._limits()})

    def _order(self, session: PrivateSession, rid: Any, method: str, params: dict[str, Any]) -> str:
        """order.place / order.cancel through the REST trading dialect's own handler (same checks, same ledger);
        unsigned on a logged-on connection."""
        unsigned = session.logon and "signature" not in params and params.get("apiKey", session.logon) == session.logon
        refusal = self._check_time(params) if unsigned else self._check(params)
        if refusal:
            return _error(rid, 400, *refusal)
        session.ordered = True
        fields = {str(k): str(v) for k, v in params.items() if k not in SIGNED}
        handler = self.trading.place if method == "order.place" else self.trading.cancel
        response = carried_out(partial(handler, None, fields), partial(self.trading.refused, request=None))
        if response.status >= 400:
            body = orjson.loads(response.body)
            return _error(rid, response.status, body["code"], body["msg"])
        return dumps({"id": rid, "status": 200, "result": orjson.Fragment(response.body),  # REST's body as it is
                      "rateLimits": self._limits()})

    def _charge(self, rid: Any, method: str) -> str:
        """Count the request in the REST meter's window; the -1003 answer (429, or 418 banned) if refused."""
        http_method, path = REST_TWIN.get(method, ("POST", f"/ws-api/v3/{method}"))
        refusal = over_limit(self.meter, http_method, path)
        if refusal is None:
            return ""
        status, now = refusal.status, now_ms()
        retry_ms = 1000 * int(refusal.headers.get("Retry-After", "1"))
        msg = (f"Way too much request weight used; IP banned until {now + retry_ms}. Please use WebSocket "
               "Streams for live updates to avoid bans." if status == 418 else
               f"Too much request weight used; current limit is {self.meter.limits.windows[0].limit} request "
               "weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.")
        return dumps({"id": rid, "status": status, "error": {"code": -1003, "msg": msg, "data": {
            "serverTime": now, "retryAfter": now + retry_ms}}, "rateLimits": self._limits()})

    def _limits(self) -> list[dict[str, Any]]:
        """The ``rateLimits`` of a reply: the REST meter's REQUEST_WEIGHT window and count."""
        limit, used = (self.meter.limits.windows[0].limit, self.meter.used()) if self.meter is not None else (6000, 0)
        return [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": limit,
                 "count": used}]

    def _check(self, params: dict[str, Any]) -> tuple[int, str] | None:
        signature = str(params.get("signature", ""))
        rest = sorted((str(k), str(v)) for k, v in params.items() if k != "signature")
        if not self._key or params.get("apiKey") != self._key:
            return -2015, "Invalid API-key, IP, or permissions for action."
        if not binance_check(self._secret, percent_encode(rest), signature):
            return -1022, "Signature for this request is not valid."
        return self._check_time(params)

    @staticmethod
    def _check_time(params: dict[str, Any]) -> tuple[int, str] | None:
        try:
            stamp, window = int(params["timestamp"]), float(params.get("recvWindow") or 5000)
        except (KeyError, TypeError, ValueError):
            return -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
        now = now_ms()
        if stamp >= now + 1000 or now - stamp > window:
            return -1021, "Timestamp for this request is outside of the recvWindow."
        return None

    def render(self, update: OrderUpdate) -> list[tuple[str, Any]]:
        return [(CHANNEL, execution_report(update)), (CHANNEL, account_position(update.balances, update.ts_ms))]

    def render_balance(self, change: BalanceChange) -> list[tuple[str, Any]]:
        update = {"e": "balanceUpdate", "E": change.ts_ms, "a": change.asset, "d": plain(change.delta),
                  "T": change.ts_ms}
        return [(CHANNEL, update), (CHANNEL, account_position(change.balances, change.ts_ms))]

    def wrap(self, session: PrivateSession, channel: str, event: Any) -> str:
        return dumps({"subscriptionId": session.tag, "event": event})

    def terminated(self, session: PrivateSession) -> list[str]:
        if CHANNEL not in session.subs:
            return []
        return [self.wrap(session, CHANNEL, {"e": "eventStreamTerminated", "E": now_ms()})]


def account_position(balances: dict[str, tuple[Decimal, Decimal]], ts_ms: int) -> dict[str, Any]:
    return {"e": "outboundAccountPosition", "E": ts_ms, "u": ts_ms,
            "B": [{"a": a, "f": plain(f), "l": plain(lk)} for a, (f, lk) in sorted(balances.items())]}


def _error(rid: Any, status: int, code: int, msg: str) -> str:
    return dumps({"id": rid, "status": status, "error": {"code": code, "msg": msg}})
