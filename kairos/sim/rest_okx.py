"""OKX v5 trading endpoints of the simulator (docs-v5 shapes; HTTP 200 with ``code``/``sCode`` errors).

Signed requests: ``OK-ACCESS-KEY`` (401 50111), ``OK-ACCESS-PASSPHRASE`` (401 50105),
``OK-ACCESS-TIMESTAMP`` ISO-ms-Z within 30 s (401 50112 malformed / 50102 expired), and
``OK-ACCESS-SIGN`` = base64 HMAC of timestamp + METHOD + path?query + body (401 50113). An
``expTime`` header in the past rejects the order (sCode 50102), like a request that arrived late.
"""

from __future__ import annotations

import time
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from kairos.execution.signing_okx import okx_check, okx_parse_timestamp
from kairos.records import Side, Venue
from kairos.sim.exchange import OPEN, Refusal, SimOrder, SimRefused, Status
from kairos.sim.okx import ok_response
from kairos.sim.rest_trading import Params, Route, TradingDialect
from kairos.sim.router import HttpError, Request, Response, json_response, now_ms

REFUSALS: Final = {
    Refusal.PRICE_FILTER: ("51000", "Parameter px error"),
    Refusal.LOT_SIZE: ("51121", "Order quantity must be a multiple of the lot size."),
    Refusal.NOTIONAL: ("51020", "Your order should meet or exceed the minimum order amount."),
    Refusal.INSUFFICIENT_BALANCE: ("51008", "Order failed. Insufficient {quote} balance in account"),
    Refusal.DUPLICATE: ("51016", "Duplicated clOrdId"),
    Refusal.WOULD_TAKE: ("51000", "Parameter ordType error"),
    Refusal.UNKNOWN_SYMBOL: ("51001", "Instrument ID does not exist"),
    Refusal.UNKNOWN_ORDER: ("51603", "Order does not exist"),
    Refusal.ORDER_CLOSED: ("51400", "Order cancellation failed as the order has been filled, canceled or does "
                                    "not exist."),
}
ORD_TYPES: Final = {"limit": ("LIMIT", "GTC"), "market": ("MARKET", "IOC"), "post_only": ("LIMIT_MAKER", "GTC"),
                    "ioc": ("LIMIT", "IOC"), "fok": ("LIMIT", "FOK")}
WIRE_TYPE: Final = {v: k for k, v in ORD_TYPES.items()}
STATES: Final = {Status.NEW: "live", Status.PARTIALLY_FILLED: "partially_filled", Status.FILLED: "filled",
                 Status.CANCELED: "canceled", Status.EXPIRED: "canceled"}
SIDES: Final = {"buy": Side.BUY, "sell": Side.SELL}
SKEW_MS: Final = 30_000


def _auth_error(code: str, msg: str) -> HttpError:
    return HttpError(401, {"code": code, "msg": msg})


