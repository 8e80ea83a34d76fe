"""What the pre-trade and post-trade checks read: flat lists indexed by small integer keys.

The gate's book writes a `RiskState`; `kairos.risk` only reads it (the gate takes a token from a
venue's `TokenBucket` after an order is accepted). Lists, not numpy arrays: a scalar read from a
list is several times cheaper than from an ndarray, and the hot path reads a dozen per intent.

Keys::

    k    = venue * grid.stride + instrument          (position, open qty, bid/ask per venue)
    slot = venue * grid.n_assets + asset              (balance, reserved per venue and asset)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kairos.instruments import InstrumentTable
from kairos.records import TradingState, Venue
from kairos.risk.rules import VenueRules

N_VENUES = max(Venue) + 1
_INF = float("inf")
NEVER = -(1 << 62)
"""``mark_ns`` of a key without a fresh mark: older than any age limit."""
FOREVER_NS = 1 << 62
"""A disabled age limit (an int, so age comparisons stay int-only on the hot path)."""


def active_limit(value: float) -> float:
    """A configured limit, or infinity when it is 0: a limit of 0 disables its rule (docs/RISK.md)."""
    return value if value > 0 else _INF


def active_age_ns(ms: int) -> int:
    """An age limit in ms as ns; 0 disables it (`FOREVER_NS`)."""
    return ms * 1_000_000 if ms > 0 else FOREVER_NS


class Grid:
    """Key arithmetic shared by the risk state and the gate's book, built once from config."""

    __slots__ = ("assets", "base_slot", "n_assets", "quote_slot", "size", "slots", "stride", "symbol")

    def __init__(self, instruments: InstrumentTable) -> None:
        self.stride = len(instruments) + 1
        self.size = N_VENUES * self.stride
        names: dict[str, int] = {}
        for inst in instruments:
            names.setdefault(inst.base, len(names))
            names.setdefault(inst.quote, len(names))
        self.assets = list(names)
        self.n_assets = len(names)
        self.slots = N_VENUES * self.n_assets
        self.base_slot = [0] * self.size
        self.quote_slot = [0] * self.size
        self.symbol = [""] * self.size
        for venue in Venue:
            for inst in instruments:
                k = self.key(venue, inst.id)
                self.base_slot[k] = self.slot(venue, names[inst.base])
                self.quote_slot[k] = self.slot(venue, names[inst.quote])
                self.symbol[k] = inst.venue_symbols.get(venue, "")

    def key(self, venue: int, instrument: int) -> int:
        return venue * self.stride + instrument

    def split(self, k: int) -> tuple[int, int]:
        """(venue, instrument) of a key."""
        return divmod(k, self.stride)

    def slot(self, venue: int, asset: int) -> int:
        return venue * self.n_assets + asset

    def asset_slot(self, venue: int, name: str) -> int:
        """Balance slot of an asset by name; -1 if the asset is not traded in any instrument."""
        return self.slot(venue, self.assets.index(name)) if name in self.assets else -1

    def valid(self, venue: int, instrument: int) -> bool:
        """True if the instrument exists and trades on that venue."""
        return 0 < venue < N_VENUES and 0 < instrument < self.stride and bool(
            self.symbol[self.key(venue, instrument)])


class TokenBucket:
    """Order-rate limiter: ``rate`` tokens per second, at most one second's worth (>= 1) saved up;
    rate 0 disables."""

    __slots__ = ("burst", "last_ns", "rate_per_ns", "tokens")

    def __init__(self, rate_per_s: float) -> None:
        self.rate_per_ns = rate_per_s / 1e9 if rate_per_s > 0 else _INF
        self.burst = max(rate_per_s, 1.0)
        self.tokens = self.burst
        self.last_ns = 0

    def available(self, now_ns: int) -> float:
        """Tokens that would be there at ``now_ns`` (pure: does not refill the bucket)."""
        if self.rate_per_ns == _INF:
            return self.burst
        tokens = self.tokens + (now_ns - self.last_ns) * self.rate_per_ns
        return tokens if tokens < self.burst else self.burst

    def take(self, now_ns: int) -> None:
        self.tokens = self.available(now_ns) - 1.0
        self.last_ns = now_ns


@dataclass(slots=True)
class RiskState:
    """Everything a check may look at. Units: quantities in base, balances per asset, marks in quote.

    ``bid``/``ask`` are the last valid top of book (kairos/gate/marks.py), kept for valuation when
    the book goes bad; ``mark_ns`` is when it was last valid (monotonic ns, `NEVER` once the feed
    invalidated the book); ``rules`` are the venues' order rules.
    """

    grid: Grid
    trading: int = TradingState.ACTIVE
    position: list[float] = field(default_factory=list)
    open_buy: list[float] = field(default_factory=list)
    open_sell: list[float] = field(default_factory=list)
    bid: list[float] = field(default_factory=list)
    ask: list[float] = field(default_factory=list)
    balance: list[float] = field(default_factory=list)
    reserved: list[float] = field(default_factory=list)
    buckets: list[TokenBucket] = field(default_factory=list)
    mark_ns: list[int] = field(default_factory=list)
    rules: VenueRules = field(default_factory=lambda: VenueRules(0))
    gross: float = 0.0
    open_orders: int = 0

    @classmethod
    def empty(cls, grid: Grid, orders_per_s: float, trading: int = TradingState.ACTIVE) -> RiskState:
        zeros = [0.0] * grid.size
        return cls(grid, trading, zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy(),
                   [0.0] * grid.slots, [0.0] * grid.slots, [TokenBucket(orders_per_s) for _ in range(N_VENUES)],
                   [NEVER] * grid.size, VenueRules(grid.size))

    def mark(self, k: int) -> float:
        """Mid of the last valid top of book, however old; 0.0 when there never was one."""
        bid, ask = self.bid[k], self.ask[k]
        return (bid + ask) * 0.5 if bid > 0.0 and ask > 0.0 else 0.0

    def free(self, slot: int) -> float:
        """Balance not reserved by open orders."""
        return self.balance[slot] - self.reserved[slot]
