"""The simulator's signed REST trading side: both venue dialects over one `SimExchange` per venue.

`register_trading_routes(router, market, settings)` adds the order, cancel, query, open-orders and
balance endpoints of both venues (kairos/sim/rest_binance.py, rest_okx.py); server time and symbol
filters are the public dialects' routes (kairos/sim/binance.py, okx.py). Requests are checked
like the venues check them: API key, REAL signature (keys from ``venues.<v>.api_key/api_secret/
passphrase``), timestamp window. Balances start at ``execution.paper_balances``; fees are
``venues.<v>.maker_fee_bps/taker_fee_bps``.

Fault injection for unknown-outcome and rate-limit tests, per venue port::

    POST /_sim/trading-fault {"kind": "unknown", "when": "after", "path": "/api/v3/order",
                              "method": "POST", "count": 1, "delay_s": 0, "retry_after_s": 1}

kinds: ``unknown`` (venue "status unknown" error: Binance 503 -1007, OKX 200 code 50004),
``timeout`` (sleep ``delay_s`` then 504), ``http_500`` (non-JSON 500), ``rate_limit`` (429 with
Retry-After). ``when``: ``before`` = the request is NOT processed, ``after`` = it IS processed and the
answer is replaced. The same JSON in an ``X-Sim-Fault`` request header applies to that request only.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any, ClassVar

import orjson

from kairos.config import Settings, VenueConfig
from kairos.records import Side, Venue
from kairos.sim.exchange import SimExchange, SimRefused
from kairos.sim.market import SimMarket
from kairos.sim.ratelimit import too_many
from kairos.sim.router import HttpError, Request, Response, Router, json_response
from kairos.venues import VENUES, resolve

Params = dict[str, str]
Route = Callable[[Request, Params], Response]
FAULT_KINDS = ("unknown", "timeout", "http_500", "rate_limit")


@dataclass(slots=True)
class Fault:
    kind: str
    when: str = "before"
    method: str = ""
    path: str = ""
    count: int = 1
    delay_s: float = 0.0
    retry_after_s: float = 1.0

    @classmethod
    def parse(cls, raw: Any) -> Fault:
        try:
            fault = cls(**raw)
        except TypeError as exc:
            raise HttpError(400, {"code": -1102, "msg": f"bad fault: {exc}"}) from exc
        if fault.kind not in FAULT_KINDS or fault.when not in ("before", "after"):
            raise HttpError(400, {"code": -1102, "msg": f"kind one of {FAULT_KINDS}, when before|after"})
        return fault


class TradingFaults:
    """Armed faults per venue; each fires on the next ``count`` matching requests."""

    __slots__ = ("_armed", "_lock")

    def __init__(self) -> None:
        self._armed: dict[Venue, list[Fault]] = {}
        self._lock = threading.Lock()

    def arm(self, venue: Venue, fault: Fault) -> None:
        with self._lock:
            self._armed.setdefault(venue, []).append(fault)

    def take(self, request: Request) -> Fault | None:
        header = request.headers.get("X-Sim-Fault")
        if header:
            return Fault.parse(orjson.loads(header))
        with self._lock:
            for fault in self._armed.get(request.venue, ()):
                if fault.path in ("", request.path) and fault.method in ("", request.method):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._armed[request.venue].remove(fault)
                    return fault
        return None


class TradingDialect(ABC):
    """One venue's trading endpoints; subclasses hold the wire formats and error codes."""

    venue: ClassVar[Venue]
    post_only_rejects: ClassVar[bool]  # a post-only order that would take: refused (True) or canceled
    first_order_id: ClassVar[int]  # the venue's order ids start here (their width differs per venue)
    rate_code: ClassVar[str]  # the venue's code for "over the rate limit" (counted by /_sim/rate-limits)

    def __init__(self, exchange: SimExchange, market: SimMarket, cfg: VenueConfig, faults: TradingFaults) -> None:
        self.exchange = exchange
        self.market = market
        self.faults = faults
        self._key = cfg.api_key.reveal()
        self._secret = cfg.api_secret.reveal()
        self._passphrase = cfg.passphrase.reveal()

    def register(self, router: Router) -> None:
        for method, path, handler in self.routes():
            router.register(method, path, self._serve(handler))

    def _serve(self, handler: Route) -> Callable[[Request], Response]:
        def serve(request: Request) -> Response:
            if request.venue is not self.venue:
                return json_response({"code": 404, "msg": f"not a {self.venue.name} endpoint"}, 404)
            fault = self.faults.take(request)
            if fault is not None and fault.when == "before":
                return self._faulted(fault)
            try:
                response = handler(request, self.authenticate(request))
            except SimRefused as exc:
                response = self.refused(exc, request)
            return response if fault is None else self._faulted(fault)

        return serve

    def _faulted(self, fault: Fault) -> Response:
        if fault.kind == "timeout":
            time.sleep(fault.delay_s)
            return Response(504, b"Gateway Timeout", {"Content-Type": "text/plain"})
        if fault.kind == "http_500":
            return Response(500, b"Internal Server Error", {"Content-Type": "text/plain"})
        if fault.kind == "rate_limit":
            return too_many(self.venue, 429, fault.retry_after_s).response
        return self.unknown()

    def arm_fault(self, request: Request, params: Params) -> Response:
        self.faults.arm(self.venue, Fault.parse(request.json()))
        return json_response({"armed": True})

    def base_for_quote(self, symbol: str, quote_qty: Decimal) -> Decimal:
        """A market buy sized in the quote currency (the OKX and Bybit default) turned into base at the best
        ask, rounded down to the lot."""
        spec, ask = self.market.spec(self.venue, symbol), self.market.touch(self.venue, symbol, Side.BUY)
        if ask is None:
            return Decimal(0)
        return (quote_qty / ask / spec.lot).to_integral_value(ROUND_FLOOR) * spec.lot

    @abstractmethod
    def routes(self) -> list[tuple[str, str, Route]]:
        """(method, path, handler); every route is signed. Weights and limits: kairos/sim/ratelimit.py."""

    @abstractmethod
    def authenticate(self, request: Request) -> Params:
        """Key, signature and timestamp checks; returns the request's parameters or raises HttpError."""

    @abstractmethod
    def refused(self, exc: SimRefused, request: Request) -> Response: ...

    @abstractmethod
    def unknown(self) -> Response: ...



