"""The simulator's REST rate limits, enforced as the venues enforce them, on every venue route.

Windows and weights are the engine's own (kairos/ratelimit/<venue>.py, the venue table's ``limits``) at
``sim.rate_limit_scale``, counted per fixed wall-clock window; refused requests still count, as on the
venues. Each refusal is written in the venue's own format by its trading dialect (``too_many``).

- Per IP (``per_endpoint`` false, e.g. Binance): over the window's weight, 429 with ``Retry-After`` (to
  the window's end). Every request sent before that time is a strike; after ``sim.rate_ban_after``
  strikes the IP is banned: 418 with ``Retry-After`` for ``sim.rate_ban_s``. Every answer carries the
  venue's ``usage_header``.
- Per endpoint (e.g. OKX 50011): over an endpoint's window, the venue's refusal for that endpoint only.

WebSocket API requests (Binance order.place/order.cancel/ping/subscribe, OKX and Bybit WS orders) are
charged by their dialects at their REST twin's route, so both share one count (``used``).

``GET /_sim/rate-limits`` answers how many 429 and 418 each venue has given, and per-endpoint refusals
under the venue's code.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable

from kairos.config import SimConfig
from kairos.ratelimit import LIMITS, VenueLimits
from kairos.ratelimit.table import Cost
from kairos.records import Venue
from kairos.sim.router import HttpError, Request, Response, Router, json_response
from kairos.venues import BY_VENUE, VENUES, resolve


def too_many(venue: Venue, status: int, retry_after_s: float) -> HttpError:
    """The venue's own "slow down" answer (its dialect's format; 418: banned) with Retry-After."""
    headers = {"Retry-After": str(max(1, math.ceil(retry_after_s)))}
    http_status, body = resolve(BY_VENUE[venue].sim_trading).too_many(status, retry_after_s)
    return HttpError(http_status, body, headers)


class VenueMeter:
    """One venue's counted windows, its Retry-After period, strikes and ban."""

    __slots__ = ("_ban_after", "_ban_s", "_clock", "_code", "_lock", "_route_cost", "_used", "_wids", "banned_until",
                 "counts", "limits", "retry_until", "strikes", "venue")

    def __init__(self, venue: Venue, limits: VenueLimits, ban_after: int, ban_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.venue, self.limits, self._clock = venue, limits, clock
        self._ban_after, self._ban_s = ban_after, ban_s
        self._lock = threading.Lock()
        self._wids = [0] * len(limits.windows)
        self._used = [0] * len(limits.windows)
        self.retry_until = self.banned_until = 0.0
        self.strikes = 0
        self.counts = {"429": 0, "418": 0}
        self._code = resolve(BY_VENUE[venue].sim_trading).rate_code if limits.per_endpoint else ""
        if self._code:
            self.counts[self._code] = 0
        self._route_cost = functools.lru_cache(maxsize=64)(limits.cost)  # the table is fixed: a route's cost too

    def charge(self, request: Request) -> dict[str, str]:
        """Count one request; raise the venue's refusal (HttpError), else return the usage headers to add."""
        return self._count(self.limits.cost(request.method, f"{request.path}?{request.query_string}"))

    def charge_route(self, method: str, path: str) -> dict[str, str]:
        """`charge` for a WebSocket request at its REST twin's route (no query string), the cost looked up once."""
        return self._count(self._route_cost(method, path))

    def _count(self, cost: Cost) -> dict[str, str]:
        window = self.limits.windows[cost.window]
        now = self._clock()
        with self._lock:
            if now < self.banned_until:
                self.counts["418"] += 1
                raise too_many(self.venue, 418, self.banned_until - now)
            wid = int(now * 1000) // window.window_ms
            if self._wids[cost.window] != wid:
                self._wids[cost.window], self._used[cost.window] = wid, 0
            self._used[cost.window] += cost.weight
            over = self._used[cost.window] > window.limit
            if self.limits.per_endpoint:
                if over:
                    self.counts[self._code] += 1
                    raise too_many(self.venue, 429, (wid + 1) * window.window_ms / 1000 - now)
            else:
                self._per_ip(now, over, (wid + 1) * window.window_ms / 1000)
            used = self._used[0]
        return {self.limits.usage_header: str(used)} if self.limits.usage_header else {}

    def used(self) -> int:
        """This window's count of the first (REQUEST_WEIGHT) window, refused requests included."""
        window = self.limits.windows[0]
        with self._lock:
            return self._used[0] if self._wids[0] == int(self._clock() * 1000) // window.window_ms else 0

    def _per_ip(self, now: float, over: bool, window_end: float) -> None:
        """Per IP: a request before Retry-After is a strike (enough of them: a 418 ban); else 429 when over."""
        if now < self.retry_until:
            self.strikes += 1
            if self.strikes >= self._ban_after:
                self.banned_until, self.retry_until, self.strikes = now + self._ban_s, 0.0, 0
                self.counts["418"] += 1
                raise too_many(self.venue, 418, self._ban_s)
            self.counts["429"] += 1
            raise too_many(self.venue, 429, self.retry_until - now)
        if over:
            self.retry_until, self.strikes = window_end, 0
            self.counts["429"] += 1
            raise too_many(self.venue, 429, window_end - now)


def register_rate_limits(router: Router, cfg: SimConfig) -> dict[Venue, VenueMeter]:
    """Meter every venue route (not ``/_sim/*``) of the venues in the table; returns the meters (tests)."""
    meters = {spec.venue: VenueMeter(spec.venue, LIMITS[spec.name].scaled(cfg.rate_limit_scale), cfg.rate_ban_after,
                                     cfg.rate_ban_s)
              for spec in VENUES}

    def meter(request: Request) -> dict[str, str]:
        found = meters.get(request.venue)
        return {} if found is None or request.path.startswith("/_sim/") else found.charge(request)

    router.before(meter)
    router.register("GET", "/_sim/rate-limits", _counts_route(meters))
    return meters


def _counts_route(meters: dict[Venue, VenueMeter]) -> Callable[[Request], Response]:
    def counts(request: Request) -> Response:
        return json_response({venue.name.lower(): dict(m.counts) for venue, m in meters.items()})

    return counts
