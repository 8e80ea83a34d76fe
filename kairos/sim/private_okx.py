"""OKX v5 private WebSocket: ``login`` then ``subscribe`` to ``orders`` (SPOT) and ``account``.

Login ``{"op": "login", "args": [{apiKey, passphrase, timestamp (unix s), sign}]}`` with sign =
base64(HMAC-SHA256(secret, timestamp + "GET" + "/users/self/verify")); subscribing before login
answers 60011. Each order change pushes ``orders`` (cumulative ``accFillSz``/``fee``, this fill's
``tradeId``/``fillSz``/``fillPx``/``fillFee``) then ``account`` with the order's two assets. The
text ``ping`` answers ``pong``.

Orders on the same connection after login: ``{"id", "op": "order" | "cancel-order", "args": [{instIdCode, ...}]}``
(one order per request; ``expTime`` at the top of a place). The ``instIdCode`` the public instruments endpoint
publishes (kairos/sim/okx.py ``inst_codes``) names the instrument: missing 50014, unknown 51001. Each request is
counted by the venue's REST rate meter at its REST twin's endpoint (over the limit: code 50011) and carried out
by the REST trading dialect (kairos/sim/rest_okx.py: same checks, same ledger); the reply is REST's body with
``id`` and ``op``.
"""

from __future__ import annotations

import time
from decimal import Decimal
from functools import partial
from typing import Any, Final

import orjson

from kairos.config import SimConfig, VenueConfig
from kairos.execution.signing_okx import okx_check
from kairos.records import Venue
from kairos.sim.exchange import BalanceChange, OrderUpdate, plain
from kairos.sim.okx import inst_codes
from kairos.sim.private import PrivateSession, carried_out, dumps, over_limit
from kairos.sim.rest_okx import STATES, WIRE_TYPE
from kairos.sim.router import Response, now_ms

PATH: Final = "/ws/v5/private"
CHANNELS: Final = ("orders", "account")
SKEW_S: Final = 30
UID: Final = "44705892343619584"
ORDER_OPS: Final = {"order": "/api/v5/trade/order", "cancel-order": "/api/v5/trade/cancel-order"}


def order_data(update: OrderUpdate) -> dict[str, Any]:
    order, last = update.order, update.last
    px, qty, fee, trade_id = last if last is not None else (Decimal(0), Decimal(0), Decimal(0), 0)
    avg = order.quote / order.filled if order.filled else Decimal(0)
    return {
        "instType": "SPOT", "instId": order.symbol, "ordId": str(order.order_id), "clOrdId": order.client_order_id,
        "px": plain(order.price) if order.price else "", "sz": plain(order.qty),
        "ordType": WIRE_TYPE[(order.kind, order.tif)], "side": order.side.name.lower(), "tdMode": "cash",
        "state": STATES[order.status], "accFillSz": plain(order.filled), "avgPx": plain(avg) if order.filled else "",
        "fillSz": plain(qty) if last else "0", "fillPx": plain(px) if last else "",
        "tradeId": str(trade_id) if last else "", "fillFee": plain(-fee) if last else "0",
        "fillFeeCcy": order.fee_asset if last else "", "fee": plain(-order.fee) if order.fee else "0",
        "feeCcy": order.fee_asset, "execType": ("M" if order.kind != "MARKET" else "T") if last else "",
        "fillTime": str(update.ts_ms) if last else "", "cTime": str(order.created_ms),
        "uTime": str(order.updated_ms or update.ts_ms),
    }


