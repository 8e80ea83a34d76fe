"""WebSocket order entry, both venues: the request frames (fields, signature, login), the replies classified like
REST's (ok, per-order reject, top-level error, rate limit, unreadable), and `_send_order` turning each into an
outcome without a socket (a stub answers)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from kairos import config
from kairos.config import Secret
from kairos.errors import ConfigError
from kairos.execution import EXECUTORS, OrderRequest
from kairos.execution.okx import inst_id_code
from kairos.execution.signing import percent_encode
from kairos.execution.signing_binance import binance_check
from kairos.execution.signing_okx import okx_check
from kairos.execution.venue import Outcome
from kairos.execution.ws_orders import ReplyLost
from kairos.instruments import InstrumentTable
from kairos.records import ExecKind, OrderState, OrderType, RejectReason, Side, Tif
from tests.ed25519 import ED25519_PEM
from tests.fixtures import fixture

OKX_SYMBOL = "BTC-USDT"


def _req(symbol: str, order_type: OrderType = OrderType.LIMIT, tif: Tif = Tif.GTC) -> OrderRequest:
    return OrderRequest("kx7Ab2BTC0031", 1, symbol, Side.BUY, order_type, tif, 60000.0, 0.01, 0)


@pytest.fixture
def signed():
    settings = config.load(env={})
    keys = {"api_key": Secret("key"), "api_secret": Secret("secret"), "passphrase": Secret("pass")}
    built = {name: EXECUTORS[name](dataclasses.replace(settings.venues[name], **keys), settings.execution,
                                   InstrumentTable(settings.instruments)) for name in ("binance", "okx")}
    built["okx"].parse_filters(fixture("okx/instruments_codes.json"))
    yield built
    for executor in built.values():
        executor.close()


# -- Binance WS API ---------------------------------------------------------------------------------------------

def test_binance_order_place_is_the_rest_order_signed_over_sorted_params(signed) -> None:
    ex = signed["binance"]
    frame = orjson.loads(ex.ws_place("o7", _req("BTCUSDT"), "60000", "0.01"))
    assert (frame["id"], frame["method"]) == ("o7", "order.place")
    params = frame["params"]
    signature = params.pop("signature")
    assert binance_check("secret", percent_encode(sorted(params.items())), signature)
    assert params | {"timestamp": "T"} == {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                                           "quantity": "0.01", "price": "60000", "newClientOrderId": "kx7Ab2BTC0031",
                                           "newOrderRespType": "FULL", "apiKey": "key", "recvWindow": "5000",
                                           "timestamp": "T"}
    assert ex.ws_login() == [] and ex.ws_routable("ANYTHING")   # each request is signed: no login


def test_binance_order_cancel_names_the_client_id(signed) -> None:
    frame = orjson.loads(signed["binance"].ws_cancel("o9", "kx7Ab2BTC0031", "BTCUSDT"))
    params = frame["params"]
    assert binance_check("secret", percent_encode(sorted((k, v) for k, v in params.items() if k != "signature")),
                         params["signature"])
    assert (frame["method"], params["symbol"], params["origClientOrderId"]) == ("order.cancel", "BTCUSDT",
                                                                                 "kx7Ab2BTC0031")


def test_binance_replies(signed) -> None:
    ex = signed["binance"]
    reply, used = ex.ws_reply(fixture("binance/ws_order_place_reply.json"))
    assert (reply.outcome, used) == (Outcome.OK, 12)
    view = ex.parse_placed(reply.data, _req("BTCUSDT"))
    assert (view.client_order_id, view.state, view.venue_order_id) == ("kx7Ab2BTC0032", OrderState.ACK, 31000388)
    reply, used = ex.ws_reply(fixture("binance/error_-2010_wsapi.json"))
    assert (reply.outcome, reply.code, reply.reason, used) == (Outcome.REJECTED, "-2010",
                                                               RejectReason.VENUE_INSUFFICIENT_BALANCE, 57)
    reply, used = ex.ws_reply(fixture("binance/ws_order_rate_limited.json"))
    assert (reply.outcome, reply.code, used) == (Outcome.RATE_LIMITED, "-1003", 6012)
    assert reply.retry_after_s == 56.0                     # error.data.retryAfter - serverTime, in seconds
    with pytest.raises(KeyError):
        ex.ws_reply({"id": "o10"})


def _binance(secret: str) -> Any:
    settings = config.load(env={})
    venue = dataclasses.replace(settings.venues["binance"], api_key=Secret("key"), api_secret=Secret(secret))
    return EXECUTORS["binance"](venue, settings.execution, InstrumentTable(settings.instruments))


def test_binance_ed25519_key_logs_the_socket_on_once_and_its_orders_go_unsigned() -> None:
    ex = _binance(ED25519_PEM)
    try:
        [frame] = ex.ws_login()
        logon = orjson.loads(frame)
        assert (logon["id"], logon["method"]) == ("logon", "session.logon")
        params = logon["params"]
        signature = params.pop("signature")
        assert set(params) == {"apiKey", "recvWindow", "timestamp"} and params["apiKey"] == "key"
        assert binance_check(ED25519_PEM, percent_encode(sorted(params.items())), signature)
        assert ex.ws_login_route() == ("POST", "/ws-api/v3/session.logon")             # weight 2, paid per connect
        assert ex.ws_logged_in({"id": "logon", "status": 200, "result": {"apiKey": "key"}})
        assert not ex.ws_logged_in({"id": "logon", "status": 400, "error": {"code": -1022, "msg": "bad"}})
        assert not ex.ws_logged_in({"id": "o1", "status": 200, "result": {}})
        place = orjson.loads(ex.ws_place("o7", _req("BTCUSDT"), "60000", "0.01"))["params"]
        cancel = orjson.loads(ex.ws_cancel("o8", "kx7Ab2BTC0031", "BTCUSDT"))["params"]
        for unsigned in (place, cancel):
            assert not {"apiKey", "signature"} & set(unsigned) and unsigned["timestamp"].isdigit()
            assert unsigned["recvWindow"] == "5000"
        body = ex.place_call(_req("BTCUSDT"), "60000", "0.01").body           # REST: every call signed, Ed25519
        payload, _, encoded = body.rpartition("&signature=")
        assert binance_check(ED25519_PEM, payload, unquote(encoded)) and not set("+/=") & set(encoded)
    finally:
        ex.close()


def test_binance_hmac_key_never_logs_on(signed) -> None:
    assert signed["binance"].ws_login() == [] and signed["binance"].ws_login_route() == ()


def test_binance_pem_secret_that_is_not_ed25519_is_refused_at_start() -> None:
    rsa_pem = rsa.generate_private_key(65537, 2048).private_bytes(Encoding.PEM, PrivateFormat.PKCS8,
                                                                   NoEncryption()).decode()
    with pytest.raises(ConfigError) as refused:
        _binance(rsa_pem)
    assert refused.value.key == "venues.binance.api_secret" and "Ed25519" in refused.value.message


# -- OKX private WS ---------------------------------------------------------------------------------------------

def test_okx_login_frame_is_signed_like_the_private_stream(signed) -> None:
    ex = signed["okx"]
    [frame] = ex.ws_login()
    login = orjson.loads(frame)
    assert login["op"] == "login"
    [arg] = login["args"]
    assert (arg["apiKey"], arg["passphrase"]) == ("key", "pass") and arg["timestamp"].isdigit()
    assert okx_check("secret", arg["timestamp"], "GET", "/users/self/verify", "", arg["sign"])
    assert ex.ws_logged_in(fixture("okx/login_response_ok.json"))
    assert not ex.ws_logged_in(fixture("okx/login_response_error.json"))


def test_okx_instidcodes_come_from_the_instruments_table(signed) -> None:
    ex = signed["okx"]
    assert ex.inst_codes == {"BTC-USDT": 1000071, "ETH-USDT": 1000128}   # "" and missing: no code, never a guess
    assert ex.ws_routable("BTC-USDT") and not ex.ws_routable("KXN-USDT") and not ex.ws_routable("KXM-USDT")
    assert [inst_id_code({"instIdCode": v}) for v in (True, -3, 0, "12a", 1.5, None)] == [None] * 6


def test_okx_order_frame_names_the_instrument_by_code(signed) -> None:
    ex = signed["okx"]
    frame = orjson.loads(ex.ws_place("o17", _req(OKX_SYMBOL, tif=Tif.IOC), "60000.1", "0.01"))
    assert (frame["id"], frame["op"]) == ("o17", "order") and int(frame["expTime"]) > 0
    assert frame["args"] == [{"instIdCode": 1000071, "tdMode": "cash", "side": "buy", "clOrdId": "kx7Ab2BTC0031",
                              "sz": "0.01", "ordType": "ioc", "px": "60000.1"}]
    market = orjson.loads(ex.ws_place("o18", _req(OKX_SYMBOL, OrderType.MARKET), None, "0.01"))["args"][0]
    assert (market["ordType"], market["tgtCcy"], "px" in market, "instId" in market) == ("market", "base_ccy",
                                                                                         False, False)
    cancel = orjson.loads(ex.ws_cancel("o19", "kx7Ab2BTC0031", OKX_SYMBOL))
    assert cancel == {"id": "o19", "op": "cancel-order", "args": [{"instIdCode": 1000071,
                                                                   "clOrdId": "kx7Ab2BTC0031"}]}


def test_okx_replies(signed) -> None:
    ex = signed["okx"]
    reply, used = ex.ws_reply(fixture("okx/ws_order_reply.json"))
    assert (reply.outcome, used) == (Outcome.OK, -1)
    view = ex.parse_placed(reply.data, _req(OKX_SYMBOL))
    assert (view.client_order_id, view.state, view.venue_order_id) == ("kx7Ab2BTC0031", OrderState.ACK,
                                                                       2210459183775299012)
    assert ex.ws_reply(fixture("okx/ws_cancel_reply.json"))[0].outcome is Outcome.OK
    reply, _ = ex.ws_reply(fixture("okx/error_ws_order_51008.json"))            # code 1, the reason in sCode
    assert (reply.outcome, reply.code, reply.reason) == (Outcome.REJECTED, "51008",
                                                        RejectReason.VENUE_INSUFFICIENT_BALANCE)
    reply, _ = ex.ws_reply(fixture("okx/ws_order_invalid_args.json"))           # top-level error, no data
    assert (reply.outcome, reply.code, reply.message) == (Outcome.REJECTED, "60013", "Invalid args")
    reply, _ = ex.ws_reply(fixture("okx/ws_order_rate_limited.json"))
    assert (reply.outcome, reply.code, reply.reason, reply.retry_after_s) == (
        Outcome.RATE_LIMITED, "50011", RejectReason.VENUE_RATE_LIMIT, 2.0)


@pytest.mark.parametrize("msg", [
    {"id": "o1", "op": "order"},                                               # no code
    {"id": "o1", "op": "order", "code": 0, "data": []},                        # code not a string
    {"id": "o1", "op": "order", "code": "0", "data": {}},                      # data not a list
    {"id": "o1", "op": "order", "code": "0", "data": []},                      # success without its order
    {"id": "o1", "op": "order", "code": "0", "data": [{"sCode": "0"}]},
])
def test_okx_unreadable_replies_raise(signed, msg: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        signed["okx"].ws_reply(msg)


# -- the executor's side: _send_order against a stub socket ----------------------------------------------------

class StubSocket:
    """Connected and logged in; answers every request with ``answer`` (or raises it)."""

    ready = True

    def __init__(self, answer: dict[str, Any] | Exception) -> None:
        self.answer = answer
        self.frames: list[str] = []
        self.counts: dict[str, int] = {}

    def close(self) -> None:
        self.ready = False

    def next_id(self) -> str:
        return "o1"

    def request(self, rid: str, frame: str) -> dict[str, Any]:
        self.frames.append(frame)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def send(self, rid: str, frame: str, on_answer: Callable[[dict[str, Any] | Exception], None]) -> None:
        self.frames.append(frame)
        self.later = lambda: on_answer(self.answer)  # the reader thread answers later


SYMBOLS = {"binance": "BTCUSDT", "okx": OKX_SYMBOL}
FILTERS = {"binance": "binance/exchange_info.json", "okx": "okx/instruments_codes.json"}
PLACED_COID = {"binance": "kx7Ab2BTC0032", "okx": "kx7Ab2BTC0031"}  # the ok fixtures' client order ids
ANSWERS = {
    "ok": {"binance": "binance/ws_order_place_reply.json", "okx": "okx/ws_order_reply.json"},
    "reject": {"binance": "binance/error_-2010_wsapi.json", "okx": "okx/error_ws_order_51008.json"},
    "rate": {"binance": "binance/ws_order_rate_limited.json", "okx": "okx/ws_order_rate_limited.json"},
}


def _place(ex: Any, socket: StubSocket, name: str) -> Any:
    ex.orders = socket
    req = _req(SYMBOLS[name])
    return ex._send_order(ex.ws_place, ex.ws_place_route, ex.place_call, req.symbol, req, "60000", "0.01")


@pytest.mark.parametrize("name", ["binance", "okx"])
@pytest.mark.parametrize(("answer", "outcome"), [("ok", Outcome.OK), ("reject", Outcome.REJECTED),
                                                 ("rate", Outcome.RATE_LIMITED)])
def test_send_order_over_the_socket(signed, name: str, answer: str, outcome: Outcome) -> None:
    ex = signed[name]
    socket = StubSocket(fixture(ANSWERS[answer][name]))
    assert _place(ex, socket, name).outcome is outcome
    assert len(socket.frames) == 1
    if answer == "rate":   # Binance 429: the venue is banned for every process; OKX 50011: only that endpoint
        cost = ex.budget.limits.cost(*ex.ws_place_route)
        assert (ex.budget.banned_s() > 0) is (name == "binance") and ex.budget.blocked_s(cost) > 0


@pytest.mark.parametrize("name", ["binance", "okx"])
def test_send_order_unreadable_or_lost_reply_is_unknown(signed, name: str) -> None:
    ex = signed[name]
    reply = _place(ex, StubSocket({"id": "o1", "status": "?", "code": 7}), name)
    assert (reply.outcome, reply.code) == (Outcome.UNKNOWN, "WS") and "unreadable" in reply.message
    reply = _place(ex, StubSocket(ReplyLost("connection lost")), name)
    assert (reply.outcome, reply.code) == (Outcome.UNKNOWN, "WS")
    assert ex.stats()["ws_bad_reply"] == 1 and ex.stats()["ws_lost"] == 1


@pytest.mark.parametrize("name", ["binance", "okx"])
@pytest.mark.parametrize(("answer", "kind"), [("ok", ExecKind.ACK), ("reject", ExecKind.REJECT)])
def test_submit_sends_on_the_socket_and_the_reply_completes_it(signed, name: str, answer: str,
                                                               kind: ExecKind) -> None:
    ex = signed[name]
    socket = StubSocket(fixture(ANSWERS[answer][name]))
    ex.orders = socket
    ex._filters = {1: next(iter(ex.parse_filters(fixture(FILTERS[name])).values()))}
    ex.submit(dataclasses.replace(_req(SYMBOLS[name]), client_order_id=PLACED_COID[name]))
    assert len(socket.frames) == 1 and ex.drain() == []   # sent from the caller's thread, nothing back yet
    socket.later()                                        # the reply, on the reader thread
    assert [(r.client_order_id, r.kind) for r in ex.drain()] == [(PLACED_COID[name], kind)]


def test_a_bug_while_completing_a_place_leaves_it_unknown_not_lost(signed) -> None:
    ex = signed["binance"]
    socket = StubSocket({"id": "o1", "status": 200, "result": {"symbol": "BTCUSDT"}})   # ok, but no order in it
    ex.orders = socket
    ex._filters = {1: next(iter(ex.parse_filters(fixture(FILTERS["binance"])).values()))}
    ex.submit(_req("BTCUSDT"))
    socket.later()
    order = ex._tracker.get("kx7Ab2BTC0031")
    assert order is not None and order.unknown and ex.stats()["worker_error"] == 1   # the next sync queries it
