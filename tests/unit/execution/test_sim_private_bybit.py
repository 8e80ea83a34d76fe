"""The simulator's Bybit private stream (kairos/sim/private_bybit.py) in process: auth as the venue checks it
(the client's own frame accepted; wrong key, signature or an expired time refused), topics only after auth,
ping/pong, and pushes the client parses back into the simulator's own ledger."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from kairos import config
from kairos.execution.signing_bybit import bybit_ws_signature
from kairos.execution.stream_bybit import TOPICS, BybitStream
from kairos.records import Side, Venue
from kairos.sim.exchange import OrderUpdate
from kairos.sim.market import SimMarket, build_specs
from kairos.sim.private import PrivateSession
from kairos.sim.private_bybit import BybitPrivate
from kairos.sim.rest_trading import register_trading_routes
from kairos.sim.router import Router, now_ms
from tests.unit.execution.test_stream_parsers import Sink

KEYS = {"KAIROS__VENUES__BYBIT__API_KEY": "k", "KAIROS__VENUES__BYBIT__API_SECRET": "s"}


@pytest.fixture
def sim() -> tuple[BybitPrivate, PrivateSession, Any]:
    settings = config.load(env=KEYS)
    market = SimMarket(build_specs(settings.instruments, settings.sim), settings.sim, lambda event: None)
    trading = next(d for d in register_trading_routes(Router(), market, settings) if d.venue is Venue.BYBIT)
    private = BybitPrivate(settings.venues["bybit"], settings.sim)
    private.trading = trading
    return private, PrivateSession(None, 1), trading  # type: ignore[arg-type]  # on_text never touches the socket


def _send(private: BybitPrivate, session: PrivateSession, msg: Any) -> dict[str, Any]:
    [reply] = private.on_text(session, msg if isinstance(msg, str) else orjson.dumps(msg).decode())
    return orjson.loads(reply)


def _client() -> BybitStream:
    settings = config.load(env=KEYS)
    return BybitStream(settings.venues["bybit"], settings.execution, Sink(), now_ms)


def test_the_clients_auth_is_accepted_and_then_its_topics(sim: tuple) -> None:
    private, session, _ = sim
    client = _client()
    assert _send(private, session, client.open_frames()[0])["success"] is True and session.authed
    subscribe = client.parse(orjson.dumps(_send(private, session, client.open_frames()[0])).decode()).send[0]
    reply = _send(private, session, subscribe)
    assert client.parse(orjson.dumps(reply).decode()).ready and session.subs == set(TOPICS)


@pytest.mark.parametrize("args", [
    lambda t: ["other", t, bybit_ws_signature("s", t)],     # wrong key
    lambda t: ["k", t, bybit_ws_signature("x", t)],         # wrong secret
    lambda t: ["k", str(int(t) - 60_000), bybit_ws_signature("s", str(int(t) - 60_000))],  # expired
    lambda t: ["k", t],                                     # missing signature
])
def test_a_bad_auth_is_refused_and_topics_stay_closed(sim: tuple, args: Any) -> None:
    private, session, _ = sim
    expires = str(now_ms() + 5000)
    reply = _send(private, session, {"op": "auth", "args": args(expires)})
    assert (reply["success"], reply["op"], session.authed) == (False, "auth", False)
    reply = _send(private, session, {"op": "subscribe", "args": ["order"]})
    assert reply["success"] is False and not session.subs


def test_unknown_topics_ops_and_garbage_are_answered_not_fatal(sim: tuple) -> None:
    private, session, _ = sim
    session.authed = True
    assert _send(private, session, {"op": "subscribe", "args": ["order", "position"]})["success"] is False
    assert _send(private, session, {"op": "trade", "args": []})["success"] is False
    assert _send(private, session, "{not json")["success"] is False
    assert _send(private, session, {"op": "ping", "req_id": "h"})["op"] == "pong" and not session.subs


def test_pushes_parse_back_into_the_ledger(sim: tuple) -> None:
    private, session, trading = sim
    updates: list[OrderUpdate] = []
    trading.exchange.add_listener(updates.append)
    _, ask = trading.market.best(Venue.BYBIT, "BTCUSDT")
    trading.exchange.place("b1", "BTCUSDT", Side.BUY, "LIMIT", "IOC", ask.price, Decimal("0.001"))
    trade = next(u for u in updates if u.last is not None)
    client, frames = _client(), {}
    for channel, event in private.render(trade):
        frames[channel] = client.parse(private.wrap(session, channel, event))
    [(exec_view, fill)] = frames["execution"].orders
    [(order_view, none)] = frames["order"].orders
    px, qty, fee, trade_id = trade.last
    assert none is None and (fill.trade_id, fill.qty, fill.price, fill.fee) == (
        str(trade_id), float(qty), float(px), float(fee))
    assert exec_view.cum_qty == order_view.cum_qty == float(trade.order.filled)
    assert order_view.fee_cum == float(trade.order.fee) and order_view.fee_asset == fill.fee_asset == "BTC"
    free, locked = trade.balances["BTC"]
    assert frames["wallet"].balances["BTC"] == (float(free), float(locked))
    assert exec_view.client_order_id == order_view.client_order_id == "b1"