class OkxPrivate:
    venue = Venue.OKX
    path = PATH
    ping_interval_s = None

    def __init__(self, cfg: VenueConfig, sim: SimConfig) -> None:
        self._key, self._secret, self._passphrase = (cfg.api_key.reveal(), cfg.api_secret.reveal(),
                                                     cfg.passphrase.reveal())
        self.port = sim.venue("okx").private_port
        self.trading: Any = None
        self.meter: Any = None
        self._symbols: dict[int, str] = {}

    def on_text(self, session: PrivateSession, text: str) -> list[str]:
        if text == "ping":
            return ["pong"]
        try:
            msg = orjson.loads(text)
            op, args = msg["op"], list(msg["args"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return [_error("60012", f"Invalid request: {text[:100]}")]
        if op in ORDER_OPS and self.trading is not None:
            return [_op_reply(msg.get("id"), op, self._order(session, msg, op, args))]
        if op == "login":
            if not self._login_ok(args[0] if args else {}):
                return [_error("60009", "Login failed.")]
            session.authed = True
            return [dumps({"event": "login", "code": "0", "msg": "", "connId": str(session.id)})]
        if op != "subscribe":
            return [_error("60012", f"Invalid request: {text[:100]}")]
        if not session.authed:
            return [_error("60011", "Please log in")]
        replies = []
        for arg in args:
            channel = arg.get("channel") if isinstance(arg, dict) else None
            if channel not in CHANNELS:
                replies.append(_error("60018", f"Wrong URL or channel:{channel} doesn't exist."))
                continue
            session.subs.add(channel)
            replies.append(dumps({"event": "subscribe", "arg": arg, "connId": str(session.id)}))
        return replies

    def _order(self, session: PrivateSession, msg: dict[str, Any], op: str, args: list[Any]) -> dict[str, Any]:
        """One order operation: logged in, within the endpoint's rate limit, one order naming a known instIdCode."""
        if not session.authed:
            return {"code": "60011", "msg": "Please log in", "data": []}
        refusal = over_limit(self.meter, "POST", ORDER_OPS[op])
        if refusal is not None:
            return orjson.loads(refusal.body)
        if len(args) != 1 or not isinstance(args[0], dict):
            return {"code": "60013", "msg": "Invalid args", "data": []}
        fields = {str(k): v for k, v in args[0].items() if k not in ("instId", "instIdCode")}
        code = args[0].get("instIdCode")
        if code is None:
            return _op_failed(fields, "50014", "Parameter instIdCode can not be empty")
        fields["instId"] = self._symbol(code)
        if not fields["instId"]:
            return _op_failed(fields, "51001", "Instrument ID or Spread ID doesn't exist.")
        session.ordered = True
        return orjson.loads(self._carry_out(op, fields, str(msg.get("expTime") or "")).body)

    def _carry_out(self, op: str, fields: dict[str, Any], deadline: str) -> Response:
        order = partial(self.trading.place_order, fields, deadline) if op == "order" else \
            partial(self.trading.cancel, None, fields)
        return carried_out(order, partial(self.trading.op_refused, params=fields))

    def _symbol(self, code: Any) -> str:
        """The instId of an instIdCode ("" when none has it); the table is the public endpoint's."""
        if not self._symbols:
            self._symbols = {c: s for s, c in inst_codes(self.trading.market.symbols(self.venue)).items()}
        return self._symbols.get(code, "") if isinstance(code, int) and not isinstance(code, bool) else ""

    def _login_ok(self, arg: Any) -> bool:
        if not isinstance(arg, dict) or not self._key or arg.get("apiKey") != self._key:
            return False
        stamp = str(arg.get("timestamp", ""))
        if arg.get("passphrase") != self._passphrase or not stamp.isdigit() or abs(time.time() - int(stamp)) > SKEW_S:
            return False
        return okx_check(self._secret, stamp, "GET", "/users/self/verify", "", str(arg.get("sign", "")))

    def render(self, update: OrderUpdate) -> list[tuple[str, Any]]:
        return [("orders", order_data(update)), ("account", account_data(update.balances, update.ts_ms))]

    def render_balance(self, change: BalanceChange) -> list[tuple[str, Any]]:
        return [("account", account_data(change.balances, change.ts_ms))]

    def wrap(self, session: PrivateSession, channel: str, event: Any) -> str:
        arg = {"channel": channel, "instType": "SPOT", "uid": UID} if channel == "orders" else \
            {"channel": channel, "uid": UID}
        return dumps({"arg": arg, "data": [event]})

    def terminated(self, session: PrivateSession) -> list[str]:
        return []


def _op_failed(fields: dict[str, Any], code: str, msg: str) -> dict[str, Any]:
    item = {"clOrdId": str(fields.get("clOrdId", "")), "ordId": "", "tag": "", "ts": str(now_ms()), "sCode": code,
            "sMsg": msg, "subCode": ""}
    return {"code": "1", "msg": "All operations failed", "data": [item]}


def _op_reply(rid: Any, op: str, body: dict[str, Any]) -> str:
    now_us = str(time.time_ns() // 1000)
    return dumps({"id": rid, "op": op, "code": body.get("code", "1"), "msg": body.get("msg", ""),
                  "data": body.get("data", []), "inTime": body.get("inTime", now_us), "outTime": now_us})


def account_data(balances: dict[str, tuple[Decimal, Decimal]], ts_ms: int) -> dict[str, Any]:
    now = str(ts_ms)
    details = [{"ccy": a, "availBal": plain(free), "frozenBal": plain(locked), "cashBal": plain(free + locked),
                "eq": plain(free + locked), "uTime": now} for a, (free, locked) in sorted(balances.items())]
    return {"uTime": now, "totalEq": "", "details": details}


def _error(code: str, msg: str) -> str:
    return dumps({"event": "error", "code": code, "msg": msg})
