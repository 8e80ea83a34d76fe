"""A Binance Ed25519 API key against the real simulator (``procs.sim`` child holding the same key pair): REST and
the private stream signed with Ed25519, the order socket logged on once (``session.logon``) and its orders sent
unsigned; the simulator refusing what Binance refuses (an unsigned order without a logon, a logon signed by
another key, an HMAC key's logon); a refused logon counted and tried again while orders go over REST."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import websocket

from kairos.config import EndpointConfig, Secret
from kairos.execution import EXECUTORS, STREAMS
from kairos.execution.rest import RestExecution
from kairos.execution.signing import percent_encode
from kairos.execution.signing_binance import binance_signature
from kairos.instruments import InstrumentTable
from kairos.records import ExecKind, OrderState, Side, Venue
from kairos.sim.router import now_ms
from tests.ed25519 import ED25519_PEM, OTHER_ED25519_PEM
from tests.process.test_executors_sim import Sim, collect, of, order, running_sim, sim
from tests.process.test_private_streams import private_stats, wait_for
from tests.process.test_ws_orders import place_and_cancel, resting_price, venue_orders, ws_ready

__all__ = ["sim"]


@pytest.fixture
def ed_sim(shm_prefix: str, tmp_path: Path) -> Iterator[Sim]:
    """The simulator and the engine's settings both holding the Ed25519 key for Binance."""
    with running_sim(shm_prefix, tmp_path, {"KAIROS__VENUES__BINANCE__API_SECRET": ED25519_PEM}) as running:
        running.settings = with_secret(running, ED25519_PEM).settings
        yield running


def with_secret(sim: Sim, secret: str) -> Sim:
    venues = dict(sim.settings.venues) | {"binance": dataclasses.replace(sim.settings.venues["binance"],
                                                                          api_secret=Secret(secret))}
    return dataclasses.replace(sim, settings=dataclasses.replace(sim.settings, venues=venues))


def private_url(sim: Sim) -> str:
    stats = private_stats(sim, "binance")
    return f"ws://127.0.0.1:{stats['port']}{stats['path']}"


def ask(ws: websocket.WebSocket, rid: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
    ws.send(orjson.dumps({"id": rid, "method": method, "params": params}).decode())
    for _ in range(20):
        reply = orjson.loads(ws.recv())
        if reply.get("id") == rid:
            return reply
    raise AssertionError(f"no reply to {rid}")


def signed(secret: str, params: dict[str, str]) -> dict[str, str]:
    params = params | {"timestamp": str(now_ms())}
    return params | {"signature": binance_signature(secret, percent_encode(sorted(params.items())))}


def test_an_ed25519_key_logs_the_order_socket_on_and_trades_unsigned(ed_sim: Sim) -> None:
    ex = ws_ready(ed_sim, "binance")                 # the stream subscribed and the socket logged on, both Ed25519
    assert place_and_cancel(ed_sim, ex, "binance", "e1")[-1] == (ExecKind.CANCELED, OrderState.CANCELED)
    stats = ex.stats()
    assert stats["ws_requests"] == 2 and stats["ws_replies"] == 2 and stats["ws_logins_refused"] == 0
    assert stats.get("ws_fallback", 0) == 0
    assert venue_orders(ex) == []                    # REST, signed with Ed25519 (base64, percent-encoded)


def test_the_simulator_refuses_what_binance_refuses(ed_sim: Sim) -> None:
    ex = ws_ready(ed_sim, "binance")
    price = str(resting_price(ed_sim, ex, "binance"))
    place = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01",
             "price": price, "newClientOrderId": "e2"}
    key = ed_sim.settings.venues["binance"].api_key.reveal()
    ws = websocket.create_connection(private_url(ed_sim), timeout=5, suppress_origin=True)
    try:
        unsigned = ask(ws, "u", "order.place", place | {"timestamp": str(now_ms())})
        assert unsigned["status"] == 400 and unsigned["error"]["code"] == -2015   # no apiKey, no logon: refused
        foreign = ask(ws, "f", "session.logon", signed(OTHER_ED25519_PEM, {"apiKey": key}))
        assert foreign["status"] == 400 and foreign["error"]["code"] == -1022
        logon = ask(ws, "l", "session.logon", signed(ED25519_PEM, {"apiKey": key}))
        assert logon["status"] == 200 and logon["result"]["apiKey"] == key
        stale = ask(ws, "s", "order.place", place | {"timestamp": str(now_ms() - 60_000)})
        assert stale["error"]["code"] == -1021                                    # logged on: the time still counts
        placed = ask(ws, "p", "order.place", place | {"timestamp": str(now_ms())})
        assert placed["status"] == 200 and placed["result"]["clientOrderId"] == "e2"
    finally:
        ws.close()
    assert venue_orders(ex) == ["e2"]


def test_an_hmac_keys_logon_is_refused(sim: Sim) -> None:
    ws = websocket.create_connection(private_url(sim), timeout=5, suppress_origin=True)
    try:
        secret = sim.settings.venues["binance"].api_secret.reveal()
        key = sim.settings.venues["binance"].api_key.reveal()
        refused = ask(ws, "l", "session.logon", signed(secret, {"apiKey": key}))
    finally:
        ws.close()
    assert refused["status"] == 400 and refused["error"]["code"] == -4056


def test_a_refused_logon_is_counted_and_tried_again_while_orders_go_over_rest(ed_sim: Sim) -> None:
    """The engine holds another key pair than the venue: every logon is refused (-1022); the socket never serves
    an order, each refusal ends its session (reconnected with backoff), and orders take REST (refused there too)."""
    other = with_secret(ed_sim, OTHER_ED25519_PEM)
    venue = dataclasses.replace(other.settings.venues["binance"],
                                endpoints={"sim": EndpointConfig(ed_sim.urls[Venue.BINANCE], "", private_url(ed_sim))})
    execution = dataclasses.replace(other.settings.execution, stream_backoff_max_s=0.2)
    ex: RestExecution = EXECUTORS["binance"](venue, execution, InstrumentTable(other.settings.instruments),
                                             stream=STREAMS["binance"])
    ed_sim.executors.append(ex)
    ex.start()
    wait_for(lambda: ex.stats().get("ws_logins_refused", 0) >= 2, "two logons refused")
    assert ex.orders is not None and not ex.orders.ready and ex.stats()["ws_requests"] == 0
    ex.submit(order(ed_sim, "binance", "e3", Side.BUY, 1000.0, 0.01))
    reports = collect(ex, lambda rs: bool(of(rs, "e3")))
    assert reports[-1].kind is ExecKind.REJECT and reports[-1].venue_code == "-1022"
    assert ex.stats()["ws_requests"] == 0
