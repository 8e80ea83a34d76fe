"""Bybit v5 spot signed REST: /v5/order/create, cancel, realtime, account/wallet-balance.

Quirks, as data: HTTP 200 on failure (``retCode`` is checked); create and cancel answer only ids
(``ack_only``, ``cancel_confirmed = False``: the order is queried); a query is a filtered list that
is empty for an order the venue does not know (`parse_queried`). Signatures ride in ``X-BAPI-*``
headers over the query string (GET) or the exact JSON body (POST); ``X-BAPI-RECV-WINDOW`` bounds when
a request lost in transit can still execute. A market Buy is sized in the base coin
(``marketUnit: baseCoin``), never in the quote coin that is the venue's default.

Orders over WebSocket: ``/v5/trade`` (the private stream's URL with its last segment ``trade``), after
``auth`` (like the private stream's; ready on ``retCode: 0``): ``{"reqId", "header": {X-BAPI-TIMESTAMP,
X-BAPI-RECV-WINDOW}, "op": "order.create" | "order.cancel", "args": [REST body]}``, answered with
``reqId``, ``retCode``, ``retMsg`` and REST's ``result`` as ``data``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import orjson

from kairos.execution.base import OrderRequest, SymbolFilters
from kairos.execution.filters import venue_decimal
from kairos.execution.rest import RestExecution
from kairos.execution.signing import percent_encode
from kairos.execution.signing_bybit import bybit_signature, bybit_ws_signature
from kairos.execution.state import OrderView
from kairos.execution.venue import Call, Outcome, Reply
from kairos.records import OrderState, OrderType, RejectReason, Side, Tif, Venue

STATE: Final = {"New": OrderState.ACK, "PartiallyFilled": OrderState.PARTIAL, "Filled": OrderState.FILLED,
                "Cancelled": OrderState.CANCELED, "PartiallyFilledCanceled": OrderState.CANCELED,
                "Rejected": OrderState.REJECTED, "Deactivated": OrderState.CANCELED}
IMMEDIATE: Final = frozenset({"IOC", "FOK"})
TIF: Final = {Tif.GTC: "GTC", Tif.IOC: "IOC", Tif.FOK: "FOK"}
SIDES: Final = {Side.BUY: "Buy", Side.SELL: "Sell", "Buy": Side.BUY, "Sell": Side.SELL}
SPOT: Final = ("category", "spot")
_AUTH: Final = ("10003", "10004", "10005", "10007", "10009", "10010")
_FILTER: Final = ("170132", "170133", "170134", "170135", "170136", "170137", "170140")


def num(raw: Any) -> float:
    """A venue decimal string as a float; empty or absent is 0."""
    return float(raw) if raw not in (None, "") else 0.0


def order_view(item: dict[str, Any]) -> OrderView:
    """An order object (REST order/realtime) as a cumulative view; an IOC/FOK/market order canceled by the
    venue with its remainder is EXPIRED, like the other venues' immediate orders."""
    state = STATE[item["orderStatus"]]
    if state is OrderState.CANCELED and (item.get("timeInForce") in IMMEDIATE or item.get("orderType") == "Market"):
        state = OrderState.EXPIRED
    return OrderView(
        client_order_id=item["orderLinkId"], state=state, cum_qty=num(item.get("cumExecQty")),
        cum_quote=num(item.get("cumExecValue")), fee_cum=num(item.get("cumExecFee")),
        fee_asset=item.get("feeCurrency", ""), venue_order_id=int(item["orderId"]), symbol=item["symbol"],
        side=SIDES.get(item.get("side", ""), Side.NONE), price=num(item.get("price")), qty=num(item.get("qty")),
        ts_exchange_ns=int(num(item.get("updatedTime") or item.get("createdTime"))) * 1_000_000,
    )


