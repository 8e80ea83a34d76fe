"""Binance Spot trading endpoints of the simulator (rest-api.md shapes, errors.md codes and texts).

Signed requests: ``X-MBX-APIKEY`` must match ``venues.binance.api_key`` (else 401 -2015), the
signature is checked over the raw query string + raw body with the ``signature`` parameter removed
(else 400 -1022), and ``timestamp`` must satisfy ``timestamp < now + 1000`` and
``now - timestamp <= recvWindow`` (else 400 -1021).
"""

from __future__ import annotations

import time
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from urllib.parse import unquote

from kairos.execution.signing_binance import binance_check
from kairos.records import Side, Venue
from kairos.sim.exchange import OPEN, Refusal, SimOrder, SimRefused, plain
from kairos.sim.rest_trading import Params, Route, TradingDialect
from kairos.sim.router import HttpError, Request, Response, json_response, now_ms

REFUSALS: Final = {
    Refusal.PRICE_FILTER: (-1013, "Filter failure: PRICE_FILTER"),
    Refusal.LOT_SIZE: (-1013, "Filter failure: LOT_SIZE"),
    Refusal.NOTIONAL: (-1013, "Filter failure: NOTIONAL"),
    Refusal.INSUFFICIENT_BALANCE: (-2010, "Account has insufficient balance for requested action."),
    Refusal.DUPLICATE: (-2010, "Duplicate order sent."),
    Refusal.WOULD_TAKE: (-2010, "Order would immediately match and take."),
    Refusal.UNKNOWN_SYMBOL: (-1121, "Invalid symbol."),
    Refusal.UNKNOWN_ORDER: (-2011, "Unknown order sent."),
    Refusal.ORDER_CLOSED: (-2011, "Unknown order sent."),
}
SIDES: Final = {"BUY": Side.BUY, "SELL": Side.SELL}
TYPES: Final = ("LIMIT", "MARKET", "LIMIT_MAKER")
TIFS: Final = ("GTC", "IOC", "FOK")
UNKNOWN_MSG: Final = "Timeout waiting for response from backend server. Send status unknown; execution status unknown."


def _error(status: int, code: int, msg: str) -> HttpError:
    return HttpError(status, {"code": code, "msg": msg})


