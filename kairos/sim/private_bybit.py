"""Bybit v5 private WebSocket (``/v5/private``): ``auth``, then topics ``order``, ``execution``, ``wallet``.

Auth ``{"op": "auth", "args": [apiKey, expires, sign]}`` with sign = hex HMAC-SHA256(secret,
"GET/realtime" + expires) and ``expires`` (ms) still in the future; answered ``{"success", "ret_msg",
"op": "auth", "conn_id"}``. Subscribing before auth, or to another topic, answers ``success: false``.
Each order change pushes ``execution`` (a fill: ``execId``, ``execQty``, ``execPrice``, ``execFee``,
``leavesQty``; TRADE only), then ``order`` (the order as REST order/realtime tells it, cumulative) and
``wallet`` (the order's two coins), each as ``{"id", "topic", "creationTime", "data": [...]}`` (creationTime: the
change's time, also when a fault sends it late).
``{"op": "ping"}`` answers ``{"op": "pong", "args": [ms]}``.

The same server takes orders on ``/v5/trade``: ``auth`` (answered ``{"retCode": 0, "retMsg": "OK", "op":
"auth"}``), then ``{"reqId", "header": {X-BAPI-TIMESTAMP, X-BAPI-RECV-WINDOW?}, "op": "order.create" |
"order.cancel", "args": [REST body]}``: not authed 10003, timestamp outside the window 10002, not one spot
order 10001; counted by the venue's REST rate meter at the REST endpoint (over: 10006) and carried out by
the REST trading dialect (same checks, same ledger, same retCodes); the answer is REST's ``result`` as
``data`` with ``reqId``, ``retCode``, ``retMsg``, ``op`` and ``header.Timenow``.
"""

from __future__ import annotations

import itertools
from functools import partial
from typing import Any, Final

import orjson

from kairos.config import SimConfig, VenueConfig
from kairos.execution.signing_bybit import bybit_in_window, bybit_ws_check
from kairos.records import Side, Venue
from kairos.sim.exchange import BalanceChange, OrderUpdate, plain
from kairos.sim.private import PrivateSession, carried_out, dumps, over_limit
from kairos.sim.rest_bybit import WIRE_TYPE, wallet_item
from kairos.sim.router import Response, now_ms

PATH: Final = "/v5/private"
ORDER_PATH: Final = "/v5/trade"
TOPICS: Final = ("order", "execution", "wallet")
ORDER_OPS: Final = {"order.create": "/v5/order/create", "order.cancel": "/v5/order/cancel"}


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
    order_path = ORDER_PATH
    ping_interval_s = None

    def __init__(self, cfg: VenueConfig, sim: SimConfig) -> None:
        self._key, self._secret = cfg.api_key.reveal(), cfg.api_secret.reveal()
        self._ids = itertools.count(1)
        self.port = sim.venue("bybit").private_port
        self.trading: Any = None
        self.meter: Any = None

    def on_text(self, session: PrivateSession, text: str) -> list[str]:
        if session.conn is not None and session.conn.request.path == ORDER_PATH:
            return [self._on_order_socket(session, text)]
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

    def _auth_ok(self, args: list[Any]) -> bool:
        args = [str(a) for a in args]
        if len(args) != 3 or not self._key or args[0] != self._key or not args[1].isdigit():
            return False
        return int(args[1]) > now_ms() and bybit_ws_check(self._secret, args[1], args[2])

    # -- /v5/trade ------------------------------------------------------------------------------

    def _on_order_socket(self, session: PrivateSession, text: str) -> str:
        try:
            msg = orjson.loads(text)
            op, args = msg["op"], msg.get("args") or []
            reply = {"reqId": msg["reqId"]} if "reqId" in msg else {}
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return _op_reply(session, {}, "", 10001, f"invalid request {text[:100]}", {})
        if op == "ping":
            return dumps(reply | {"retCode": 0, "retMsg": "OK", "op": "pong", "data": [str(now_ms())],
                                  "connId": _conn(session)})
        if op == "auth":
            session.authed = isinstance(args, list) and self._auth_ok(args)
            code, message = (0, "OK") if session.authed else (10004, "Invalid sign")
            return dumps(reply | {"retCode": code, "retMsg": message, "op": op, "connId": _conn(session)})
        if op not in ORDER_OPS or self.trading is None:
            return _op_reply(session, reply, str(op), 10001, f"unknown op {op}", {})
        return self._order(session, reply, op, msg.get("header"), args)

    def _order(self, session: PrivateSession, reply: dict[str, Any], op: str, header: Any, args: Any) -> str:
        """One order operation: authed, stamped within the window, within the endpoint's limit, one spot order."""
        if not session.authed:
            return _op_reply(session, reply, op, 10003, "Request not authorized", {})
        header = header if isinstance(header, dict) else {}
        stamp, window = str(header.get("X-BAPI-TIMESTAMP", "")), str(header.get("X-BAPI-RECV-WINDOW", "5000"))
        if not (stamp.isdigit() and window.isdigit() and bybit_in_window(int(stamp), now_ms(), int(window))):
            return _op_reply(session, reply, op, 10002, "invalid request, please check your server timestamp "
                                                        "or recv_window param", {})
        refusal = over_limit(self.meter, "POST", ORDER_OPS[op])
        if refusal is not None:
            body = orjson.loads(refusal.body)
            return _op_reply(session, reply, op, body["retCode"], body["retMsg"], {})
        if not (isinstance(args, list) and len(args) == 1 and isinstance(args[0], dict)
                and args[0].get("category") == "spot"):
            return _op_reply(session, reply, op, 10001, "params error: one spot order in args", {})
        session.ordered = True
        body = orjson.loads(self._carry_out(op, {str(k): v for k, v in args[0].items()}).body)
        return _op_reply(session, reply, op, body["retCode"], body["retMsg"], body.get("result") or {})

    def _carry_out(self, op: str, params: dict[str, Any]) -> Response:
        handler = self.trading.place if op == "order.create" else self.trading.cancel
        return carried_out(partial(handler, None, params), partial(self.trading.refused, request=None))

    def render(self, update: OrderUpdate) -> list[tuple[str, Any]]:
        """Each event with the change's time: the message's ``creationTime`` is when the venue made it, so a push
        the delay fault holds back still tells its balances as of then."""
        at = update.ts_ms
        fill: list[tuple[str, Any]] = [("execution", (at, execution_item(update)))] if update.last is not None else []
        return [*fill, ("order", (at, self.trading.order_item(update.order))),
                ("wallet", (at, wallet_item(update.balances)))]

    def render_balance(self, change: BalanceChange) -> list[tuple[str, Any]]:
        return [("wallet", (change.ts_ms, wallet_item(change.balances)))]

    def wrap(self, session: PrivateSession, channel: str, event: Any) -> str:
        created_ms, item = event
        return dumps({"id": f"{session.id}-{next(self._ids)}", "topic": channel, "creationTime": created_ms,
                      "data": [item]})

    def terminated(self, session: PrivateSession) -> list[str]:
        return []


def _conn(session: PrivateSession) -> str:
    return f"sim-{session.id}"


def _op_reply(session: PrivateSession, reply: dict[str, Any], op: str, code: int, message: str,
              data: dict[str, Any]) -> str:
    return dumps(reply | {"retCode": code, "retMsg": message, "op": op, "data": data, "retExtInfo": {},
                          "header": {"Timenow": str(now_ms())}, "connId": _conn(session)})


def _answer(session: PrivateSession, op: str, req_id: str, success: bool, message: str) -> str:
    return dumps({"success": success, "ret_msg": message, "op": op, "req_id": req_id, "conn_id": _conn(session)})
