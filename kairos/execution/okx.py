"""OKX v5 signed REST: /api/v5/trade/order, cancel-order, orders-pending, account/balance.

Quirks, as data: HTTP 200 on failure (``code`` and every ``data[].sCode`` are checked); a place response
is only an acknowledgement (``ack_only``: immediate orders' fills come from the private stream, or from
a query at once while it is down); a cancel ``sCode 0`` does not mean canceled (``cancel_confirmed =
False``: the order is queried). Place orders carry an ``expTime`` header (now + recv_window_ms) so a
request lost in transit cannot execute after the executor has concluded it never arrived. Demo trading
adds ``x-simulated-trading: 1``. Orders over the private WebSocket (after ``login``): ``{"id", "op":
"order" | "cancel-order", "args": [...]}`` with the body REST would send, except that the instrument is
its ``instIdCode`` (an integer the venue publishes in /api/v5/public/instruments, different on prod and
demo: learned in `parse_filters`, never configured); a place carries ``expTime`` at the top. The reply
``{"id", "op", "code", "msg", "data": [{"ordId", "clOrdId", "sCode", "sMsg"}], "inTime", "outTime"}`` is
REST's body. A symbol the venue gave no code goes over REST.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import orjson

from kairos.config import VenueConfig
from kairos.execution.base import OrderRequest, SymbolFilters
from kairos.execution.filters import venue_decimal
from kairos.execution.rest import RestExecution
from kairos.execution.signing import percent_encode
from kairos.execution.signing_okx import okx_signature, okx_timestamp
from kairos.execution.state import OrderView
from kairos.execution.venue import Call, Outcome, Reply
from kairos.records import OrderState, OrderType, RejectReason, Side, Tif, Venue

STATE: Final = {"live": OrderState.ACK, "partially_filled": OrderState.PARTIAL, "filled": OrderState.FILLED,
                "canceled": OrderState.CANCELED, "mmp_canceled": OrderState.CANCELED}
IMMEDIATE: Final = frozenset({"ioc", "fok", "market", "optimal_limit_ioc"})
ORD_TYPE: Final = {(OrderType.LIMIT, Tif.GTC): "limit", (OrderType.LIMIT, Tif.IOC): "ioc",
                   (OrderType.LIMIT, Tif.FOK): "fok"}
SIDES: Final = {Side.BUY: "buy", Side.SELL: "sell", "buy": Side.BUY, "sell": Side.SELL}
_AUTH: Final = ("50101", "50102", "50103", "50104", "50105", "50106", "50107", "50110", "50111", "50112", "50113",
                "60004", "60005", "60006", "60007", "60009")  # 600xx: the same failures on a WebSocket login
_FILTER: Final = ("51006", "51020", "51121", "51137", "51138")


def _num(raw: Any) -> float:
    return float(raw) if raw not in (None, "") else 0.0


def ws_login_frame(key: str, passphrase: str, secret: str, now_ms: int) -> str:
    """The private WebSocket ``login`` (stream and order socket): sign = base64(HMAC-SHA256(secret,
    unix-seconds + "GET" + "/users/self/verify"))."""
    stamp = str(now_ms // 1000)
    sign = okx_signature(secret, stamp, "GET", "/users/self/verify")
    return orjson.dumps({"op": "login", "args": [{"apiKey": key, "passphrase": passphrase, "timestamp": stamp,
                                                  "sign": sign}]}).decode()


def inst_id_code(item: Mapping[str, Any]) -> int | None:
    """An instruments entry's ``instIdCode`` (a positive integer); None when absent or not one."""
    raw = item.get("instIdCode")
    if isinstance(raw, str) and raw.isdigit():
        raw = int(raw)
    return raw if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0 else None


def order_view(item: dict[str, Any]) -> OrderView:
    """An order object (REST order/orders-pending, private WS ``orders``) as a cumulative view."""
    state = STATE[item["state"]]
    if state is OrderState.CANCELED and item.get("ordType") in IMMEDIATE:
        state = OrderState.EXPIRED
    filled = _num(item.get("accFillSz"))
    return OrderView(
        client_order_id=item["clOrdId"], state=state, cum_qty=filled,
        cum_quote=filled * _num(item.get("avgPx")), fee_cum=-_num(item.get("fee")),
        fee_asset=item.get("feeCcy", ""), venue_order_id=int(item["ordId"]), symbol=item["instId"],
        side=SIDES.get(item.get("side", ""), Side.NONE), price=_num(item.get("px")), qty=_num(item.get("sz")),
        ts_exchange_ns=int(_num(item.get("uTime") or item.get("cTime"))) * 1_000_000,
    )