class BybitExecution(RestExecution):
    venue = Venue.BYBIT
    name = "bybit"
    ack_only = True
    cancel_confirmed = False
    ws_place_route = ("POST", "/v5/order/create")
    ws_cancel_route = ("POST", "/v5/order/cancel")
    reasons = MappingProxyType(
        {code: RejectReason.VENUE_AUTH for code in _AUTH}
        | {code: RejectReason.VENUE_FILTER for code in _FILTER}
        | {"170131": RejectReason.VENUE_INSUFFICIENT_BALANCE, "170141": RejectReason.DUPLICATE_ORDER,
           "10006": RejectReason.VENUE_RATE_LIMIT, "10018": RejectReason.VENUE_RATE_LIMIT,
           "170121": RejectReason.UNKNOWN_INSTRUMENT, "170139": RejectReason.UNKNOWN_ORDER,
           "170142": RejectReason.UNKNOWN_ORDER, "170213": RejectReason.UNKNOWN_ORDER}
    )
    unknown_codes = frozenset({"10000", "10016"})
    rate_limit_codes = frozenset({"10006", "10018", "HTTP403"})  # 403: over the per-IP cap
    not_found_codes = frozenset({"170213"})
    clock_codes = frozenset({"10002"})
    default_retry_s = 1.0

    def error_of(self, status: int, data: Any) -> tuple[str, str] | None:
        """Any non-zero ``retCode``; without a JSON body, the HTTP status."""
        if not isinstance(data, dict):
            return None if status < 400 else (f"HTTP{status}", "")
        code = str(data.get("retCode", "0"))
        return None if code == "0" else (code, str(data.get("retMsg", "")))

    def session_headers(self) -> dict[str, str]:
        return {"X-BAPI-API-KEY": self._key, "Content-Type": "application/json"}

    def _signed(self, method: str, path: str, params: list[tuple[str, str]] = (), body: Any = None) -> Call:
        query = percent_encode(params)
        text = orjson.dumps(body).decode() if body is not None else ""
        stamp, window = str(self.clock.now_ms()), str(self.recv_window_ms)
        sign = bybit_signature(self._secret, stamp, self._key, window, text or query)
        return Call(method, f"{path}?{query}" if query else path, text,
                    {"X-BAPI-TIMESTAMP": stamp, "X-BAPI-RECV-WINDOW": window, "X-BAPI-SIGN": sign})

    def time_call(self) -> Call:
        return Call("GET", "/v5/market/time")

    def parse_time(self, data: Any) -> int:
        return int(data["result"]["timeNano"]) // 1_000_000

    def filters_call(self, symbols: list[str]) -> Call:
        return Call("GET", "/v5/market/instruments-info?category=spot")

    def parse_filters(self, data: Any) -> dict[str, SymbolFilters]:
        return {item["symbol"]: bybit_filters(item) for item in data["result"]["list"]}

    def place_call(self, req: OrderRequest, price: str | None, qty: str) -> Call:
        return self._signed("POST", "/v5/order/create", body=_place_body(req, price, qty))

    def parse_placed(self, data: Any, req: OrderRequest) -> OrderView:
        result = data["result"]
        return OrderView(result.get("orderLinkId") or req.client_order_id, OrderState.ACK, fee_cum=0.0,
                         venue_order_id=int(result["orderId"]), symbol=req.symbol, side=req.side,
                         price=req.price, qty=req.qty, ts_exchange_ns=int(num(data.get("time"))) * 1_000_000)

    def cancel_call(self, client_order_id: str, symbol: str) -> Call:
        return self._signed("POST", "/v5/order/cancel", body=_cancel_body(client_order_id, symbol))

    # -- orders over /v5/trade ------------------------------------------------------------------

    def ws_orders_url(self) -> str:
        private = self._venue_cfg.urls.private_url
        return f"{private.rsplit('/', 1)[0]}/trade" if private else ""

    def ws_login(self) -> list[str]:
        args = auth_args(self._key, self._secret, self.clock.now_ms() + self.recv_window_ms)
        return [orjson.dumps({"reqId": "auth", "op": "auth", "args": args}).decode()]

    def ws_logged_in(self, msg: dict[str, Any]) -> bool:
        return msg.get("op") == "auth" and msg.get("retCode") == 0

    def ws_place(self, rid: str, req: OrderRequest, price: str | None, qty: str) -> str:
        return self._ws_request(rid, "order.create", _place_body(req, price, qty))

    def ws_cancel(self, rid: str, client_order_id: str, symbol: str) -> str:
        return self._ws_request(rid, "order.cancel", _cancel_body(client_order_id, symbol))

    def _ws_request(self, rid: str, op: str, body: dict[str, Any]) -> str:
        header = {"X-BAPI-TIMESTAMP": str(self.clock.now_ms()), "X-BAPI-RECV-WINDOW": str(self.recv_window_ms)}
        return orjson.dumps({"reqId": rid, "header": header, "op": op, "args": [body]}).decode()

    def ws_reply(self, msg: dict[str, Any]) -> tuple[Reply, int]:
        """REST's body with ``data`` for ``result``, classified like REST; an answer without ``retCode`` or a
        success without its order is unreadable (ValueError). No request count is reported (-1)."""
        code, data = msg.get("retCode"), msg.get("data")
        if not isinstance(code, int) or not isinstance(data, dict):
            raise ValueError(f"not a Bybit order reply: {str(msg)[:200]}")
        header = msg.get("header") or {}
        body = {"retCode": code, "retMsg": msg.get("retMsg", ""), "result": data, "time": header.get("Timenow", 0)}
        reply = self.classify_data(200, {}, body)
        if reply.outcome is Outcome.OK and not data.get("orderId"):
            raise ValueError(f"success without its order: {str(msg)[:200]}")
        return reply, -1

    def query_call(self, client_order_id: str, symbol: str) -> Call:
        return self._signed("GET", "/v5/order/realtime", [SPOT, ("symbol", symbol), ("orderLinkId", client_order_id)])

    def parse_order(self, data: Any) -> OrderView:
        return order_view(data["result"]["list"][0])

    def parse_queried(self, data: Any) -> OrderView | None:
        """An empty list: the venue does not know the order (Bybit answers retCode 0, not an error)."""
        return order_view(data["result"]["list"][0]) if data["result"]["list"] else None

    def open_orders_call(self, symbol: str | None) -> Call:
        return self._signed("GET", "/v5/order/realtime", [SPOT, *([("symbol", symbol)] if symbol else []),
                                                          ("openOnly", "0")])

    def parse_open_orders(self, data: Any) -> list[OrderView]:
        return [order_view(item) for item in data["result"]["list"]]

    def balances_call(self) -> Call:
        return self._signed("GET", "/v5/account/wallet-balance", [("accountType", "UNIFIED")])

    def parse_balances(self, data: Any) -> dict[str, tuple[float, float]]:
        accounts = data["result"]["list"]
        return wallet_balances(accounts[0]["coin"] if accounts else [])

    def balances_ms(self, data: Any) -> int:
        return int(data.get("time") or 0)  # the answer's: wallet-balance carries no account time


