"""The simulator on its own, over real sockets: REST shapes, stream/snapshot coherence, subscriptions, faults."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
import requests
import websocket

from kairos.errors import ConfigError
from kairos.records import Side, Venue
from kairos.sim.replay import load_recordings
from kairos.sim.router import HttpError, Request, Router, json_response
from tests.unit.feeds.conftest import sim_settings


@pytest.fixture
def sim(make_sim):
    return make_sim(sim_settings(rate_hz=0.0))


def _get(server, venue: Venue, path: str, **params: str) -> requests.Response:
    return requests.get(f"{server.urls(venue).rest_url}{path}", params=params, timeout=5)


def test_binance_public_rest(sim) -> None:
    assert abs(_get(sim, Venue.BINANCE, "/api/v3/time").json()["serverTime"] - time.time() * 1000) < 60_000
    info = _get(sim, Venue.BINANCE, "/api/v3/exchangeInfo", symbol="BTCUSDT").json()
    filters = {f["filterType"]: f for f in info["symbols"][0]["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.01000000" and filters["LOT_SIZE"]["stepSize"] == "0.00001000"
    assert filters["NOTIONAL"]["minNotional"] == "5.00000000" and info["symbols"][0]["baseAsset"] == "BTC"
    depth = _get(sim, Venue.BINANCE, "/api/v3/depth", symbol="BTCUSDT", limit="5").json()
    assert len(depth["bids"]) == 5 and Decimal(depth["bids"][0][0]) < Decimal(depth["asks"][0][0])
    assert depth["lastUpdateId"] == sim.market.book(Venue.BINANCE, "BTCUSDT").update_id
    bad = _get(sim, Venue.BINANCE, "/api/v3/depth", symbol="NOPE")
    assert bad.status_code == 400 and bad.json()["code"] == -1121


def test_okx_public_rest(sim) -> None:
    assert _get(sim, Venue.OKX, "/api/v5/public/time").json()["data"][0]["ts"].isdigit()
    inst = _get(sim, Venue.OKX, "/api/v5/public/instruments", instType="SPOT", instId="BTC-USDT").json()["data"]
    assert [(i["instId"], i["tickSz"], i["lotSz"], i["minSz"]) for i in inst] == [("BTC-USDT", "0.1", "0.00001",
                                                                                    "0.0001")]
    books = _get(sim, Venue.OKX, "/api/v5/market/books", instId="BTC-USDT", sz="3").json()
    assert books["code"] == "0" and len(books["data"][0]["asks"]) == 3
    assert books["data"][0]["seqId"] == sim.market.book(Venue.OKX, "BTC-USDT").update_id
    assert _get(sim, Venue.OKX, "/api/v5/market/books", instId="NOPE").json()["code"] == "51001"


def test_binance_stream_continues_from_the_rest_snapshot(sim) -> None:
    ws = websocket.create_connection(f"{sim.urls(Venue.BINANCE).ws_url}?streams=btcusdt@depth@100ms", timeout=5)
    try:
        last = _get(sim, Venue.BINANCE, "/api/v3/depth", symbol="BTCUSDT").json()["lastUpdateId"]
        for _ in range(5):
            sim.market.step()
        for _ in range(5):
            data = orjson.loads(ws.recv())["data"]
            assert data["U"] == last + 1 and data["u"] >= data["U"]
            last = data["u"]
    finally:
        ws.close()


def test_binance_subscribe_methods_and_rate_limit(sim) -> None:
    ws = websocket.create_connection(f"{sim.urls(Venue.BINANCE).ws_url}", timeout=5)
    try:
        ws.send(orjson.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@bookTicker"], "id": 1}))
        assert orjson.loads(ws.recv()) == {"result": None, "id": 1}
        ws.send(orjson.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 2}))
        assert orjson.loads(ws.recv()) == {"result": ["ethusdt@bookTicker"], "id": 2}
        with pytest.raises((websocket.WebSocketException, OSError)):  # the server cuts us off
            for i in range(6):  # more than 5 control frames in a second
                ws.send(orjson.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 10 + i}))
            for _ in range(20):
                ws.recv()
    finally:
        ws.close()


def test_okx_subscribe_errors_and_pong(sim) -> None:
    ws = websocket.create_connection(sim.urls(Venue.OKX).ws_url, timeout=5)
    try:
        ws.send("ping")
        assert ws.recv() == "pong"
        ws.send(orjson.dumps({"op": "subscribe", "args": [{"channel": "books", "instId": "NOPE-USDT"}]}))
        assert orjson.loads(ws.recv())["code"] == "60018"
        ws.send(b"{not json")
        assert orjson.loads(ws.recv())["code"] == "60012"
        ws.send(orjson.dumps({"op": "subscribe", "args": [{"channel": "books", "instId": "BTC-USDT"}], "id": "7"}))
        ack, snapshot = orjson.loads(ws.recv()), orjson.loads(ws.recv())
        assert ack["event"] == "subscribe" and ack["id"] == "7"
        assert snapshot["action"] == "snapshot" and snapshot["data"][0]["prevSeqId"] == -1
        assert snapshot["data"][0]["checksum"] == 0
    finally:
        ws.close()


def test_fault_api_validates_and_reports(sim) -> None:
    url = f"{sim.urls(Venue.OKX).rest_url}/_sim/fault"
    assert requests.post(url, json={"kind": "meteor"}, timeout=5).status_code == 400
    assert requests.post(url, json={"kind": "stall", "duration": "x"}, timeout=5).status_code == 400
    assert requests.post(url, json={"kind": "gap", "count": 2}, timeout=5).json()["fault"]["symbol"] == "BTC-USDT"
    assert requests.post(url, json={"kind": "stall", "duration": 30}, timeout=5).status_code == 200
    active = requests.get(f"{sim.urls(Venue.BINANCE).rest_url}/_sim/faults", timeout=5).json()
    assert active["stalled"] == ["okx"] and active["pending_gaps"] == {"okx:BTC-USDT": 2}


def test_slow_rest_fault_delays_answers(sim) -> None:
    requests.post(f"{sim.urls(Venue.BINANCE).rest_url}/_sim/fault", json={"kind": "slow_rest", "delay_ms": 300,
                                                                       "duration": 10}, timeout=5)
    start = time.monotonic()
    _get(sim, Venue.BINANCE, "/api/v3/time")
    assert time.monotonic() - start >= 0.3
    assert _get(sim, Venue.OKX, "/api/v5/public/time").status_code == 200


def test_take_consumes_liquidity_and_steering_moves_the_book(sim) -> None:
    best_bid, best_ask = sim.market.best(Venue.BINANCE, "BTCUSDT")
    fills = sim.market.take(Venue.BINANCE, "BTCUSDT", Side.BUY, best_ask.qty, best_ask.price)
    assert fills == [best_ask] and sim.market.best(Venue.BINANCE, "BTCUSDT")[1].price > best_ask.price
    assert sim.market.take(Venue.BINANCE, "BTCUSDT", Side.SELL, Decimal("1"), best_bid.price + 1) == []
    response = requests.post(f"{sim.urls(Venue.OKX).rest_url}/_sim/mid", json={"venue": "okx", "symbol": "BTC-USDT",
                                                                              "price": 61000.0}, timeout=5)
    assert response.json() == {"ok": True}
    bad = requests.post(f"{sim.urls(Venue.OKX).rest_url}/_sim/mid", json={"venue": "kraken"}, timeout=5)
    assert bad.status_code == 400
    for _ in range(3):
        sim.market.step()
    bid, ask = sim.market.best(Venue.OKX, "BTC-USDT")
    assert bid.price < Decimal(61000) < ask.price and ask.price - bid.price < 5


def test_router_answers_errors_without_dying() -> None:
    router = Router()

    def boom(request: Request):
        raise RuntimeError("handler bug")

    def refuse(request: Request):
        raise HttpError(418, {"code": -1})

    router.register("GET", "/boom", boom)
    router.register("GET", "/refuse", refuse)
    router.register("GET", "/ok", lambda r: json_response({"ok": r.form()}))
    with pytest.raises(ValueError):
        router.register("GET", "/ok", lambda r: json_response({}))
    request = Request("GET", "/boom", "", {}, {}, b"", Venue.BINANCE)
    assert router.dispatch(request).status == 500 and router.errors.counts == {"handler_error": 1}
    assert router.dispatch(Request("GET", "/refuse", "", {}, {}, b"", Venue.BINANCE)).status == 418
    assert router.dispatch(Request("GET", "/nope", "", {}, {}, b"", Venue.BINANCE)).status == 404
    ok = router.dispatch(Request("GET", "/ok", "a=1", {"a": "1"}, {}, b"a=2&b=3", Venue.BINANCE))
    assert orjson.loads(ok.body) == {"ok": {"a": "1", "b": "3"}}  # the query string wins, as on Binance


def test_replay_files_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_recordings(str(tmp_path / "missing.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"recv_ts": 1, "src": "ws", "url": "wss://example.com", "raw": "{}"}\n')
    with pytest.raises(ConfigError):
        load_recordings(str(bad))