def register_trading_routes(router: Router, market: SimMarket, settings: Settings) -> list[TradingDialect]:
    """Wire every configured venue's trading endpoints (the table's ``sim_trading`` dialects) into the simulator's
    router; returns the dialects (tests)."""
    faults = TradingFaults()
    dialects: list[TradingDialect] = []
    for row in VENUES:
        cls: type[TradingDialect] = resolve(row.sim_trading)
        cfg = settings.venues.get(row.name)
        if cfg is None or not market.symbols(cls.venue):
            continue
        assets = {}
        for inst in settings.instruments:
            symbol = inst.symbols.get(row.name)
            if symbol in market.symbols(cls.venue):
                assets[symbol] = (inst.base, inst.quote)
        exchange = SimExchange(cls.venue, market, assets, settings.execution.paper_balances,
                               (cfg.maker_fee_bps, cfg.taker_fee_bps), cls.post_only_rejects, cls.first_order_id)
        dialects.append(cls(exchange, market, cfg, faults))
    for dialect in dialects:
        dialect.register(router)
    if dialects:
        router.register("POST", "/_sim/trading-fault", _fault_route(dialects))
    return dialects


def _fault_route(dialects: list[TradingDialect]) -> Callable[[Request], Response]:
    by_venue = {d.venue: d for d in dialects}

    def arm(request: Request) -> Response:
        dialect = by_venue.get(request.venue)
        if dialect is None:
            return json_response({"code": 404, "msg": "no trading on this port"}, 404)
        return dialect.arm_fault(request, {})

    return arm
