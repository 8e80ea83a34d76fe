"""Paper trading: a venue simulated inside the gate, filling against live marks.

An order reaches the paper venue ``paper_latency_ms`` after ``submit`` (cancels too). Against the
top of book at that moment: a marketable order fills in full as taker at the touch moved by
``paper_slippage_bps`` (never beyond its limit); MARKET needs a book; IOC and FOK that do not
cross expire (depth is taken as unlimited, so FOK = IOC); LIMIT_MAKER that would cross is
rejected; the rest rest and fill as maker at their own price when a later mark crosses them.
Fees (taker/maker bps) are charged in the quote asset; balances start at ``paper_balances``.
The venue's own order rules (tick, lot step, min/max quantity and price, min notional) come from its
public REST at ``start`` (``rules``: the live exchangeInfo / instruments documents; the simulator in
dev and tests) and are applied exactly (Decimal) to the request a live adapter would send (rounded
as `SymbolFilters.rounded` does): one still under a minimum is refused ``-1013 Filter failure:
<FILTER>``. ``start`` raises ExecutionError while the rules cannot be loaded, so the venue does not
start (the gate retries; docs/EXECUTION.md).

Every state change is one ledger entry (``N`` new, ``F`` fill, ``X`` end, ``J`` rejected),
applied by the same code live and on replay, so a paper venue outlives a gate ``kill -9`` like a
real one: the restarted gate reconciles against it. A start that replays more than
``compact_entries`` entries rewrites the ledger as the venue stands: balances and the next venue
order id (``K``), then every resting order and the newest ``KEEP_DECISIONS`` others as they are
(``S``), and the newest rejected ids (``J``); the ledger before it stays as ``<name>.prev``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kairos.config import ExecutionConfig, VenueConfig
from kairos.errors import ExecutionError
from kairos.execution.base import ExecReport, Executor, OrderRequest, SymbolFilters, VenueSnapshot
from kairos.execution.state import LIVE
from kairos.instruments import InstrumentTable
from kairos.journal import KEEP_DECISIONS, AppendLog
from kairos.records import ExecKind, OrderState, OrderType, RejectReason, Side, Tif, Venue

log = logging.getLogger(__name__)
_END = {OrderState.CANCELED: ExecKind.CANCELED, OrderState.EXPIRED: ExecKind.EXPIRED}
Rules = Callable[[], Mapping[int, SymbolFilters]]


@dataclass(slots=True)
class _Order:
    req: OrderRequest
    venue_order_id: int
    lock: float
    lock_asset: str
    state: OrderState = OrderState.ACK
    cum_qty: float = 0.0
    cum_quote: float = 0.0
    fee_cum: float = 0.0


class PaperExecutor(Executor):
    """`Executor` for one venue in paper mode; also fed marks through `on_mark`."""

    def __init__(self, venue: Venue, instruments: InstrumentTable, cfg: ExecutionConfig, venue_cfg: VenueConfig,
                 rules: Rules, ledger: Path | None = None, clock: Callable[[], int] = time.monotonic_ns,
                 compact_entries: int = 0) -> None:
        self.venue = venue
        self._load_rules = rules
        self._filters: dict[int, SymbolFilters] = {}
        self._assets = {i.id: (i.base, i.quote) for i in instruments if venue in i.venue_symbols}
        self._latency_ns = int(cfg.paper_latency_ms * 1e6)
        self._slip = cfg.paper_slippage_bps / 1e4
        self._fee = {True: venue_cfg.taker_fee_bps / 1e4, False: venue_cfg.maker_fee_bps / 1e4}
        self._balances = {asset: [amount, 0.0] for asset, amount in cfg.paper_balances.items()}
        self._top: dict[int, tuple[float, float]] = {}
        self._orders: dict[str, _Order] = {}
        self._resting: dict[int, dict[str, _Order]] = {}
        self._rejected: dict[str, None] = {}  # ordered: compaction keeps the newest
        self._inbox: list[tuple[int, OrderRequest | str]] = []
        self._reports: list[ExecReport] = []
        self._ledger = AppendLog(ledger) if ledger else None
        self._clock = clock
        self._next_id = 1
        self._compact_entries = compact_entries

    def start(self) -> None:
        """Load the venue's rules, then replay the ledger (orders, fills and balances as the venue last had
        them) and compact it if long. Raises ExecutionError, with nothing replayed, without the rules."""
        rules = self._load_rules()
        missing = [str(i) for i in self._assets if i not in rules]
        if missing:
            raise ExecutionError(f"paper {self.venue.name}: no order rules for instrument(s) {', '.join(missing)}")
        self._filters = {i: rules[i] for i in self._assets}
        if self._ledger is None:
            return
        entries = 0
        for entry in self._ledger.replay():
            entries += 1
            kind = entry["t"]
            if kind == "J":
                self._rejected[entry["c"]] = None
            elif kind == "S":
                self._restore(entry)
            elif kind == "K":
                self._balances = {asset: list(amounts) for asset, amounts in entry["b"].items()}
                self._next_id = entry["id"]
            else:
                self._apply(entry, live=False)
        if self._compact_entries and entries > self._compact_entries:
            try:
                self._ledger.rewrite(self._compacted())
            except OSError as exc:
                log.error("paper %s: ledger compaction failed, going on with the full ledger: %s",
                          self.venue.name, exc)

    def _compacted(self) -> list[dict[str, Any]]:
        """The venue as it stands (module docstring): what a compacted ledger holds."""
        newest = list(self._orders)[-KEEP_DECISIONS:]
        kept = dict.fromkeys(c for c, o in self._orders.items() if o.state in LIVE) | dict.fromkeys(newest)
        out: list[dict[str, Any]] = [{"t": "K", "b": self._balances, "id": self._next_id}]
        out += [_snapshot_entry(self._orders[c]) for c in self._orders if c in kept]
        out += [{"t": "J", "c": c} for c in list(self._rejected)[-KEEP_DECISIONS:]]
        return out

    def _restore(self, e: dict[str, Any]) -> None:
        """An order from a compacted ledger, as it stood (its lock is already in the balances)."""
        order = _Order(_request(e), e["vo"], e["lk"], e["la"], OrderState(e["st"]), e["cq"], e["cqq"], e["fc"])
        req = order.req
        self._orders[req.client_order_id] = order
        if order.state in LIVE:
            self._resting.setdefault(req.instrument, {})[req.client_order_id] = order

    def submit(self, req: OrderRequest) -> None:
        self._inbox.append((self._clock() + self._latency_ns, req))

    def cancel(self, client_order_id: str, instrument: int, symbol: str) -> None:
        self._inbox.append((self._clock() + self._latency_ns, client_order_id))

    def pending(self) -> int:
        """Requests still travelling to the paper venue."""
        return len(self._inbox)

    def reach_window_ns(self) -> int:
        return self._latency_ns

    def drain(self) -> list[ExecReport]:
        """Deliver requests whose latency has passed, then hand over every report since last call."""
        if self._inbox:
            now = self._clock()
            due = [item for item in self._inbox if item[0] <= now]
            if due:
                self._inbox = [item for item in self._inbox if item[0] > now]
                for _, item in due:
                    if isinstance(item, OrderRequest):
                        self._arrive(item)
                    else:
                        self._cancel(item)
        reports, self._reports = self._reports, []
        return reports

    def on_mark(self, instrument: int, bid: float, ask: float) -> None:
        """New top of book: resting orders it crosses fill as maker at their own price."""
        self._top[instrument] = (bid, ask)
        for order in list(self._resting.get(instrument, {}).values()):
            if _crosses(order.req, ask if order.req.side == Side.BUY else bid):
                self._fill(order, order.req.price, taker=False)

    def _arrive(self, req: OrderRequest) -> None:
        """The order reaches the venue: refuse it, or book it and fill / expire / rest it."""
        bid, ask = self._top.get(req.instrument, (0.0, 0.0))
        touch = ask if req.side == Side.BUY else bid
        crosses = _crosses(req, touch)
        refusal = self._refusal(req, touch, crosses)
        if refusal:
            self._reject(req, *refusal)
            return
        order = self._apply(_new_entry(req, self._next_id, *self._lock(req, touch)), live=True)
        if crosses:
            slipped = touch * (1.0 + self._slip if req.side == Side.BUY else 1.0 - self._slip)
            limit = slipped if req.order_type == OrderType.MARKET else req.price
            self._fill(order, min(slipped, limit) if req.side == Side.BUY else max(slipped, limit), taker=True)
        elif req.tif != Tif.GTC and req.order_type != OrderType.LIMIT_MAKER:
            self._apply({"t": "X", "c": req.client_order_id, "s": int(OrderState.EXPIRED)}, live=True)

    def _refusal(self, req: OrderRequest, touch: float, crosses: bool) -> tuple[RejectReason, str, str] | None:
        """Why the venue refuses an order (its own code and message), None if it books it."""
        if req.client_order_id in self._orders or req.client_order_id in self._rejected:
            return RejectReason.VENUE_REJECTED, "-2010", "Duplicate order sent."
        if req.instrument not in self._assets:
            return RejectReason.VENUE_REJECTED, "-1121", "Invalid symbol."
        if req.order_type == OrderType.MARKET and touch <= 0.0:
            return RejectReason.VENUE_REJECTED, "-2010", "No market to fill against."
        _, _, broken = self._filters[req.instrument].rounded(  # a MARKET order's notional: at the touch
            touch if req.order_type == OrderType.MARKET else req.price, req.qty, req.side)
        if broken:
            return RejectReason.VENUE_FILTER, "-1013", f"Filter failure: {broken}"
        if crosses and req.order_type == OrderType.LIMIT_MAKER:
            return RejectReason.VENUE_REJECTED, "-2010", "Order would immediately match and take."
        lock, asset = self._lock(req, touch)
        if self._balances.get(asset, [0.0, 0.0])[0] < lock:
            return (RejectReason.VENUE_INSUFFICIENT_BALANCE, "-2010",
                    "Account has insufficient balance for requested action.")
        return None

    def _lock(self, req: OrderRequest, touch: float) -> tuple[float, str]:
        """What the order locks: quote at its price (market: slipped touch) plus taker fee, or base."""
        base, quote = self._assets[req.instrument]
        if req.side == Side.SELL:
            return req.qty, base
        price = touch * (1.0 + self._slip) if req.order_type == OrderType.MARKET else req.price
        return price * req.qty * (1.0 + self._fee[True]), quote

    def _cancel(self, coid: str) -> None:
        order = self._orders.get(coid)
        if order is None or order.state not in LIVE:
            self._reports.append(ExecReport(coid, ExecKind.CANCEL_REJECT, order.state if order else OrderState.UNKNOWN,
                                            reason=RejectReason.UNKNOWN_ORDER, venue_code="-2011",
                                            message="Unknown order sent."))
            return
        self._apply({"t": "X", "c": coid, "s": int(OrderState.CANCELED)}, live=True)

    def _fill(self, order: _Order, px: float, taker: bool) -> None:
        qty = order.req.qty - order.cum_qty
        self._apply({"t": "F", "c": order.req.client_order_id, "px": px, "q": qty,
                     "fee": px * qty * self._fee[taker]}, live=True)

    def _reject(self, req: OrderRequest, reason: RejectReason, code: str, message: str) -> None:
        if self._ledger is not None:
            self._ledger.append({"t": "J", "c": req.client_order_id})
        self._rejected[req.client_order_id] = None
        self._reports.append(ExecReport(req.client_order_id, ExecKind.REJECT, OrderState.REJECTED, reason=reason,
                                        venue_code=code, message=message, instrument=req.instrument,
                                        side=req.side, price=req.price, qty=req.qty))

    def _apply(self, e: dict[str, Any], live: bool) -> _Order:
        """The one place an order or balance changes; ``live`` also logs the entry and reports it."""
        if live and self._ledger is not None:
            self._ledger.append(e)
        kind, coid = e["t"], e["c"]
        if kind == "N":
            order = self._open(e)
            if live:
                self._reports.append(self._report(order, ExecKind.ACK))
            return order
        order = self._orders[coid]
        if kind == "F":
            self._settle(order, e["px"], e["q"], e["fee"])
            report = self._report(order, ExecKind.FILL, e["px"], e["q"], e["fee"])
        else:
            self._release(order, order.lock)
            order.state = OrderState(e["s"])
            report = self._report(order, _END[order.state])
        if order.state not in LIVE:
            self._resting[order.req.instrument].pop(coid, None)
        if live:
            self._reports.append(report)
        return order

    def _open(self, e: dict[str, Any]) -> _Order:
        order = _Order(_request(e), e["vo"], e["lk"], e["la"])
        req = order.req
        self._orders[req.client_order_id] = order
        self._resting.setdefault(req.instrument, {})[req.client_order_id] = order
        self._next_id = max(self._next_id, order.venue_order_id + 1)
        balance = self._balances.setdefault(order.lock_asset, [0.0, 0.0])
        balance[0] -= order.lock
        balance[1] += order.lock
        return order

    def _settle(self, order: _Order, px: float, qty: float, fee: float) -> None:
        """Move balances for a fill: the lock pays for it, the rest of its share is freed."""
        req = order.req
        base, quote = self._assets[req.instrument]
        share = order.lock * qty / (req.qty - order.cum_qty)
        self._release(order, share)
        if req.side == Side.BUY:
            self._add(quote, -(px * qty + fee))
            self._add(base, qty)
        else:
            self._add(base, -qty)
            self._add(quote, px * qty - fee)
        order.cum_qty += qty
        order.cum_quote += px * qty
        order.fee_cum += fee
        order.state = OrderState.FILLED if order.cum_qty >= req.qty - 1e-12 else OrderState.PARTIAL

    def _release(self, order: _Order, amount: float) -> None:
        balance = self._balances[order.lock_asset]
        balance[0] += amount
        balance[1] -= amount
        order.lock -= amount

    def _add(self, asset: str, amount: float) -> None:
        self._balances.setdefault(asset, [0.0, 0.0])[0] += amount

    def _report(self, order: _Order, kind: ExecKind, px: float = 0.0, qty: float = 0.0,
                fee: float = 0.0) -> ExecReport:
        req = order.req
        return ExecReport(req.client_order_id, kind, order.state, px, qty, order.cum_qty, fee, order.venue_order_id,
                          ts_exchange_ns=time.time_ns(), instrument=req.instrument,
                          side=req.side, price=req.price, qty=req.qty, fee_asset=self._assets[req.instrument][1])

    def query(self, client_order_id: str, symbol: str) -> ExecReport | None:
        """Kind STATE with cumulative quantity, average price (``last_px``) and cumulative fee."""
        order = self._orders.get(client_order_id)
        if order is None:
            return ExecReport(client_order_id, ExecKind.STATE, OrderState.REJECTED) \
                if client_order_id in self._rejected else None
        return self._state(order)

    def _state(self, order: _Order) -> ExecReport:
        avg = order.cum_quote / order.cum_qty if order.cum_qty else 0.0
        return self._report(order, ExecKind.STATE, avg, 0.0, order.fee_cum)

    def snapshot(self) -> VenueSnapshot:
        resting = [self._state(o) for orders in self._resting.values() for o in orders.values()]
        return VenueSnapshot(resting,
                             {asset: (free, locked) for asset, (free, locked) in self._balances.items()})

    def filters(self, instrument: int) -> SymbolFilters:
        """The venue's rules for an instrument, as loaded by ``start``."""
        return self._filters[instrument]

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None



