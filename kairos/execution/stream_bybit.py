"""Bybit v5 private WebSocket (``/v5/private``): ``auth``, then ``order``, ``execution`` and ``wallet``.

Auth ``{"op": "auth", "args": [apiKey, expires, hex HMAC-SHA256(secret, "GET/realtime" + expires)]}``
(expires: now + recv window, ms). The two order topics split what the other venues send together:

- ``order``: the cumulative order (``cumExecQty``, ``cumExecValue``, ``cumExecFee``) and no trade id,
  parsed like REST by `bybit.order_view` and applied as a cumulative view: a duplicate or a late push
  changes nothing (the tracker only moves forward);
- ``execution``: one fill (``execId``, ``execQty``, ``execPrice``, ``execFee``) without cumulative value;
  its view says how much of the order is done (``orderQty - leavesQty``) and the tracker reports the
  fill with its own price and fee, idempotent by ``execId``, or only records the id when an ``order``
  push already covered it. Whichever topic arrives first reports a fill once.

``wallet`` carries the balances, as of the message's ``creationTime`` (the venue's clock, like the fills'
``execTime``; the local clock only when it is missing). Heartbeat ``{"op": "ping"}`` (answered ``{"op": "pong"}``).
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from kairos.execution.bybit import SIDES, auth_args, num, order_view, wallet_balances
from kairos.execution.state import OrderView, TradeFill
from kairos.execution.stream import Parsed, PrivateStream
from kairos.records import OrderState, Side

TOPICS: Final = ("order", "execution", "wallet")
SUBSCRIBE: Final = orjson.dumps({"req_id": "subscribe", "op": "subscribe", "args": list(TOPICS)}).decode()
SPOT: Final = "spot"


def execution_fill(item: dict[str, Any]) -> tuple[OrderView, TradeFill]:
    """One ``execution`` entry: the order as far as this fill (no cumulative value or fee) and the fill."""
    order_qty, leaves = num(item["orderQty"]), num(item["leavesQty"])
    fee_asset = item.get("feeCurrency") or ""
    view = OrderView(
        client_order_id=item["orderLinkId"], state=OrderState.PARTIAL if leaves > 0 else OrderState.FILLED,
        cum_qty=order_qty - leaves, cum_quote=0.0, fee_cum=None, fee_asset=fee_asset,
        venue_order_id=int(item["orderId"]), symbol=item["symbol"], side=SIDES.get(item.get("side", ""), Side.NONE),
        price=num(item.get("orderPrice")), qty=order_qty, ts_exchange_ns=int(item["execTime"]) * 1_000_000)
    return view, TradeFill(str(item["execId"]), float(item["execQty"]), float(item["execPrice"]),
                           float(item["execFee"]), fee_asset)


class BybitStream(PrivateStream):
    name = "bybit"
    heartbeat = orjson.dumps({"req_id": "heartbeat", "op": "ping"}).decode()
    open_routes = (("GET", "/v5/private"),)  # 500 connections per 5 minutes per IP; auth/subscribe/ping: no cost

    def open_frames(self) -> list[str]:
        args = auth_args(self._key, self._secret, self._now_ms() + self._recv_window_ms)
        return [orjson.dumps({"req_id": "auth", "op": "auth", "args": args}).decode()]

    def parse(self, text: str) -> Parsed:
        msg = orjson.loads(text)
        topic = msg.get("topic")
        if topic is None:
            return _reply(msg)
        data = [item for item in msg["data"] if item.get("category", SPOT) == SPOT]
        if topic == "order":
            return Parsed(orders=[(order_view(item), None) for item in data])
        if topic == "execution":  # Trade only: no other kind moves a spot order
            return Parsed(orders=[execution_fill(item) for item in data if item.get("execType", "Trade") == "Trade"])
        if topic == "wallet":  # as of the venue's creationTime: fills and pushes on one clock (kairos.gate.pushes)
            return Parsed(balances={coin: pair for account in msg["data"]
                                    for coin, pair in wallet_balances(account["coin"]).items()},
                          balances_ms=int(msg.get("creationTime") or 0))
        raise ValueError(f"unknown topic {topic!r}")


def _reply(msg: dict[str, Any]) -> Parsed:
    """The answer to our auth (then subscribe), subscribe (ready) or ping; a failure refuses the session."""
    op = msg["op"]
    if op in ("pong", "ping"):
        return Parsed()
    if msg.get("success") is not True:
        return Parsed(refused=f"{op}: {msg.get('ret_msg', '')}")
    if op == "auth":
        return Parsed(send=[SUBSCRIBE])
    if op == "subscribe":
        return Parsed(ready=True)
    raise ValueError(f"unknown op {op!r}")
