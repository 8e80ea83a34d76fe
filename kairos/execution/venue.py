"""The part of a REST adapter that differs per venue, as data plus pure functions.

A dialect builds signed `Call`s and parses JSON bodies; it does no I/O. Its error tables are
typed data (no ``if venue ==`` anywhere): `classify` turns any HTTP answer into a `Reply` whose
`Outcome` tells the executor what is known about the order, keeping the venue's code and message.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar

import orjson

from kairos.config import VenueConfig
from kairos.execution.base import OrderRequest, SymbolFilters
from kairos.execution.limits import ServerClock
from kairos.execution.state import OrderView, TradeFill
from kairos.ratelimit.budget import retry_after_s
from kairos.records import RejectReason, Venue


class Outcome(Enum):
    OK = "ok"
    REJECTED = "rejected"          # definite: the venue did not act
    NOT_FOUND = "not_found"        # the venue does not know the order
    UNKNOWN = "unknown"            # it may or may not have acted: query, never assume
    RATE_LIMITED = "rate_limited"  # definite refusal, and no requests until retry_after_s
    UNAVAILABLE = "unavailable"    # nothing reached the venue (connection refused / connect timeout)


@dataclass(slots=True)
class Call:
    method: str
    path: str                      # request path including the query string
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Reply:
    outcome: Outcome
    data: Any
    code: str = ""
    message: str = ""
    reason: RejectReason = RejectReason.NONE
    retry_after_s: float = 0.0
    clock_skew: bool = False


class VenueDialect(ABC):
    """Venue data and pure request/response functions; `RestExecution` does the I/O."""

    venue: ClassVar[Venue]
    name: ClassVar[str]
    ack_only: ClassVar[bool] = False            # place response has no fills: query immediate orders
    cancel_confirmed: ClassVar[bool] = True     # a successful cancel response means "canceled"
    reasons: ClassVar[Mapping[str, RejectReason]] = {}
    message_reasons: ClassVar[tuple[tuple[str, str, RejectReason], ...]] = ()   # (code, substring, reason)
    unknown_codes: ClassVar[frozenset[str]] = frozenset()
    rate_limit_codes: ClassVar[frozenset[str]] = frozenset()
    not_found_codes: ClassVar[frozenset[str]] = frozenset()
    clock_codes: ClassVar[frozenset[str]] = frozenset()
    default_retry_s: ClassVar[float] = 1.0

    clock: ServerClock

    def __init__(self, cfg: VenueConfig) -> None:
        self._key = cfg.api_key.reveal()
        self._secret = cfg.api_secret.reveal()
        self._passphrase = cfg.passphrase.reveal()
        self.recv_window_ms = cfg.recv_window_ms

    def reason(self, code: str, message: str) -> RejectReason:
        """Venue error -> RejectReason; unknown codes are VENUE_REJECTED (code and text kept)."""
        for match_code, text, reason in self.message_reasons:
            if code == match_code and text in message.lower():
                return reason
        return self.reasons.get(code, RejectReason.VENUE_REJECTED)

    def classify(self, status: int, headers: Mapping[str, str], content: bytes) -> Reply:
        try:
            data = orjson.loads(content) if content else None
        except orjson.JSONDecodeError:
            data = None
        return self.classify_data(status, headers, data, content[:200].decode(errors="replace"))

    def classify_data(self, status: int, headers: Mapping[str, str], data: Any, text: str = "") -> Reply:
        """`classify` of a parsed answer (a WebSocket reply carries the same status and error body)."""
        error = self.error_of(status, data)
        if error is None and status < 400:
            return Reply(Outcome.OK, data)
        code, message = error or (f"HTTP{status}", text)
        if status in (418, 429) or code in self.rate_limit_codes:
            return Reply(Outcome.RATE_LIMITED, data, code, message, RejectReason.VENUE_RATE_LIMIT,
                         retry_after_s(headers, self.default_retry_s))
        if status >= 500 or code in self.unknown_codes:
            return Reply(Outcome.UNKNOWN, data, code, message, RejectReason.VENUE_UNAVAILABLE)
        outcome = Outcome.NOT_FOUND if code in self.not_found_codes else Outcome.REJECTED
        return Reply(outcome, data, code, message, self.reason(code, message), clock_skew=code in self.clock_codes)

    @abstractmethod
    def error_of(self, status: int, data: Any) -> tuple[str, str] | None:
        """(venue code, message) if the body reports a failure, else None."""

    @abstractmethod
    def session_headers(self) -> dict[str, str]: ...

    @abstractmethod
    def time_call(self) -> Call: ...

    @abstractmethod
    def parse_time(self, data: Any) -> int:
        """Server time in epoch ms."""

    @abstractmethod
    def filters_call(self, symbols: list[str]) -> Call: ...

    @abstractmethod
    def parse_filters(self, data: Any) -> dict[str, SymbolFilters]: ...

    @abstractmethod
    def place_call(self, req: OrderRequest, price: str | None, qty: str) -> Call: ...

    @abstractmethod
    def parse_placed(self, data: Any, req: OrderRequest) -> OrderView: ...

    @abstractmethod
    def cancel_call(self, client_order_id: str, symbol: str) -> Call: ...

    @abstractmethod
    def query_call(self, client_order_id: str, symbol: str) -> Call: ...

    @abstractmethod
    def parse_order(self, data: Any) -> OrderView: ...

    def parse_queried(self, data: Any) -> OrderView | None:
        """A successful order query's view; None where the venue answers an unknown order with an empty list
        rather than an error code (Bybit), so "not found" stays a fact, not a parse failure."""
        return self.parse_order(data)

    # the REST (method, path) whose weight a WS place / cancel pays; () = no WebSocket order entry
    ws_place_route: ClassVar[tuple[str, str] | tuple[()]] = ()
    ws_cancel_route: ClassVar[tuple[str, str] | tuple[()]] = ()

    def ws_login(self) -> list[str]:
        """Frames sent after the order socket connects (OKX login); none where each request is signed."""
        return []

    def ws_login_route(self) -> tuple[str, str] | tuple[()]:
        """What the venue charges the order socket's login (Binance ``session.logon``); () when it charges nothing."""
        return ()

    def ws_logged_in(self, msg: dict[str, Any]) -> bool:
        """The reply that makes the order socket usable (only asked when ``ws_login`` sends frames)."""
        return False

    def ws_routable(self, symbol: str) -> bool:
        """Whether an order for ``symbol`` can go over the order socket (OKX: the venue published its instIdCode)."""
        return True

    def ws_place(self, rid: str, req: OrderRequest, price: str | None, qty: str) -> str:
        raise NotImplementedError(f"{self.name}: no WebSocket order entry")

    def ws_cancel(self, rid: str, client_order_id: str, symbol: str) -> str:
        raise NotImplementedError(f"{self.name}: no WebSocket order entry")

    def ws_reply(self, msg: dict[str, Any]) -> tuple[Reply, int]:
        """A WS order reply classified like the REST answer (its ``data`` what REST's would be), and the
        venue's request-weight count it reports (-1: none)."""
        raise NotImplementedError(f"{self.name}: no WebSocket order entry")

    def trades_call(self, symbol: str, venue_order_id: int) -> Call | None:
        """One order's own fills with their fees, for a venue whose order views carry no fee (Binance
        myTrades); None: the views carry the cumulative fee and there is nothing to fetch."""
        return None

    def parse_trades(self, data: Any, view: OrderView) -> list[tuple[OrderView, TradeFill]]:
        """The fills ``trades_call`` returned, oldest first, each with the order's cumulative view after it."""
        return []

    @abstractmethod
    def open_orders_call(self, symbol: str | None) -> Call: ...

    @abstractmethod
    def parse_open_orders(self, data: Any) -> list[OrderView]: ...

    @abstractmethod
    def balances_call(self) -> Call: ...

    @abstractmethod
    def parse_balances(self, data: Any) -> dict[str, tuple[float, float]]: ...

    @abstractmethod
    def balances_ms(self, data: Any) -> int:
        """The venue's time (ms) of a balances answer, which includes every fill made by then (0: not given)."""