def auth_args(key: str, secret: str, expires_ms: int) -> list[str]:
    """``auth`` arguments of the private stream and the trade socket: valid until ``expires_ms``."""
    expires = str(expires_ms)
    return [key, expires, bybit_ws_signature(secret, expires)]


def _place_body(req: OrderRequest, price: str | None, qty: str) -> dict[str, Any]:
    body = {"category": "spot", "symbol": req.symbol, "side": SIDES[req.side], "qty": qty,
            "orderLinkId": req.client_order_id}
    if req.order_type is OrderType.MARKET:
        return body | {"orderType": "Market", "marketUnit": "baseCoin"}
    tif = "PostOnly" if req.order_type is OrderType.LIMIT_MAKER else TIF[req.tif]
    return body | {"orderType": "Limit", "price": price, "timeInForce": tif}


def _cancel_body(client_order_id: str, symbol: str) -> dict[str, str]:
    return {"category": "spot", "symbol": symbol, "orderLinkId": client_order_id}


def wallet_balances(coins: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """(free, locked) per coin of a wallet (REST wallet-balance, the ``wallet`` topic): free is the wallet
    balance less what open orders lock."""
    return {c["coin"]: (num(c.get("walletBalance")) - num(c.get("locked")), num(c.get("locked"))) for c in coins}


def bybit_filters(instrument: Mapping[str, Any]) -> SymbolFilters:
    """From one spot ``/v5/market/instruments-info`` entry: ``priceFilter.tickSize``, the lot step
    ``lotSizeFilter.basePrecision``, ``maxLimitOrderQty`` and the order value bounds ``minOrderAmt`` /
    ``maxOrderAmt`` (``minOrderQty``/``maxOrderQty`` are deprecated and not read)."""
    lot, price = instrument.get("lotSizeFilter", {}), instrument.get("priceFilter", {})
    return SymbolFilters(
        tick=venue_decimal(price.get("tickSize")),
        step=venue_decimal(lot.get("basePrecision")),
        max_qty_d=venue_decimal(lot.get("maxLimitOrderQty")),
        min_notional_d=venue_decimal(lot.get("minOrderAmt")),
        max_notional_d=venue_decimal(lot.get("maxOrderAmt")),
    )
