"""Bybit v5 private WebSocket (``/v5/private``): ``auth``, then topics ``order``, ``execution``, ``wallet``.

Auth ``{"op": "auth", "args": [apiKey, expires, sign]}`` with sign = hex HMAC-SHA256(secret,
"GET/realtime" + expires) and ``expires`` (ms) still in the future; answered ``{"success", "ret_msg",
"op": "auth", "conn_id"}``. Subscribing before auth, or to another topic, answers ``success: false``.
Each order change pushes ``execution`` (a fill: ``execId``, ``execQty``, ``execPrice``, ``execFee``,
``leavesQty``; TRADE only), then ``order`` (the order as REST order/realtime tells it, cumulative) and
``wallet`` (the order's two coins), each as ``{"id", "topic", "creationTime", "data": [...]}``.
``{"op": "ping"}`` answers ``{"op": "pong", "args": [ms]}``.
"""

from __future__ import annotations

import itertools
from typing import Any, Final

import orjson

from kairos.config import SimConfig, VenueConfig
from kairos.execution.signing_bybit import bybit_ws_check
from kairos.records import Side, Venue
from kairos.sim.exchange import OrderUpdate, plain
from kairos.sim.private import PrivateSession, dumps
from kairos.sim.rest_bybit import WIRE_TYPE, wallet_item
from kairos.sim.router import now_ms

PATH: Final = "/v5/private"
TOPICS: Final = ("order", "execution", "wallet")


def execution_item(update: OrderUpdate) -> dict[str, Any]:
    """The fill of a TRADE change as one ``execution`` entry."""
    order = update.order
    assert update.last is not None
    px, qty, fee, trade_id = update.last
    return {
        "category": "spot", "symbol": order.symbol, "isLeverage": "0", "orderId": str(order.order_id),
        "orderLinkId": order.client_order_id, "side": "Buy" if order.side is Side.BUY else "Sell",
        "orderPrice": plain(order.price) if order.price else "0", "orderQty": plain(order.qty),
        "leavesQty": plain(order.qty - order.filled), "orderType": WIRE_TYPE[(order.kind, order.tif)][0],
        "stopOrderType": "", "execFee": plain(fee), "execId": str(trade_id), "execPrice": plain(px),
        "execQty": plain(qty), "execType": "Trade", "execValue": plain(px * qty), "execTime": str(update.ts_ms),
        "isMaker": order.kind != "MARKET", "feeRate": plain(fee / (qty if order.side is Side.BUY else px * qty)),
        "feeCurrency": order.fee_asset, "markPrice": "", "seq": trade_id,
    }


class BybitPrivate:
    venue = Venue.BYBIT
    path = PATH
    ping_interval_s = None

    def __init__(self, cfg: VenueConfig, sim: SimConfig) -> None:
        self._key, self._secret = cfg.api_key.reveal(), cfg.api_secret.reveal()
        self._ids = itertools.count(1)
        self.port = sim.venue("bybit").private_port
        self.trading: Any = None

    def on_text(self, session: PrivateSession, text: str) -> list[str]:
        try:
            msg = orjson.loads(text)
            op, req_id = msg["op"], msg.get("req_id", "")
            args = [str(a) for a in msg.get("args") or []]
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return [_answer(session, "", "", False, f"error:invalid request {text[:100]}")]
        if op == "ping":
            return [dumps({"req_id": req_id, "op": "pong", "args": [str(now_ms())], "conn_id": _conn(session)})]
        if op == "auth":
            session.authed = self._auth_ok(args)
            return [_answer(session, op, req_id, session.authed, "" if session.authed else "Request not authorized")]
        if op != "subscribe":
            return [_answer(session, str(op), req_id, False, f"error:unknown op {op}")]
        if not session.authed:
            return [_answer(session, op, req_id, False, "Request not authorized")]
        bad = [t for t in args if t not in TOPICS]
        if bad or not args:
            return [_answer(session, op, req_id, False, f"error:handler not found,topic:{','.join(bad)}")]
        session.subs.update(args)
        return [_answer(session, op, req_id, True, "")]

    def _auth_ok(self, args: list[str]) -> bool:
        if len(args) != 3 or not self._key or args[0] != self._key or not args[1].isdigit():
            return False
        return int(args[1]) > now_ms() and bybit_ws_check(self._secret, args[1], args[2])

    def render(self, update: OrderUpdate) -> list[tuple[str, Any]]:
        events: list[tuple[str, Any]] = [("execution", execution_item(update))] if update.last is not None else []
        return [*events, ("order", self.trading.order_item(update.order)), ("wallet", wallet_item(update.balances))]

    def wrap(self, session: PrivateSession, channel: str, event: Any) -> str:
        return dumps({"id": f"{session.id}-{next(self._ids)}", "topic": channel, "creationTime": now_ms(),
                      "data": [event]})

    def terminated(self, session: PrivateSession) -> list[str]:
        return []


def _conn(session: PrivateSession) -> str:
    return f"sim-{session.id}"


def _answer(session: PrivateSession, op: str, req_id: str, success: bool, message: str) -> str:
    return dumps({"success": success, "ret_msg": message, "op": op, "req_id": req_id, "conn_id": _conn(session)})