def _crosses(req: OrderRequest, touch: float) -> bool:
    """True if the opposite touch is there and the order's price reaches it (MARKET always)."""
    if touch <= 0.0:
        return False
    if req.order_type == OrderType.MARKET:
        return True
    return req.price >= touch if req.side == Side.BUY else req.price <= touch


def _snapshot_entry(order: _Order) -> dict[str, Any]:
    return {**_new_entry(order.req, order.venue_order_id, order.lock, order.lock_asset), "t": "S",
            "st": int(order.state), "cq": order.cum_qty, "cqq": order.cum_quote, "fc": order.fee_cum}


def _request(e: dict[str, Any]) -> OrderRequest:
    """The order request an ``N`` or ``S`` entry carries (the inverse of `_new_entry`)."""
    return OrderRequest(e["c"], e["i"], e["sym"], Side(e["s"]), OrderType(e["o"]), Tif(e["f"]), e["p"], e["q"], e["to"])


def _new_entry(req: OrderRequest, venue_order_id: int, lock: float, asset: str) -> dict[str, Any]:
    return {"t": "N", "c": req.client_order_id, "i": req.instrument, "sym": req.symbol, "s": int(req.side),
            "o": int(req.order_type), "f": int(req.tif), "p": req.price, "q": req.qty, "to": req.ts_origin_ns,
            "vo": venue_order_id, "lk": lock, "la": asset}
