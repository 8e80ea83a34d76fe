"""OKX v5 private WebSocket: ``login``, then ``orders`` (SPOT) and ``account``.

Login sign = base64(HMAC-SHA256(secret, unix-seconds + "GET" + "/users/self/verify")). An
``orders`` push carries the cumulative order (``accFillSz``, ``avgPx``, ``fee`` negative = paid,
parsed like REST by `okx.order_view`) and this fill (``tradeId``, ``fillSz``, ``fillPx``,
``fillFee``); ``account`` the balances as of ``uTime``. Heartbeat: the text ``ping`` (answer ``pong``).
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from kairos.execution.okx import order_view, ws_login_frame
from kairos.execution.state import OrderView, TradeFill
from kairos.execution.stream import Parsed, PrivateStream

SUBSCRIBE: Final = orjson.dumps({"op": "subscribe", "args": [{"channel": "orders", "instType": "SPOT"},
                                                            {"channel": "account"}]}).decode()


def order_update(item: dict[str, Any]) -> tuple[OrderView, TradeFill | None]:
    view = order_view(item)
    if not item.get("tradeId"):
        return view, None
    fee = -float(item.get("fillFee") or 0)
    return view, TradeFill(str(item["tradeId"]), float(item["fillSz"]), float(item["fillPx"]), fee,
                           item.get("fillFeeCcy") or view.fee_asset)


class OkxStream(PrivateStream):
    name = "okx"
    heartbeat = "ping"
    open_routes = (("GET", "/ws/v5/private"),)  # 3 connects a second per IP; login/subscribe count per connection

    def open_frames(self) -> list[str]:
        return [ws_login_frame(self._key, self._passphrase, self._secret, self._now_ms())]

    def parse(self, text: str) -> Parsed:
        if text == "pong":
            return Parsed()
        msg = orjson.loads(text)
        event = msg.get("event")
        if event == "login":
            return Parsed(send=[SUBSCRIBE]) if msg.get("code") == "0" else Parsed(refused=_said(msg))
        if event == "subscribe":
            return Parsed(ready=msg["arg"]["channel"] == "orders")
        if event == "error":
            return Parsed(refused=_said(msg))
        channel = msg["arg"]["channel"]
        if channel == "orders":
            return Parsed(orders=[order_update(item) for item in msg["data"]])
        if channel == "account":
            return Parsed(balances={d["ccy"]: (float(d["availBal"] or 0), float(d["frozenBal"] or 0))
                                    for item in msg["data"] for d in item["details"]},
                          balances_ms=max((int(item.get("uTime") or 0) for item in msg["data"]), default=0))
        raise ValueError(f"unknown channel {channel!r}")


def _said(msg: dict[str, Any]) -> str:
    return f"{msg.get('code', '')} {msg.get('msg', '')}"
