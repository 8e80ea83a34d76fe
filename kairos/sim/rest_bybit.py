"""Bybit v5 spot trading endpoints of the simulator (HTTP 200 with ``retCode`` errors, as the venue answers).

Signed requests: ``X-BAPI-API-KEY`` (10003), ``X-BAPI-TIMESTAMP`` ms within
``server - X-BAPI-RECV-WINDOW <= ts < server + 1000`` (10002; the window defaults to 5000) and
``X-BAPI-SIGN`` = lowercase hex HMAC of timestamp + key + window + (query string | JSON body) (10004).
A market Buy's ``qty`` is in the quote coin unless ``marketUnit: baseCoin``.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, Final

from kairos.execution.signing_bybit import bybit_check, bybit_in_window
from kairos.records import Side, Venue
from kairos.sim.bybit import bybit_response
from kairos.sim.exchange import OPEN, Refusal, SimOrder, SimRefused, Status
from kairos.sim.rest_trading import Params, Route, TradingDialect
from kairos.sim.router import HttpError, Request, Response, now_ms

REFUSALS: Final = {
    Refusal.PRICE_FILTER: (170134, "Order price decimal too long."),
    Refusal.LOT_SIZE: (170137, "Order volume decimal too long."),
    Refusal.NOTIONAL: (170140, "Order value exceeded lower limit."),
    Refusal.INSUFFICIENT_BALANCE: (170131, "Insufficient balance."),
    Refusal.DUPLICATE: (170141, "Duplicate clientOrderId."),
    Refusal.WOULD_TAKE: (170130, "Data sent for paramter 'timeInForce' is not valid."),
    Refusal.UNKNOWN_SYMBOL: (170121, "Invalid symbol."),
    Refusal.UNKNOWN_ORDER: (170213, "Order does not exist."),
    Refusal.ORDER_CLOSED: (170213, "Order does not exist."),
}
ORDER_TYPES: Final = {("Limit", "GTC"): ("LIMIT", "GTC"), ("Limit", "IOC"): ("LIMIT", "IOC"),
                      ("Limit", "FOK"): ("LIMIT", "FOK"), ("Limit", "PostOnly"): ("LIMIT_MAKER", "GTC")}
WIRE_TYPE: Final = {v: k for k, v in ORDER_TYPES.items()} | {("MARKET", "IOC"): ("Market", "IOC")}
STATES: Final = {Status.NEW: "New", Status.PARTIALLY_FILLED: "PartiallyFilled", Status.FILLED: "Filled",
                 Status.CANCELED: "Cancelled", Status.EXPIRED: "Cancelled"}
SIDES: Final = {"Buy": Side.BUY, "Sell": Side.SELL}


def _error(code: int, message: str) -> HttpError:
    return HttpError(200, {"retCode": code, "retMsg": message, "result": {}, "retExtInfo": {}, "time": now_ms()})


class BybitTrading(TradingDialect):
    venue = Venue.BYBIT
    post_only_rejects = False  # a PostOnly order that would take is cancelled
    first_order_id = 2_034_000_000_000_000_000
    rate_code = "10006"

    @staticmethod
    def too_many(status: int, retry_after_s: float) -> tuple[int, dict[str, Any]]:
        """Over an endpoint's window: HTTP 200 with retCode 10006 (the per-IP 403 is not simulated)."""
        return 200, {"retCode": 10006, "retMsg": "Too many visits!", "result": {}, "retExtInfo": {},
                     "time": now_ms()}

    def routes(self) -> list[tuple[str, str, Route]]:
        return [
            ("POST", "/v5/order/create", self.place),
            ("POST", "/v5/order/cancel", self.cancel),
            ("GET", "/v5/order/realtime", self.realtime),
            ("GET", "/v5/account/wallet-balance", self.wallet),
        ]

    def authenticate(self, request: Request) -> Params:
        headers = request.headers
        key = headers.get("X-BAPI-API-KEY", "")
        if not self._key or key != self._key:
            raise _error(10003, "API key is invalid.")
        stamp, window = headers.get("X-BAPI-TIMESTAMP", ""), headers.get("X-BAPI-RECV-WINDOW", "5000")
        if not (stamp.isdigit() and window.isdigit() and bybit_in_window(int(stamp), now_ms(), int(window))):
            raise _error(10002, f"invalid request, please check your server timestamp or recv_window param. "
                                f"req_timestamp[{stamp}],server_timestamp[{now_ms()}],recv_window[{window}]")
        payload = request.body.decode(errors="replace") if request.method == "POST" else request.query_string
        if not bybit_check(self._secret, stamp, key, window, payload, headers.get("X-BAPI-SIGN", "")):
            raise _error(10004, "error sign! origin_string[...]")
        params = dict(request.query) | (request.json() if request.method == "POST" else {})
        if request.path.startswith("/v5/order/") and params.get("category") != "spot":
            raise _error(10001, "params error: category only support spot")
        return params

    def refused(self, exc: SimRefused, request: Request) -> Response:
        code, message = REFUSALS[exc.refusal]
        return bybit_response({}, code, message)

    def unknown(self) -> Response:
        return bybit_response({}, 10016, "Internal server error.")

    # -- endpoints -------------------------------------------------------------------------------

    def place(self, request: Request, params: Params) -> Response:
        side, order_type = SIDES.get(params.get("side", "")), params.get("orderType", "")
        kind_tif = ("MARKET", "IOC") if order_type == "Market" else ORDER_TYPES.get(
            (order_type, params.get("timeInForce", "GTC")))
        if side is None or kind_tif is None:
            return bybit_response({}, 170130, "Data sent for paramter 'side/orderType/timeInForce' is not valid.")
        symbol = params.get("symbol", "")
        try:
            qty = Decimal(str(params.get("qty", "")))
            price = None if kind_tif[0] == "MARKET" else Decimal(str(params.get("price", "")))
        except InvalidOperation:
            return bybit_response({}, 170130, "Data sent for paramter 'qty/price' is not valid.")
        if kind_tif[0] == "MARKET" and side is Side.BUY and params.get("marketUnit", "quoteCoin") == "quoteCoin":
            qty = self.base_for_quote(symbol, qty)
        coid = params.get("orderLinkId") or f"sim{now_ms()}"
        order = self.exchange.place(coid, symbol, side, kind_tif[0], kind_tif[1], price, qty)
        return bybit_response({"orderId": str(order.order_id), "orderLinkId": order.client_order_id})

    def cancel(self, request: Request, params: Params) -> Response:
        order = self.exchange.cancel(params.get("symbol", ""), params.get("orderLinkId", ""))
        return bybit_response({"orderId": str(order.order_id), "orderLinkId": order.client_order_id})

    def realtime(self, request: Request, params: Params) -> Response:
        """One order by ``orderLinkId`` (open or recently closed; an empty list if unknown), else open orders."""
        coid = params.get("orderLinkId")
        if coid:
            order = self.exchange.get(params.get("symbol", ""), coid)
            orders = [] if order is None else [order]
        else:
            orders = self.exchange.open_orders(params.get("symbol") or None)
        return bybit_response({"category": "spot", "nextPageCursor": "", "list": [self.order_item(o) for o in orders]})

    def wallet(self, request: Request, params: Params) -> Response:
        return bybit_response({"list": [wallet_item(self.exchange.balances())]})

    # -- formats ---------------------------------------------------------------------------------

    def order_item(self, order: SimOrder) -> dict[str, Any]:
        """An order as REST order/realtime and the private ``order`` topic tell it."""
        spec = self.market.spec(self.venue, order.symbol)
        status = STATES[order.status]
        if status == "Cancelled" and order.filled:
            status = "PartiallyFilledCanceled"
        wire_type, tif = WIRE_TYPE[(order.kind, order.tif)]
        return {
            "orderId": str(order.order_id), "orderLinkId": order.client_order_id, "symbol": order.symbol,
            "price": spec.dec(order.price) if order.price else "0", "qty": spec.dec(order.qty),
            "side": "Buy" if order.side is Side.BUY else "Sell", "orderStatus": status,
            "avgPrice": spec.dec(order.quote / order.filled) if order.filled else "",
            "leavesQty": spec.dec(order.qty - order.filled) if order.status in OPEN else "0",
            "cumExecQty": spec.dec(order.filled), "cumExecValue": spec.dec(order.quote),
            "cumExecFee": spec.dec(order.fee), "feeCurrency": order.fee_asset, "timeInForce": tif,
            "orderType": wire_type, "createdTime": str(order.created_ms),
            "updatedTime": str(order.updated_ms or order.created_ms),
        }


def wallet_item(balances: dict[str, tuple[Decimal, Decimal]]) -> dict[str, Any]:
    """A UNIFIED account with these coins' (free, locked), as REST wallet-balance and the ``wallet`` topic tell it."""
    coins = [{"coin": coin, "equity": _dec(free + locked), "walletBalance": _dec(free + locked),
              "locked": _dec(locked), "borrowAmount": "0", "usdValue": ""}
             for coin, (free, locked) in sorted(balances.items())]
    return {"accountType": "UNIFIED", "totalEquity": "", "coin": coins}


def _dec(value: Decimal) -> str:
    return f"{value.normalize():f}"