class OkxTrading(TradingDialect):
    venue = Venue.OKX
    post_only_rejects = False  # a post_only order that would take is canceled
    first_order_id = 600_000_000_000_000_000
    rate_code = "50011"

    @staticmethod
    def too_many(status: int, retry_after_s: float) -> tuple[int, dict[str, Any]]:
        """Over an endpoint's window: HTTP 429 with code 50011 (no ban)."""
        return 429, {"code": "50011", "msg": "Too Many Requests", "data": []}

    def routes(self) -> list[tuple[str, str, Route]]:
        return [
            ("POST", "/api/v5/trade/order", self.place),
            ("POST", "/api/v5/trade/cancel-order", self.cancel),
            ("GET", "/api/v5/trade/order", self.query),
            ("GET", "/api/v5/trade/orders-pending", self.open_orders),
            ("GET", "/api/v5/account/balance", self.balance),
        ]

    def authenticate(self, request: Request) -> Params:
        headers = request.headers
        if not self._key or headers.get("OK-ACCESS-KEY", "") != self._key:
            raise _auth_error("50111", "Invalid OK-ACCESS-KEY")
        if headers.get("OK-ACCESS-PASSPHRASE", "") != self._passphrase:
            raise _auth_error("50105", "Invalid OK-ACCESS-PASSPHRASE")
        stamp = headers.get("OK-ACCESS-TIMESTAMP", "")
        try:
            skew = abs(now_ms() - okx_parse_timestamp(stamp))
        except ValueError:
            raise _auth_error("50112", "Invalid OK-ACCESS-TIMESTAMP") from None
        if skew > SKEW_MS:
            raise _auth_error("50102", "Timestamp request expired")
        path = f"{request.path}?{request.query_string}" if request.query_string else request.path
        body = request.body.decode(errors="replace")
        if not okx_check(self._secret, stamp, request.method, path, body, headers.get("OK-ACCESS-SIGN", "")):
            raise _auth_error("50113", "Invalid Sign")
        return dict(request.query) | (request.json() if request.method == "POST" else {})

    def refused(self, exc: SimRefused, request: Request) -> Response:
        if request.method != "POST":
            code, msg = REFUSALS[exc.refusal]
            return json_response({"code": code, "msg": msg, "data": []})
        return self.op_refused(exc, request.json())

    def op_refused(self, exc: SimRefused, params: Params) -> Response:
        """A refused order operation (REST or WebSocket): code 1, the reason in ``data[0].sCode``."""
        code, msg = REFUSALS[exc.refusal]
        quote = params.get("instId", "-").split("-")[-1]
        item = {"clOrdId": params.get("clOrdId", ""), "ordId": "", "tag": "", "ts": str(now_ms()), "sCode": code,
                "sMsg": msg.format(quote=quote), "subCode": "1000" if code == "51008" else ""}
        return json_response({"code": "1", "msg": "All operations failed", "data": [item],
                              "inTime": str(time.time_ns() // 1000), "outTime": str(time.time_ns() // 1000)})

    def unknown(self) -> Response:
        msg = "Endpoint request timeout (does not indicate success or failure of order, please check order status)"
        return json_response({"code": "50004", "msg": msg, "data": []})

    # -- endpoints -------------------------------------------------------------------------------

    def place(self, request: Request, params: Params) -> Response:
        return self.place_order(params, request.headers.get("expTime", ""))

    def place_order(self, params: Params, deadline: str) -> Response:
        """One order, REST or WebSocket (``deadline``: the request's expTime, REST header or WS field)."""
        if deadline.isdigit() and now_ms() > int(deadline):
            return self._op_error(params, "50102", "Timestamp request expired")
        kind_tif, side = ORD_TYPES.get(params.get("ordType", "")), SIDES.get(params.get("side", ""))
        if kind_tif is None or side is None or params.get("tdMode") != "cash":
            return self._op_error(params, "51000", "Parameter ordType, side or tdMode error")
        symbol = params.get("instId", "")
        try:
            qty = Decimal(params.get("sz", ""))
            price = None if kind_tif[0] == "MARKET" else Decimal(params.get("px", ""))
        except InvalidOperation:
            return self._op_error(params, "51000", "Parameter sz or px error")
        if kind_tif[0] == "MARKET" and side is Side.BUY and params.get("tgtCcy", "quote_ccy") == "quote_ccy":
            qty = self.base_for_quote(symbol, qty)
        coid = params.get("clOrdId") or f"sim{time.time_ns()}"
        order = self.exchange.place(coid, symbol, side, kind_tif[0], kind_tif[1], price, qty)
        return self._op_ok(order, "Order placed")

    def cancel(self, request: Request | None, params: Params) -> Response:
        order = self.exchange.cancel(params.get("instId", ""), params.get("clOrdId", ""))
        return self._op_ok(order, "")

    def query(self, request: Request, params: Params) -> Response:
        order = self.exchange.get(params.get("instId", ""), params.get("clOrdId", ""))
        if order is None:
            code, msg = REFUSALS[Refusal.UNKNOWN_ORDER]
            return json_response({"code": code, "msg": msg, "data": []})
        return ok_response([self._order(order)])

    def open_orders(self, request: Request, params: Params) -> Response:
        return ok_response([self._order(o) for o in self.exchange.open_orders(params.get("instId") or None)])

    def balance(self, request: Request, params: Params) -> Response:
        details = [{"ccy": ccy, "availBal": f"{free.normalize():f}", "cashBal": f"{(free + locked).normalize():f}",
                    "frozenBal": f"{locked.normalize():f}", "ordFrozen": f"{locked.normalize():f}",
                    "eq": f"{(free + locked).normalize():f}", "uTime": str(now_ms())}
                   for ccy, (free, locked) in sorted(self.exchange.balances().items())]
        return ok_response([{"totalEq": "", "uTime": str(now_ms()), "details": details}])

    # -- formats ---------------------------------------------------------------------------------

    def _op_ok(self, order: SimOrder, message: str) -> Response:
        item = {"clOrdId": order.client_order_id, "ordId": str(order.order_id), "tag": "",
                "ts": str(order.updated_ms or order.created_ms), "sCode": "0", "sMsg": message, "subCode": ""}
        now_us = str(time.time_ns() // 1000)
        return json_response({"code": "0", "msg": "", "data": [item], "inTime": now_us, "outTime": now_us})

    def _op_error(self, params: Params, code: str, msg: str) -> Response:
        item = {"clOrdId": params.get("clOrdId", ""), "ordId": "", "tag": "", "ts": str(now_ms()), "sCode": code,
                "sMsg": msg, "subCode": ""}
        return json_response({"code": "1", "msg": "All operations failed", "data": [item]})

    def _order(self, order: SimOrder) -> dict[str, Any]:
        spec = self.market.spec(self.venue, order.symbol)
        last = order.fills[-1] if order.fills else None
        avg = order.quote / order.filled if order.filled else Decimal(0)
        return {
            "instType": "SPOT", "instId": order.symbol, "ordId": str(order.order_id),
            "clOrdId": order.client_order_id, "tag": "", "px": spec.dec(order.price) if order.price else "",
            "sz": spec.dec(order.qty), "ordType": WIRE_TYPE[(order.kind, order.tif)], "side": order.side.name.lower(),
            "tdMode": "cash", "state": STATES[order.status], "accFillSz": spec.dec(order.filled),
            "avgPx": spec.dec(avg) if order.filled else "", "fillPx": spec.dec(last[0]) if last else "",
            "fillSz": spec.dec(last[1]) if last else "0", "fee": spec.dec(-order.fee) if order.fee else "0",
            "feeCcy": order.fee_asset, "cTime": str(order.created_ms),
            "uTime": str(order.updated_ms or order.created_ms), "tgtCcy": "", "isLive": str(order.status in OPEN),
        }
