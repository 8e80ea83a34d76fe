"""The gate <-> executor contract: what the gate hands an execution adapter and what it gets back.

An `Executor` is owned by the gate. ``submit``/``cancel`` never block (they hand work to the
adapter's HTTP threads); everything the venue says comes back through ``drain``. An unknown outcome
(5xx, timeout, Binance -1007, OKX 50004) is resolved inside the adapter by ``query`` before any
report about that order is emitted: an adapter never guesses.

Clocks: ``ts_origin_ns`` (from the intent) and ``ExecReport.ts_sent_ns`` are ``time.time_ns()``
(wall clock, comparable across processes); ``ts_exchange_ns`` is the venue's own time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from kairos.execution.filters import SymbolFilters
from kairos.records import ExecKind, OrderState, OrderType, RejectReason, Side, Tif, Venue

__all__ = ["BalancePush", "BalanceSource", "ExecReport", "Executor", "OrderRequest", "SymbolFilters", "VenueSnapshot"]

BalancePush = tuple[float, float, int]
"""What a venue pushed about one asset: (free, locked, venue time in ms of the account update)."""


@dataclass(slots=True)
class OrderRequest:
    """One new order, already risk-checked; ``client_order_id`` is deterministic (<= 32 alnum)."""

    client_order_id: str
    instrument: int
    symbol: str
    side: Side
    order_type: OrderType
    tif: Tif
    price: float
    qty: float
    ts_origin_ns: int


@dataclass(slots=True)
class ExecReport:
    """One thing the venue said about one order. Venue code and message are kept verbatim.

    The fields after ``ts_exchange_ns`` are optional extras: ``ts_sent_ns`` is stamped when the
    request was handed to HTTP (gate-latency benchmark); instrument/side/price/qty describe the
    order itself and are filled by ``snapshot``/``query`` so the gate can adopt orders it did not
    know about (reconciliation after a restart). In a STATE report (``query``/``snapshot``),
    ``last_px`` is the average fill price and ``fee`` the cumulative fee. ``fee`` is a cost
    (positive) in ``fee_asset``.
    """

    client_order_id: str
    kind: ExecKind
    state: OrderState
    last_px: float = 0.0
    last_qty: float = 0.0
    cum_qty: float = 0.0
    fee: float = 0.0
    venue_order_id: int = 0
    reason: RejectReason = RejectReason.NONE
    venue_code: str = ""
    message: str = ""
    ts_exchange_ns: int = 0
    ts_sent_ns: int = 0
    instrument: int = 0
    side: Side = Side.NONE
    price: float = 0.0
    qty: float = 0.0
    fee_asset: str = ""


@dataclass(slots=True)
class VenueSnapshot:
    """Open orders (state ACK or PARTIAL) and balances asset -> (free, locked)."""

    open_orders: list[ExecReport] = field(default_factory=list)
    balances: dict[str, tuple[float, float]] = field(default_factory=dict)


class BalanceSource(Protocol):
    def take_pushes(self) -> dict[str, BalancePush]:
        """The newest push per asset received since the last call (never blocks)."""


class Executor(ABC):
    """An execution adapter for one venue (REST, or paper).

    Thread model: the gate calls every method from its own single thread. Implementations may use
    worker threads internally, but ``drain`` and ``balance_pushes`` are the only ways results reach the gate.
    """

    venue: Venue
    wake: Callable[[], None] | None = None
    """The gate's doorbell, rung (from any thread) once a report waits in ``drain``: a sleeping gate takes an ACK
    or a fill at once instead of at its next poll. None: nobody sleeps on it (tests, benchmarks that poll)."""
    stream_sink: BalanceSource | None = None
    """A live executor's private-stream side (`TrackerSink`); None: the venue pushes no balances (paper)."""

    @abstractmethod
    def start(self) -> None:
        """Sync the clock offset and load symbol filters; raises ExecutionError if that fails."""

    @abstractmethod
    def submit(self, req: OrderRequest) -> None:
        """Round to filters and hand to an HTTP worker; never blocks. Outcome arrives via drain()."""

    @abstractmethod
    def cancel(self, client_order_id: str, instrument: int, symbol: str) -> None:
        """Request a cancel; never blocks. A CANCELED or CANCEL_REJECT report follows via drain()."""

    @abstractmethod
    def drain(self) -> list[ExecReport]:
        """Reports that arrived since the last call, in arrival order; never blocks."""

    @abstractmethod
    def query(self, client_order_id: str, symbol: str) -> ExecReport | None:
        """Blocking: the venue's current view of one order (kind STATE), None if it does not exist."""

    @abstractmethod
    def snapshot(self) -> VenueSnapshot:
        """Blocking: open orders and balances, for reconciliation when the gate starts."""

    @abstractmethod
    def filters(self, instrument: int) -> SymbolFilters:
        """Tick/lot/min-notional rules for an instrument (available after start())."""

    @abstractmethod
    def close(self) -> None:
        """Stop worker threads and release connections; pending reports stay drainable."""

    @abstractmethod
    def reach_window_ns(self) -> int:
        """How long after it was sent a request can still reach the venue: reconciliation waits that
        long before it calls an order the venue does not know lost."""

    def on_mark(self, instrument: int, bid: float, ask: float) -> None:
        """A new valid top of book for one of this venue's instruments. A real venue sees its market
        itself (nothing to do); the paper venue fills its resting orders against it."""
        return

    def balance_pushes(self) -> dict[str, BalancePush]:
        """Balances the venue pushed since the last call (asset -> newest push); the gate's book decides
        when each may replace its own numbers (`kairos.gate.pushes`)."""
        sink = self.stream_sink
        return {} if sink is None else sink.take_pushes()

    def pending(self) -> int:
        """Requests this executor will still report on with no new input (paper requests travelling to
        the paper venue): while any are, the gate polls instead of sleeping on its doorbell."""
        return 0

    def stats(self) -> dict[str, int]:
        """Counters for the status board (illegal transitions, retries, rate limits ...)."""
        return {}
