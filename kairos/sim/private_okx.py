"""OKX v5 private WebSocket: ``login`` then ``subscribe`` to ``orders`` (SPOT) and ``account``.

Login ``{"op": "login", "args": [{apiKey, passphrase, timestamp (unix s), sign}]}`` with sign =
base64(HMAC-SHA256(secret, timestamp + "GET" + "/users/self/verify")); subscribing before login
answers 60011. Each order change pushes ``orders`` (cumulative ``accFillSz``/``fee``, this fill's
``tradeId``/``fillSz``/``fillPx``/``fillFee``) then ``account`` with the order's two assets. The
text ``ping`` answers ``pong``.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any, Final

import orjson

from kairos.config import SimConfig, VenueConfig
from kairos.execution.signing_okx import okx_check
from kairos.records import Venue
from kairos.sim.exchange import OrderUpdate, plain
from kairos.sim.private import PrivateSession, dumps
from kairos.sim.rest_okx import STATES, WIRE_TYPE

PATH: Final = "/ws/v5/private"
CHANNELS: Final = ("orders", "account")
SKEW_S: Final = 30
UID: Final = "44705892343619584"


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

    def on_text(self, session: PrivateSession, text: str) -> list[str]:
        if text == "ping":
            return ["pong"]
        try:
            msg = orjson.loads(text)
            op, args = msg["op"], list(msg["args"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return [_error("60012", f"Invalid request: {text[:100]}")]
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

    def _login_ok(self, arg: Any) -> bool:
        if not isinstance(arg, dict) or not self._key or arg.get("apiKey") != self._key:
            return False
        stamp = str(arg.get("timestamp", ""))
        if arg.get("passphrase") != self._passphrase or not stamp.isdigit() or abs(time.time() - int(stamp)) > SKEW_S:
            return False
        return okx_check(self._secret, stamp, "GET", "/users/self/verify", "", str(arg.get("sign", "")))

    def render(self, update: OrderUpdate) -> list[tuple[str, Any]]:
        now = str(update.ts_ms)
        details = [{"ccy": a, "availBal": plain(free), "frozenBal": plain(locked), "cashBal": plain(free + locked),
                    "eq": plain(free + locked), "uTime": now} for a, (free, locked) in sorted(update.balances.items())]
        return [("orders", order_data(update)), ("account", {"uTime": now, "totalEq": "", "details": details})]

    def wrap(self, session: PrivateSession, channel: str, event: Any) -> str:
        arg = {"channel": channel, "instType": "SPOT", "uid": UID} if channel == "orders" else \
            {"channel": channel, "uid": UID}
        return dumps({"arg": arg, "data": [event]})

    def terminated(self, session: PrivateSession) -> list[str]:
        return []


def _error(code: str, msg: str) -> str:
    return dumps({"event": "error", "code": code, "msg": msg})