def _mandatory(params: Params, name: str) -> str:
    value = params.get(name, "")
    if not value:
        raise _error(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    return value


def _decimal(params: Params, name: str) -> Decimal:
    try:
        return Decimal(_mandatory(params, name))
    except InvalidOperation:
        raise _error(400, -1100, f"Illegal characters found in parameter '{name}'.") from None


def _without_signature(text: str) -> tuple[str, str]:
    """(text minus its ``signature=`` parameter, the signature) — the parameter is always last."""
    at = text.rfind("signature=")
    if at < 0 or (at > 0 and text[at - 1] != "&"):
        return text, ""
    return text[: max(at - 1, 0)], text[at + len("signature="):]


class BinanceTrading(TradingDialect):
    venue = Venue.BINANCE
    post_only_rejects = True  # a LIMIT_MAKER that would take is refused (-2010)
    first_order_id = 1000
    rate_code = "-1003"

    @staticmethod
    def too_many(status: int, retry_after_s: float) -> tuple[int, dict[str, Any]]:
        """Over the IP's weight: 429 -1003; banned (418): the same code, naming when the ban ends."""
        if status == 418:
            until = now_ms() + int(retry_after_s * 1000)
            return 418, {"code": -1003, "msg": f"Way too many requests; IP(127.0.0.1) banned until {until}. Please "
                                               "use the websocket for live updates."}
        return 429, {"code": -1003, "msg": "Too many requests; current limit of IP(127.0.0.1) request weight is "
                                           "exceeded. Please use the websocket."}

    def routes(self) -> list[tuple[str, str, Route]]:
        return [
            ("POST", "/api/v3/order", self.place),
            ("DELETE", "/api/v3/order", self.cancel),
            ("GET", "/api/v3/order", self.query),
            ("GET", "/api/v3/openOrders", self.open_orders),
            ("GET", "/api/v3/account", self.account),
            ("GET", "/api/v3/myTrades", self.my_trades),
        ]

    def authenticate(self, request: Request) -> Params:
        if not self._key or request.headers.get("X-MBX-APIKEY", "") != self._key:
            raise _error(401, -2015, "Invalid API-key, IP, or permissions for action.")
        query, sig_q = _without_signature(request.query_string)
        body, sig_b = _without_signature(request.body.decode(errors="replace"))
        if not binance_check(self._secret, query + body, unquote(sig_q or sig_b)):  # Ed25519's base64: encoded
            raise _error(400, -1022, "Signature for this request is not valid.")
        params = request.form()
        stamp = int(_decimal(params, "timestamp"))
        stamp = stamp // 1000 if stamp > 10**14 else stamp
        window = float(params.get("recvWindow") or 5000)
        if window > 60000:
            raise _error(400, -1131, "recvWindow must be less than 60000")
        now = now_ms()
        if stamp >= now + 1000:
            raise _error(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if now - stamp > window:
            raise _error(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        return params

    def refused(self, exc: SimRefused, request: Request) -> Response:
        code, msg = REFUSALS[exc.refusal]
        return json_response({"code": code, "msg": msg}, 400)

    def unknown(self) -> Response:
        return json_response({"code": -1007, "msg": UNKNOWN_MSG}, 503)

    # -- endpoints -------------------------------------------------------------------------------

    def place(self, request: Request, params: Params) -> Response:
        kind, side = _mandatory(params, "type"), SIDES.get(_mandatory(params, "side"))
        if kind not in TYPES or side is None:
            raise _error(400, -1102, "Invalid type or side.")
        tif = params.get("timeInForce", "GTC") if kind == "LIMIT" else "GTC"
        if tif not in TIFS:
            raise _error(400, -1102, "Invalid timeInForce.")
        price = None if kind == "MARKET" else _decimal(params, "price")
        coid = params.get("newClientOrderId") or f"sim{time.time_ns()}"
        order = self.exchange.place(coid, _mandatory(params, "symbol"), side, kind, tif, price,
                                    _decimal(params, "quantity"))
        body = self._order(order, transact=True)
        resp_type = params.get("newOrderRespType") or ("FULL" if kind in ("LIMIT", "MARKET") else "ACK")
        if resp_type == "ACK":
            body = {k: body[k] for k in ("symbol", "orderId", "orderListId", "clientOrderId", "transactTime")}
        elif resp_type == "FULL":
            body["fills"] = [self._fill(order, *fill) for fill in order.fills]
        return json_response(body)

    def cancel(self, request: Request, params: Params) -> Response:
        symbol, coid = _mandatory(params, "symbol"), _mandatory(params, "origClientOrderId")
        body = self._order(self.exchange.cancel(symbol, coid), transact=True)
        body["origClientOrderId"] = coid
        body["clientOrderId"] = params.get("newClientOrderId") or f"cancel{time.time_ns()}"
        return json_response(body)

    def query(self, request: Request, params: Params) -> Response:
        order = self.exchange.get(_mandatory(params, "symbol"), _mandatory(params, "origClientOrderId"))
        if order is None:
            raise _error(400, -2013, "Order does not exist.")
        return json_response(self._order(order))

    def open_orders(self, request: Request, params: Params) -> Response:
        symbol = params.get("symbol") or None
        return json_response([self._order(o) for o in self.exchange.open_orders(symbol)])

    def my_trades(self, request: Request, params: Params) -> Response:
        """GET /api/v3/myTrades?symbol[&orderId]: fills with their own commission, exact (full precision)."""
        order_id = params.get("orderId")
        fills = self.exchange.trades(_mandatory(params, "symbol"), int(order_id) if order_id else None)
        return json_response([
            {"symbol": o.symbol, "id": trade_id, "orderId": o.order_id, "orderListId": -1, "price": plain(px),
             "qty": plain(qty), "quoteQty": plain(px * qty), "commission": plain(fee),
             "commissionAsset": o.fee_asset, "time": o.updated_ms, "isBuyer": o.side is Side.BUY,
             "isMaker": o.kind != "MARKET" and px == o.price, "isBestMatch": True}
            for o, (px, qty, fee, trade_id) in fills])

    def account(self, request: Request, params: Params) -> Response:
        omit = params.get("omitZeroBalances") == "true"
        rows = [{"asset": a, "free": f"{free:.8f}", "locked": f"{locked:.8f}"}
                for a, (free, locked) in sorted(self.exchange.balances().items()) if not omit or free or locked]
        return json_response({"makerCommission": 0, "takerCommission": 0, "canTrade": True, "canWithdraw": True,
                              "canDeposit": True, "accountType": "SPOT", "balances": rows,
                              "permissions": ["SPOT"], "uid": 1, "updateTime": now_ms()})

    # -- formats ---------------------------------------------------------------------------------

    def _order(self, order: SimOrder, transact: bool = False) -> dict[str, Any]:
        spec = self.market.spec(self.venue, order.symbol)
        body: dict[str, Any] = {
            "symbol": order.symbol, "orderId": order.order_id, "orderListId": -1,
            "clientOrderId": order.client_order_id, "price": spec.dec(order.price or 0),
            "origQty": spec.dec(order.qty), "executedQty": spec.dec(order.filled),
            "origQuoteOrderQty": spec.dec(0), "cummulativeQuoteQty": spec.dec(order.quote),
            "status": order.status.value, "timeInForce": order.tif, "type": order.kind, "side": order.side.name,
            "workingTime": order.created_ms, "selfTradePreventionMode": "NONE",
        }
        if transact:
            body["transactTime"] = order.updated_ms or order.created_ms
        else:
            body |= {"time": order.created_ms, "updateTime": order.updated_ms or order.created_ms,
                     "isWorking": order.status in OPEN, "stopPrice": spec.dec(0), "icebergQty": spec.dec(0)}
        return body

    def _fill(self, order: SimOrder, price: Decimal, qty: Decimal, fee: Decimal, trade_id: int) -> dict[str, Any]:
        spec = self.market.spec(self.venue, order.symbol)
        return {"price": spec.dec(price), "qty": spec.dec(qty), "commission": spec.dec(fee),
                "commissionAsset": order.fee_asset, "tradeId": trade_id}
