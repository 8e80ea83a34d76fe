"""The simulator's rate limits: Binance 429 + Retry-After then a 418 ban for requests that ignore it, the
used-weight header; OKX 50011 per endpoint."""

from __future__ import annotations

import pytest

from kairos.ratelimit import LIMITS
from kairos.records import Venue
from kairos.sim.ratelimit import VenueMeter
from kairos.sim.router import HttpError, Request


def request(method: str, path: str, query: str = "", venue: Venue = Venue.BINANCE) -> Request:
    return Request(method, path, query, {}, {}, b"", venue)


def refusal(meter: VenueMeter, req: Request) -> tuple[int, bytes, str]:
    with pytest.raises(HttpError) as caught:
        meter.charge(req)
    resp = caught.value.response
    return resp.status, resp.body, resp.headers["Retry-After"]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0  # the start of a minute (and of a 2 s window)

    def __call__(self) -> float:
        return self.now


def test_binance_429_then_418_for_requests_that_ignore_retry_after() -> None:
    clock = Clock()
    meter = VenueMeter(Venue.BINANCE, LIMITS["binance"].scaled(0.01), 2, 30.0, clock)          # 60 per minute
    depth = request("GET", "/api/v3/depth", "symbol=BTCUSDT&limit=1000")                           # weight 50
    assert meter.charge(depth) == {"X-MBX-USED-WEIGHT-1M": "50"}
    clock.now += 20
    status, body, retry = refusal(meter, request("GET", "/api/v3/account"))                       # 70 > 60
    assert (status, retry) == (429, "40") and b'"code":-1003' in body
    assert refusal(meter, request("POST", "/api/v3/order"))[0] == 429          # strike 1: sent before Retry-After
    status, body, retry = refusal(meter, request("POST", "/api/v3/order"))    # strike 2: banned
    assert (status, retry) == (418, "30") and b"banned until" in body
    assert refusal(meter, request("GET", "/api/v3/time"))[0] == 418
    assert meter.counts == {"429": 2, "418": 2}
    clock.now += 45                                                           # the ban is over; a new minute
    assert meter.charge(request("POST", "/api/v3/order")) == {"X-MBX-USED-WEIGHT-1M": "1"}


def test_binance_weight_per_call_comes_from_the_table() -> None:
    meter = VenueMeter(Venue.BINANCE, LIMITS["binance"], 2, 30.0, Clock())
    meter.charge(request("GET", "/api/v3/openOrders", "timestamp=1"))       # 80 without a symbol
    assert meter.charge(request("GET", "/api/v3/depth", "symbol=X&limit=100")) == {"X-MBX-USED-WEIGHT-1M": "85"}


def test_okx_50011_is_per_endpoint() -> None:
    clock = Clock()
    meter = VenueMeter(Venue.OKX, LIMITS["okx"].scaled(0.05), 2, 30.0, clock)              # books 2, place 3 per 2 s
    books = request("GET", "/api/v5/market/books", "instId=BTC-USDT&sz=400", Venue.OKX)
    assert meter.charge(books) == {} and meter.charge(books) == {}
    status, body, _ = refusal(meter, books)
    assert status == 429 and b'"code":"50011"' in body
    assert meter.charge(request("POST", "/api/v5/trade/order", venue=Venue.OKX)) == {}   # another endpoint
    assert meter.counts == {"429": 0, "418": 0, "50011": 1}  # the venue's own code (its trading dialect)
    clock.now += 2                                                            # the next window
    assert meter.charge(books) == {}
