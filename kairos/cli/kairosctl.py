"""kairosctl: the engine's command line, over the gRPC API (docs/GRPC.md).

    kairosctl status | orders | positions | balance | events [--count N]
    kairosctl place binance BTC-USDT buy 0.01 --price 50000 [--id ID] [--tif ioc] [--reduce-only]
    kairosctl cancel ID | halt [--cancel-all] | resume [--reduce-only]

The address comes from --addr, else $KAIROS_GRPC_ADDR, else the config's supervisor.grpc_host/port.
Mutating commands need the API token: --token or $KAIROS_API_TOKEN. Exit codes: 0 ok, 1 the engine
said no (REJECT, invalid request, ...), 2 engine not reachable, 3 not authorised.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from google.protobuf import json_format

from kairos.api.pb import pb, pb_grpc
from kairos.cli import render

DEFAULT_ADDR = "127.0.0.1:50551"
EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_UNAUTHORISED = 1, 2, 3


def default_addr() -> str:
    if os.environ.get("KAIROS_GRPC_ADDR"):
        return os.environ["KAIROS_GRPC_ADDR"]
    from kairos import config
    from kairos.errors import ConfigError

    try:
        cfg = config.load().supervisor
    except ConfigError:
        return DEFAULT_ADDR
    return f"{cfg.grpc_host}:{cfg.grpc_port}"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kairosctl", description=__doc__.split("\n")[0])
    p.add_argument("--addr", help=f"engine address (default: $KAIROS_GRPC_ADDR or config, {DEFAULT_ADDR})")
    p.add_argument("--token", default=os.environ.get("KAIROS_API_TOKEN", ""), help="API token ($KAIROS_API_TOKEN)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per call (default 10)")
    p.add_argument("--json", action="store_true", help="print the raw responses as JSON")
    sub = p.add_subparsers(dest="command", required=True)
    _reads(sub)
    _writes(sub)
    return p


def _reads(sub: Any) -> None:
    sub.add_parser("status", help="processes, rings and trading state")
    orders = sub.add_parser("orders", help="open orders")
    for q in (orders, sub.add_parser("balance", help="balances per venue")):
        q.add_argument("--venue", choices=render.VENUES, help="only this venue")
    orders.add_argument("--instrument", default="", help="only this instrument, e.g. BTC-USDT")
    sub.add_parser("positions", help="positions per venue and instrument")
    events = sub.add_parser("events", help="follow execution events")
    events.add_argument("--count", type=int, default=0, help="stop after N events (default: follow)")


def _writes(sub: Any) -> None:
    place = sub.add_parser("place", help="place an order (idempotent on --id)")
    place.add_argument("venue", choices=render.VENUES)
    place.add_argument("instrument")
    place.add_argument("side", choices=("buy", "sell"))
    place.add_argument("quantity", type=float)
    place.add_argument("--price", type=float, default=0.0, help="limit price (omit for a market order)")
    place.add_argument("--type", choices=("limit", "market", "limit_maker"), help="default: limit if --price")
    place.add_argument("--tif", choices=("gtc", "ioc", "fok"), help="default: gtc for limit, ioc for market")
    place.add_argument("--id", default="", help="client order id, <= 32 letters/digits (default: assigned)")
    place.add_argument("--reduce-only", action="store_true")
    sub.add_parser("cancel", help="cancel an order by client order id").add_argument("id")
    halt = sub.add_parser("halt", help="kill switch: trading HALTED")
    halt.add_argument("--cancel-all", action="store_true", help="also cancel every open order")
    halt.add_argument("--reason", default="kairosctl halt")
    resume = sub.add_parser("resume", help="trading ACTIVE again (or REDUCE_ONLY)")
    resume.add_argument("--reduce-only", action="store_true")


def place_request(a: argparse.Namespace) -> Any:
    kind = a.type or ("limit" if a.price else "market")
    return pb.PlaceOrderRequest(
        client_order_id=a.id, venue=render.venue(a.venue), instrument=a.instrument,
        side=pb.Side.Value(f"SIDE_{a.side.upper()}"), order_type=pb.OrderType.Value(f"ORDER_TYPE_{kind.upper()}"),
        time_in_force=pb.TimeInForce.Value(f"TIME_IN_FORCE_{a.tif.upper()}") if a.tif else 0,
        price=a.price, quantity=a.quantity, reduce_only=a.reduce_only,
    )


COMMANDS: dict[str, tuple[str, Callable[[argparse.Namespace], Any], Callable[[Any], str], bool]] = {
    "status": ("GetSystemStatus", lambda a: pb.GetSystemStatusRequest(), render.status, False),
    "orders": ("ListOrders", lambda a: pb.ListOrdersRequest(venue=render.venue(a.venue), instrument=a.instrument),
               render.orders, False),
    "positions": ("GetPositions", lambda a: pb.GetPositionsRequest(), render.positions, False),
    "balance": ("GetBalance", lambda a: pb.GetBalanceRequest(venue=render.venue(a.venue)), render.balances, False),
    "place": ("PlaceOrder", place_request, render.placed, True),
    "cancel": ("CancelOrder", lambda a: pb.CancelOrderRequest(client_order_id=a.id), render.cancelled, True),
    "halt": ("SetTradingState", lambda a: pb.SetTradingStateRequest(
        state=pb.TRADING_STATE_HALTED, cancel_open_orders=a.cancel_all, reason=a.reason), render.trading, True),
    "resume": ("SetTradingState", lambda a: pb.SetTradingStateRequest(
        state=pb.TRADING_STATE_REDUCE_ONLY if a.reduce_only else pb.TRADING_STATE_ACTIVE,
        reason="kairosctl resume"), render.trading, True),
}


def run(a: argparse.Namespace, stub: Any) -> int:
    if a.command == "events":
        return follow(a, stub)
    rpc, build, show, mutating = COMMANDS[a.command]
    metadata = (("authorization", f"Bearer {a.token}"),) if mutating and a.token else ()
    reply = getattr(stub, rpc)(build(a), metadata=metadata, timeout=a.timeout)
    print(json_format.MessageToJson(reply) if a.json else show(reply))
    return EXIT_REFUSED if a.command == "place" and reply.event.kind == pb.EXEC_KIND_REJECT else 0


def follow(a: argparse.Namespace, stub: Any) -> int:
    for seen, event in enumerate(stub.StreamEvents(pb.StreamEventsRequest()), start=1):
        print(json_format.MessageToJson(event, indent=None) if a.json else render.event(event), flush=True)
        if a.count and seen >= a.count:
            break
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    a = parser().parse_args(argv)
    addr = a.addr or default_addr()
    with grpc.insecure_channel(addr) as channel:
        try:
            return run(a, pb_grpc.TradingEngineStub(channel))
        except grpc.RpcError as exc:
            return explain(exc, addr)
        except KeyboardInterrupt:
            return 0


def explain(exc: grpc.RpcError, addr: str) -> int:
    code, details = exc.code(), exc.details() or ""
    if code is grpc.StatusCode.UNAVAILABLE and ("connect" in details.lower() or "socket" in details.lower()):
        print(f"kairosctl: the engine is not reachable at {addr}: is the supervisor running? "
              "(`make run`, or `systemctl status kairos-supervisor`); --addr or $KAIROS_GRPC_ADDR to point "
              "elsewhere", file=sys.stderr)
        return EXIT_UNREACHABLE
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        print(f"kairosctl: no answer from {addr} in time (--timeout)", file=sys.stderr)
        return EXIT_UNREACHABLE
    print(f"kairosctl: {code.name}: {details}", file=sys.stderr)
    return EXIT_UNAUTHORISED if code is grpc.StatusCode.UNAUTHENTICATED else EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