class OkxExecution(RestExecution):
    venue = Venue.OKX
    name = "okx"
    ack_only = True
    cancel_confirmed = False
    reasons = MappingProxyType(
        {code: RejectReason.VENUE_AUTH for code in _AUTH}
        | {code: RejectReason.VENUE_FILTER for code in _FILTER}
        | {"51008": RejectReason.VENUE_INSUFFICIENT_BALANCE, "50011": RejectReason.VENUE_RATE_LIMIT,
           "50061": RejectReason.VENUE_RATE_LIMIT, "51400": RejectReason.UNKNOWN_ORDER,
           "51503": RejectReason.UNKNOWN_ORDER, "51603": RejectReason.UNKNOWN_ORDER}
    )
    unknown_codes = frozenset({"50001", "50004", "50013", "50026", "51149"})
    rate_limit_codes = frozenset({"50011", "50061"})
    not_found_codes = frozenset({"51603"})
    clock_codes = frozenset({"50102", "50112"})
    default_retry_s = 2.0
    ws_place_route = ("POST", "/api/v5/trade/order")
    ws_cancel_route = ("POST", "/api/v5/trade/cancel-order")

    def __init__(self, venue_cfg: VenueConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__(venue_cfg, *args, **kwargs)
        self._demo = venue_cfg.endpoint == "demo"
        self.inst_codes: dict[str, int] = {}

    def error_of(self, status: int, data: Any) -> tuple[str, str] | None:
        """Any non-zero ``code`` or ``sCode``; the per-order sCode is the more precise one."""
        if not isinstance(data, dict):
            return None if status < 400 else (f"HTTP{status}", "")
        items = data.get("data") if isinstance(data.get("data"), list) else []
        for item in items:
            if isinstance(item, dict) and str(item.get("sCode", "0")) != "0":
                return str(item["sCode"]), str(item.get("sMsg", ""))
        code = str(data.get("code", "0"))
        return None if code == "0" else (code, str(data.get("msg", "")))

    def session_headers(self) -> dict[str, str]:
        headers = {"OK-ACCESS-KEY": self._key, "OK-ACCESS-PASSPHRASE": self._passphrase,
                   "Content-Type": "application/json"}
        return headers | ({"x-simulated-trading": "1"} if self._demo else {})

    def _signed(self, method: str, path: str, params: list[tuple[str, str]] = (), body: Any = None,
                headers: dict[str, str] | None = None) -> Call:
        request_path = f"{path}?{percent_encode(params)}" if params else path
        text = orjson.dumps(body).decode() if body is not None else ""
        stamp = okx_timestamp(self.clock.now_ms())
        sign = okx_signature(self._secret, stamp, method, request_path, text)
        return Call(method, request_path, text, {"OK-ACCESS-SIGN": sign, "OK-ACCESS-TIMESTAMP": stamp,
                                                 **(headers or {})})

    def time_call(self) -> Call:
        return Call("GET", "/api/v5/public/time")

    def parse_time(self, data: Any) -> int:
        return int(data["data"][0]["ts"])

    def filters_call(self, symbols: list[str]) -> Call:
        return Call("GET", "/api/v5/public/instruments?instType=SPOT")

    def parse_filters(self, data: Any) -> dict[str, SymbolFilters]:
        """The rules per instId; each instrument's ``instIdCode`` is kept for WebSocket orders."""
        codes = {item["instId"]: inst_id_code(item) for item in data["data"]}
        self.inst_codes = {symbol: code for symbol, code in codes.items() if code is not None}
        return {item["instId"]: okx_filters(item) for item in data["data"]}

    def place_call(self, req: OrderRequest, price: str | None, qty: str) -> Call:
        deadline = {"expTime": self._deadline()}
        return self._signed("POST", "/api/v5/trade/order", body=_place_body(req, price, qty), headers=deadline)

    def _deadline(self) -> str:
        return str(self.clock.now_ms() + self.recv_window_ms)

    def ws_routable(self, symbol: str) -> bool:
        return symbol in self.inst_codes

    def ws_login(self) -> list[str]:
        return [ws_login_frame(self._key, self._passphrase, self._secret, self.clock.now_ms())]

    def ws_logged_in(self, msg: dict[str, Any]) -> bool:
        return msg.get("event") == "login" and msg.get("code") == "0"

    def ws_place(self, rid: str, req: OrderRequest, price: str | None, qty: str) -> str:
        args = {"instIdCode": self.inst_codes[req.symbol]} | _place_body(req, price, qty)
        del args["instId"]
        return orjson.dumps({"id": rid, "op": "order", "expTime": self._deadline(), "args": [args]}).decode()

    def ws_cancel(self, rid: str, client_order_id: str, symbol: str) -> str:
        args = {"instIdCode": self.inst_codes[symbol], "clOrdId": client_order_id}
        return orjson.dumps({"id": rid, "op": "cancel-order", "args": [args]}).decode()

    def ws_reply(self, msg: dict[str, Any]) -> tuple[Reply, int]:
        """REST's body with ``id`` and ``op``: errors in ``data[].sCode`` or the top ``code`` (1: every operation
        failed; 50011: over the endpoint's limit); an answer without ``code`` or a success without its order
        is unreadable (ValueError). OKX reports no request count (-1)."""
        data = msg.get("data")
        if not isinstance(msg.get("code"), str) or not isinstance(data, list):
            raise ValueError(f"not an OKX order reply: {str(msg)[:200]}")
        reply = self.classify_data(200, {}, msg)
        if reply.outcome is Outcome.OK and not (data and isinstance(data[0], dict) and data[0].get("ordId")):
            raise ValueError(f"success without its order: {str(msg)[:200]}")
        return reply, -1

    def parse_placed(self, data: Any, req: OrderRequest) -> OrderView:
        item = data["data"][0]
        return OrderView(item.get("clOrdId") or req.client_order_id, OrderState.ACK, fee_cum=0.0,
                         venue_order_id=int(item["ordId"]), symbol=req.symbol, side=req.side,
                         price=req.price, qty=req.qty, ts_exchange_ns=int(_num(item.get("ts"))) * 1_000_000)

    def cancel_call(self, client_order_id: str, symbol: str) -> Call:
        return self._signed("POST", "/api/v5/trade/cancel-order", body={"instId": symbol, "clOrdId": client_order_id})

    def query_call(self, client_order_id: str, symbol: str) -> Call:
        return self._signed("GET", "/api/v5/trade/order", [("instId", symbol), ("clOrdId", client_order_id)])

    def parse_order(self, data: Any) -> OrderView:
        return order_view(data["data"][0])

    def open_orders_call(self, symbol: str | None) -> Call:
        params = [("instType", "SPOT")] + ([("instId", symbol)] if symbol else [])
        return self._signed("GET", "/api/v5/trade/orders-pending", params)

    def parse_open_orders(self, data: Any) -> list[OrderView]:
        return [order_view(item) for item in data["data"]]

    def balances_call(self) -> Call:
        return self._signed("GET", "/api/v5/account/balance")

    def parse_balances(self, data: Any) -> dict[str, tuple[float, float]]:
        details = data["data"][0]["details"] if data["data"] else []
        return {d["ccy"]: (_num(d.get("availBal")), _num(d.get("frozenBal"))) for d in details}

    def balances_ms(self, data: Any) -> int:
        return int(data["data"][0].get("uTime") or 0) if data["data"] else 0


def _place_body(req: OrderRequest, price: str | None, qty: str) -> dict[str, Any]:
    body = {"instId": req.symbol, "tdMode": "cash", "side": SIDES[req.side], "clOrdId": req.client_order_id,
            "sz": qty}
    if req.order_type is OrderType.MARKET:
        return body | {"ordType": "market", "tgtCcy": "base_ccy"}
    return body | {"ordType": ORD_TYPE.get((req.order_type, req.tif), "post_only"), "px": price}


def okx_filters(instrument: Mapping[str, Any]) -> SymbolFilters:
    """From one ``/api/v5/public/instruments`` entry: tickSz, lotSz, minSz, maxLmtSz. OKX rule: ``sz`` is a
    multiple of ``lotSz`` and ``sz >= minSz``; empty strings mean "no limit"."""
    return SymbolFilters(
        tick=venue_decimal(instrument.get("tickSz")),
        step=venue_decimal(instrument.get("lotSz")),
        min_qty_d=venue_decimal(instrument.get("minSz")),
        max_qty_d=venue_decimal(instrument.get("maxLmtSz")),
    )
