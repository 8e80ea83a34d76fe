"""Binance Spot signed REST (rest-api.md): /api/v3/order, openOrders, account, exchangeInfo, time.

Params go percent-encoded in the query string (GET, DELETE) or the form body (POST); the signature
is over query + body with no separator. Place responses use ``newOrderRespType=FULL`` so fills and
commissions arrive with the acknowledgement; later fills are polled (order queries carry no fee,
so the configured maker fee is charged in the asset received, see RestExecution._estimate_fee).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import orjson

from kairos.config import ExecutionConfig, VenueConfig
from kairos.errors import ConfigError
from kairos.execution.base import OrderRequest, SymbolFilters
from kairos.execution.filters import venue_decimal
from kairos.execution.rest import RestExecution
from kairos.execution.signing import percent_encode
from kairos.execution.signing_binance import binance_signature, is_ed25519, key_problem, query_signature
from kairos.execution.state import OrderView, TradeFill
from kairos.execution.stream import PrivateStream
from kairos.execution.venue import Call, Reply
from kairos.instruments import InstrumentTable
from kairos.ratelimit import Budget
from kairos.records import OrderState, OrderType, RejectReason, Side, Venue

STATUS: Final = {
    "NEW": OrderState.ACK, "PENDING_NEW": OrderState.ACK, "PENDING_CANCEL": OrderState.ACK,
    "PARTIALLY_FILLED": OrderState.PARTIAL, "FILLED": OrderState.FILLED, "CANCELED": OrderState.CANCELED,
    "REJECTED": OrderState.REJECTED, "EXPIRED": OrderState.EXPIRED, "EXPIRED_IN_MATCH": OrderState.EXPIRED,
}
ORDER_TYPE: Final = {OrderType.LIMIT: "LIMIT", OrderType.MARKET: "MARKET", OrderType.LIMIT_MAKER: "LIMIT_MAKER"}
SIDES: Final = {Side.BUY: "BUY", Side.SELL: "SELL", "BUY": Side.BUY, "SELL": Side.SELL}
FORM: Final = {"Content-Type": "application/x-www-form-urlencoded"}
WEIGHT_1M: Final = ("REQUEST_WEIGHT", "MINUTE", 1)  # the WS API ``rateLimits`` entry the REST budget counts
LOGON_ID: Final = "logon"


class BinanceExecution(RestExecution):
    venue = Venue.BINANCE
    name = "binance"
    reasons = MappingProxyType({
        "-1111": RejectReason.VENUE_FILTER,
        "-1021": RejectReason.VENUE_AUTH, "-1022": RejectReason.VENUE_AUTH, "-2014": RejectReason.VENUE_AUTH,
        "-2015": RejectReason.VENUE_AUTH, "-1003": RejectReason.VENUE_RATE_LIMIT,
        "-1015": RejectReason.VENUE_RATE_LIMIT, "-2013": RejectReason.UNKNOWN_ORDER,
    })
    message_reasons = (
        ("-1013", "filter failure", RejectReason.VENUE_FILTER),
        ("-2010", "insufficient balance", RejectReason.VENUE_INSUFFICIENT_BALANCE),
        ("-2011", "unknown order", RejectReason.UNKNOWN_ORDER),
    )
    unknown_codes = frozenset({"-1006", "-1007"})
    rate_limit_codes = frozenset({"-1003", "-1015"})
    not_found_codes = frozenset({"-2013"})
    clock_codes = frozenset({"-1021"})
    default_retry_s = 5.0
    ws_place_route = ("POST", "/api/v3/order")
    ws_cancel_route = ("DELETE", "/api/v3/order")

    def __init__(self, venue_cfg: VenueConfig, exec_cfg: ExecutionConfig, instruments: InstrumentTable,
                 budget: Budget | None = None, stream: type[PrivateStream] | None = None) -> None:
        problem = key_problem(venue_cfg.api_secret.reveal())
        if problem:
            raise ConfigError(problem, "venues.binance.api_secret", "environment")
        super().__init__(venue_cfg, exec_cfg, instruments, budget, stream)
        self._session_logon = is_ed25519(self._secret)

    def error_of(self, status: int, data: Any) -> tuple[str, str] | None:
        if isinstance(data, dict) and isinstance(data.get("code"), int) and data["code"] < 0:
            return str(data["code"]), str(data.get("msg", ""))
        return None

    def session_headers(self) -> dict[str, str]:
        return {"X-MBX-APIKEY": self._key}

    def _signed(self, method: str, path: str, params: list[tuple[str, str]]) -> Call:
        params = [*params, ("recvWindow", str(self.recv_window_ms)), ("timestamp", str(self.clock.now_ms()))]
        payload = percent_encode(params)
        signed = f"{payload}&signature={query_signature(self._secret, payload)}"
        if method == "POST":
            return Call(method, path, signed, FORM)
        return Call(method, f"{path}?{signed}")

    def time_call(self) -> Call:
        return Call("GET", "/api/v3/time")

    def parse_time(self, data: Any) -> int:
        return int(data["serverTime"])

    def filters_call(self, symbols: list[str]) -> Call:
        return Call("GET", "/api/v3/exchangeInfo?" + percent_encode([("symbols", orjson.dumps(symbols).decode())]))

    def parse_filters(self, data: Any) -> dict[str, SymbolFilters]:
        for limit in data.get("rateLimits", ()):
            kind = (limit.get("rateLimitType"), limit.get("interval"), limit.get("intervalNum"))
            if kind == ("REQUEST_WEIGHT", "MINUTE", 1):
                self.budget.lower_limit(self.budget.limits.window_of("REQUEST_WEIGHT"), int(limit["limit"]))
        return {s["symbol"]: binance_filters(s) for s in data["symbols"]}

    def place_call(self, req: OrderRequest, price: str | None, qty: str) -> Call:
        return self._signed("POST", "/api/v3/order", _place_params(req, price, qty))

    def ws_login(self) -> list[str]:
        """An Ed25519 key logs the order socket on once (``session.logon``, signed): its orders then go unsigned.
        An HMAC key cannot log on (the venue refuses it): each order is signed."""
        if not self._session_logon:
            return []
        return [self._ws_signed(LOGON_ID, "session.logon", [])]

    def ws_login_route(self) -> tuple[str, str] | tuple[()]:
        return ("POST", "/ws-api/v3/session.logon") if self._session_logon else ()

    def ws_logged_in(self, msg: dict[str, Any]) -> bool:
        return msg.get("id") == LOGON_ID and msg.get("status") == 200

    def ws_place(self, rid: str, req: OrderRequest, price: str | None, qty: str) -> str:
        """WS API ``order.place``: the REST parameters; signed over all of them sorted by name, unless the socket
        logged on (Ed25519)."""
        return self._ws_order(rid, "order.place", _place_params(req, price, qty))

    def ws_cancel(self, rid: str, client_order_id: str, symbol: str) -> str:
        return self._ws_order(rid, "order.cancel", [("symbol", symbol), ("origClientOrderId", client_order_id)])

    def _ws_order(self, rid: str, method: str, params: list[tuple[str, str]]) -> str:
        if not self._session_logon:
            return self._ws_signed(rid, method, params)
        fields = dict(params) | {"recvWindow": str(self.recv_window_ms), "timestamp": str(self.clock.now_ms())}
        return orjson.dumps({"id": rid, "method": method, "params": fields}).decode()

    def _ws_signed(self, rid: str, method: str, params: list[tuple[str, str]]) -> str:
        fields = dict(params) | {"apiKey": self._key, "recvWindow": str(self.recv_window_ms),
                                 "timestamp": str(self.clock.now_ms())}
        fields["signature"] = binance_signature(self._secret, percent_encode(sorted(fields.items())))
        return orjson.dumps({"id": rid, "method": method, "params": fields}).decode()

    def ws_reply(self, msg: dict[str, Any]) -> tuple[Reply, int]:
        """``{"id", "status", "result" | "error": {"code", "msg", "data"?}, "rateLimits"}``: the result is REST's
        body; a 429/418 carries ``error.data.retryAfter``, the epoch ms when sending is allowed again."""
        status = int(msg["status"])
        used = weight_used(msg)
        if status < 400:
            return self.classify_data(status, {}, msg.get("result")), used
        body = msg.get("error")
        return self.classify_data(status, self._ws_retry(body), body, orjson.dumps(body).decode()[:200]), used

    def _ws_retry(self, error: Any) -> dict[str, str]:
        """``error.data.retryAfter`` (epoch ms) as REST's Retry-After (seconds from the reply's ``serverTime``)."""
        data = error.get("data") if isinstance(error, dict) else None
        if not isinstance(data, dict) or "retryAfter" not in data:
            return {}
        now_ms = int(data.get("serverTime") or self.clock.now_ms())
        return {"Retry-After": str(max(0.0, (int(data["retryAfter"]) - now_ms) / 1000))}

    def parse_placed(self, data: Any, req: OrderRequest) -> OrderView:
        view = self.parse_order(data)
        fills = data.get("fills")
        if fills is not None:
            asset = fills[0]["commissionAsset"] if fills else ""
            view.fee_cum = sum(float(f["commission"]) for f in fills if f["commissionAsset"] == asset)
            view.fee_asset = asset
        return view

    def cancel_call(self, client_order_id: str, symbol: str) -> Call:
        return self._signed("DELETE", "/api/v3/order", [("symbol", symbol), ("origClientOrderId", client_order_id)])

    def query_call(self, client_order_id: str, symbol: str) -> Call:
        return self._signed("GET", "/api/v3/order", [("symbol", symbol), ("origClientOrderId", client_order_id)])

    def parse_order(self, data: Any) -> OrderView:
        """An order object from place/cancel/query/openOrders; cancel names the id origClientOrderId."""
        ts_ms = data.get("updateTime") or data.get("transactTime") or data.get("workingTime") or 0
        return OrderView(
            client_order_id=data.get("origClientOrderId") or data["clientOrderId"],
            state=STATUS[data.get("status", "NEW")],
            cum_qty=float(data.get("executedQty", 0)),
            cum_quote=float(data.get("cummulativeQuoteQty", 0)),
            fee_cum=None,
            venue_order_id=int(data["orderId"]),
            symbol=data["symbol"],
            side=SIDES.get(data.get("side", ""), Side.NONE),
            price=float(data.get("price", 0)),
            qty=float(data.get("origQty", 0)),
            ts_exchange_ns=int(ts_ms) * 1_000_000,
        )

    def trades_call(self, symbol: str, venue_order_id: int) -> Call | None:
        return self._signed("GET", "/api/v3/myTrades", [("symbol", symbol), ("orderId", str(venue_order_id))])

    def parse_trades(self, data: Any, view: OrderView) -> list[tuple[OrderView, TradeFill]]:
        trades, qty, quote = [], 0.0, 0.0
        for t in sorted(data, key=lambda t: int(t["id"])):
            fill = TradeFill(str(t["id"]), float(t["qty"]), float(t["price"]), float(t["commission"]),
                             t["commissionAsset"])
            if qty + fill.qty > view.cum_qty + 1e-12:
                break  # filled after the view was taken: the next reconciliation reports it with its state
            qty, quote = qty + fill.qty, quote + float(t["quoteQty"])
            done = view.state is OrderState.FILLED and qty >= view.cum_qty - 1e-12  # the fill that completes it
            state = OrderState.FILLED if done else OrderState.PARTIAL
            trades.append((dataclasses.replace(view, state=state, cum_qty=qty, cum_quote=quote), fill))
        return trades

    def open_orders_call(self, symbol: str | None) -> Call:
        return self._signed("GET", "/api/v3/openOrders", [("symbol", symbol)] if symbol else [])

    def parse_open_orders(self, data: Any) -> list[OrderView]:
        return [self.parse_order(item) for item in data]

    def balances_call(self) -> Call:
        return self._signed("GET", "/api/v3/account", [("omitZeroBalances", "true")])

    def parse_balances(self, data: Any) -> dict[str, tuple[float, float]]:
        return {b["asset"]: (float(b["free"]), float(b["locked"])) for b in data["balances"]}

    def balances_ms(self, data: Any) -> int:
        return int(data.get("updateTime") or 0)  # the account's last update: nothing changed after it


def weight_used(msg: dict[str, Any]) -> int:
    """The IP's request weight this minute from a WS API reply's ``rateLimits`` (-1: not reported)."""
    return next((int(r["count"]) for r in msg.get("rateLimits") or ()
                 if (r.get("rateLimitType"), r.get("interval"), r.get("intervalNum")) == WEIGHT_1M), -1)


def _place_params(req: OrderRequest, price: str | None, qty: str) -> list[tuple[str, str]]:
    params = [("symbol", req.symbol), ("side", SIDES[req.side]), ("type", ORDER_TYPE[req.order_type])]
    if req.order_type is OrderType.LIMIT:
        params.append(("timeInForce", req.tif.name))
    params.append(("quantity", qty))
    if price is not None:
        params.append(("price", price))
    return [*params, ("newClientOrderId", req.client_order_id), ("newOrderRespType", "FULL")]


def binance_filters(symbol_info: Mapping[str, Any]) -> SymbolFilters:
    """From one ``exchangeInfo.symbols[]`` entry: PRICE_FILTER, LOT_SIZE, MIN_NOTIONAL or NOTIONAL. Binance rule:
    ``price % tickSize == 0`` (not relative to minPrice) and a field equal to 0 disables its check."""
    by_type = {f["filterType"]: f for f in symbol_info.get("filters", ())}
    price = by_type.get("PRICE_FILTER", {})
    lot = by_type.get("LOT_SIZE", {})
    notional = by_type.get("NOTIONAL") or by_type.get("MIN_NOTIONAL") or {}
    return SymbolFilters(
        tick=venue_decimal(price.get("tickSize")),
        step=venue_decimal(lot.get("stepSize")),
        min_qty_d=venue_decimal(lot.get("minQty")),
        max_qty_d=venue_decimal(lot.get("maxQty")),
        min_price_d=venue_decimal(price.get("minPrice")),
        max_price_d=venue_decimal(price.get("maxPrice")),
        min_notional_d=venue_decimal(notional.get("minNotional")),
        max_notional_d=venue_decimal(notional.get("maxNotional")),
    )
