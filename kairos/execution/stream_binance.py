"""Binance Spot user data over the WebSocket API (the listenKey stream ended for Spot on 2026-02-20).

Subscribe with ``userDataStream.subscribe.signature`` (params apiKey, recvWindow, timestamp and
signature = hex HMAC-SHA256 of the others sorted by name as ``k=v&...``); events then arrive as
``{"subscriptionId", "event"}``: ``executionReport`` (``z``/``Z`` cumulative, ``l``/``L``/``n``/``N``/``t``
this fill), ``outboundAccountPosition`` (balances as of ``u``), ``balanceUpdate`` (a delta) and
``eventStreamTerminated`` (reconnect and subscribe again). Heartbeat: the ``ping`` method.
"""

from __future__ import annotations

import itertools
from typing import Any, Final

import orjson

from kairos.execution.binance import SIDES, STATUS, weight_used
from kairos.execution.signing import percent_encode
from kairos.execution.signing_binance import binance_signature
from kairos.execution.state import OrderView, TradeFill
from kairos.execution.stream import Parsed, PrivateStream
from kairos.records import Side

SUBSCRIBE: Final = "userDataStream.subscribe.signature"
RATE_STATUSES: Final = (429, 418)
MAX_RETRY_S: Final = 300.0  # a longer ban still ends the wait: the next subscribe asks again (and is told again)


def execution_report(event: dict[str, Any]) -> tuple[OrderView, TradeFill | None]:
    """An executionReport as a cumulative view (no cumulative fee: ``n`` is this fill's) and its fill."""
    view = OrderView(
        client_order_id=event.get("C") or event["c"], state=STATUS[event["X"]], cum_qty=float(event["z"]),
        cum_quote=float(event["Z"]), fee_cum=None, venue_order_id=int(event["i"]), symbol=event["s"],
        side=SIDES.get(event.get("S", ""), Side.NONE), price=float(event.get("p", 0)), qty=float(event.get("q", 0)),
        ts_exchange_ns=int(event.get("T") or event["E"]) * 1_000_000)
    if event["x"] != "TRADE":
        return view, None
    return view, TradeFill(str(event["t"]), float(event["l"]), float(event["L"]), float(event["n"]),
                           event.get("N") or "")


class BinanceStream(PrivateStream):
    name = "binance"
    heartbeat = orjson.dumps({"id": "heartbeat", "method": "ping"}).decode()
    open_routes = (("GET", "/ws-api/v3"), ("POST", f"/ws-api/v3/{SUBSCRIBE}"))  # connect 2 + subscribe 2 weight
    heartbeat_route = ("GET", "/api/v3/ping")  # the WS API ``ping`` method: weight 1, as its REST twin

    _ids = itertools.count(1)

    def open_frames(self) -> list[str]:
        params = {"apiKey": self._key, "recvWindow": str(self._recv_window_ms), "timestamp": str(self._now_ms())}
        params["signature"] = binance_signature(self._secret, percent_encode(sorted(params.items())))
        return [orjson.dumps({"id": f"subscribe-{next(self._ids)}", "method": SUBSCRIBE, "params": params}).decode()]

    def parse(self, text: str) -> Parsed:
        msg = orjson.loads(text)
        event = msg.get("event")
        if event is None:
            return _reply(msg)
        kind = event["e"]
        if kind == "executionReport":
            return Parsed(orders=[execution_report(event)])
        if kind == "outboundAccountPosition":
            return Parsed(balances={b["a"]: (float(b["f"]), float(b["l"])) for b in event["B"]},
                          balances_ms=int(event.get("u") or event["E"]))
        if kind == "balanceUpdate":
            return Parsed(deltas={event["a"]: float(event["d"])})
        if kind == "eventStreamTerminated":
            return Parsed(ended=True)
        raise ValueError(f"unknown event {kind!r}")


def _reply(msg: dict[str, Any]) -> Parsed:
    """A request's answer: our subscription (ready), a heartbeat, or an error (refused); with the IP's
    request-weight count when the venue reports it (``rateLimits``). A rate-limited heartbeat (429/418) does
    not end the session (the subscription still streams; the count reaches the budget); a rate-limited
    subscribe is refused until ``error.data.retryAfter``."""
    used = weight_used(msg)
    status = int(msg["status"])
    if status == 200:
        return Parsed(ready="subscriptionId" in (msg.get("result") or {}), weight_used=used)
    error = msg.get("error") or {}
    if status in RATE_STATUSES and str(msg.get("id", "")).startswith("heartbeat"):
        return Parsed(weight_used=used)
    data, retry_s = error.get("data"), 0.0
    if isinstance(data, dict) and "retryAfter" in data and "serverTime" in data:
        retry_s = min(max((int(data["retryAfter"]) - int(data["serverTime"])) / 1000, 0.0), MAX_RETRY_S)
    return Parsed(refused=f"{error.get('code', status)} {error.get('msg', '')}", weight_used=used,
                  retry_after_s=retry_s)
