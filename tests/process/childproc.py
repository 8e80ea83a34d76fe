"""Throwaway child processes for supervisor tests: real processes on the real status board and rings.

``python -m tests.process.childproc ROLE MODE [--log FILE]``, prefix from KAIROS__SHM_PREFIX:

- ``run``    claim the row, heartbeat until SIGTERM (``--grandchild``: also start a ``sleep``;
             ``--after S``: a start-up that takes S seconds without heartbeats)
- ``crash``  exit with ``--code`` after ``--after`` seconds
- ``raise``  go through the real process edge (kairos.process.run_process) with a build that raises
- ``hang``   claim the row, heartbeat once, then ignore SIGTERM and never heartbeat again
- ``gate``   a minimal gate: reads `manual` as consumer "gate", answers every intent with an
             EXEC_EVENT (ACK, or REJECT when not ACTIVE; CANCELED; STATE) and publishes a state blob;
             a MARKET order is also filled in two halves, at 100 and 102

Every mode appends ``<role> <event> <detail> <monotonic_ns>`` lines to ``--log``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from typing import NoReturn

import numpy as np

from kairos.agent import AgentRunner, sleep_idle
from kairos.config import Settings
from kairos.gate.snapshot import GateStateWriter
from kairos.gatestate import Balance, GateState, OpenOrder, Position, StrategyNet
from kairos.process import run_process
from kairos.records import (
    EXEC_EVENT,
    ORDER_INTENT,
    Action,
    ExecKind,
    OrderState,
    OrderType,
    ProcState,
    TradingState,
)
from kairos.ring import Ring
from kairos.status import StatusBoard

PREFIX = os.environ["KAIROS__SHM_PREFIX"]


def note(path: str | None, role: str, event: str, detail: object = "") -> None:
    if path:
        with open(path, "a") as f:
            f.write(f"{role} {event} {detail or '-'} {time.monotonic_ns()}\n")


class Idler:
    def __init__(self, role: str, log: str | None, grandchild: bool, startup_s: float = 0.0) -> None:
        self.role, self.log, self.grandchild, self.startup_s = role, log, grandchild, startup_s

    def on_start(self) -> None:
        time.sleep(self.startup_s)
        if self.grandchild:
            note(self.log, self.role, "grandchild", subprocess.Popen(["sleep", "600"]).pid)
        note(self.log, self.role, "started", os.getpid())

    def do_work(self) -> int:
        return 0

    def on_close(self) -> None:
        note(self.log, self.role, "term", os.getpid())


class MiniGate(Idler):
    """Answers intents the way the gate contract says (every outcome is an EXEC_EVENT)."""

    def on_start(self) -> None:
        self.manual = Ring.attach("manual", ORDER_INTENT, prefix=PREFIX).consumer("gate")
        self.events = Ring.attach("events", EXEC_EVENT, prefix=PREFIX).producer()
        self.blob = GateStateWriter(PREFIX)
        self.trading, self.open, self.seq, self.why = TradingState.ACTIVE, {}, 0, ""
        self.publish_state()
        note(self.log, self.role, "started", os.getpid())

    def do_work(self) -> int:
        return self.manual.poll(self.on_intents, 64)

    def on_intents(self, view: np.ndarray) -> None:
        out = np.zeros(len(view), EXEC_EVENT)
        for rec, ev in zip(view, out, strict=True):
            coid, action = bytes(rec["client_order_id"]).rstrip(b"\0").decode(), Action(int(rec["action"]))
            note(self.log, self.role, action.name, coid)
            self.seq += 1
            ev["event_seq"], ev["client_order_id"], ev["ts_event_ns"] = self.seq, coid.encode(), time.time_ns()
            for field in ("instrument", "venue", "side", "price", "qty"):
                ev[field] = rec[field]
            ev["kind"], ev["state"], ev["flags"] = self.outcome(action, coid, rec)
            ev["order_qty"] = rec["qty"]
        self.events.publish(out)
        for ev, rec in zip(out, view, strict=True):
            if ev["kind"] == ExecKind.ACK and rec["order_type"] == OrderType.MARKET:
                self.events.publish(self.fills(ev))
        self.publish_state()

    def fills(self, ack: np.void) -> np.ndarray:
        out = np.zeros(2, EXEC_EVENT)
        out[:] = ack
        half = float(ack["order_qty"]) / 2
        for i, (ev, price) in enumerate(zip(out, (100.0, 102.0), strict=True)):
            self.seq += 1
            ev["event_seq"], ev["kind"], ev["price"], ev["qty"] = self.seq, ExecKind.FILL, price, half
            ev["cum_qty"], ev["fee"] = half * (i + 1), 0.01
            ev["state"] = OrderState.FILLED if i else OrderState.PARTIAL
        self.open.pop(bytes(ack["client_order_id"]).rstrip(b"\0").decode())
        return out

    def outcome(self, action: Action, coid: str, rec: np.void) -> tuple[int, int, int]:
        if action is Action.NEW and self.trading is TradingState.ACTIVE:
            self.open[coid] = OpenOrder(coid, self.seq, "binance", int(rec["venue"]), "BTC-USDT",
                                        int(rec["instrument"]), int(rec["side"]), int(rec["order_type"]),
                                        int(rec["tif"]), int(OrderState.ACK), float(rec["price"]),
                                        float(rec["qty"]), 0.0, 0, 0)
            return ExecKind.ACK, OrderState.ACK, 0
        if action is Action.NEW:
            return ExecKind.REJECT, OrderState.REJECTED, 0
        if action is Action.CANCEL:
            known = self.open.pop(coid, None) is not None
            return (ExecKind.CANCELED, OrderState.CANCELED, 0) if known else (ExecKind.CANCEL_REJECT, 0, 0)
        if action is Action.CANCEL_ALL:
            self.open.clear()
            return ExecKind.STATE, 0, int(self.trading)
        self.trading, self.why = TradingState(int(rec["flags"])), "SET_STATE from the API"
        return ExecKind.STATE, 0, int(self.trading)

    def publish_state(self) -> None:
        """The contract of kairos/gatestate.py, with made-up balances and positions."""
        self.blob.write(GateState(
            trading_state=self.trading.name, trading_state_id=int(self.trading), trading_reason=self.why,
            balances=[Balance("binance", 1, "USDT", 1000.0, 5.0)],
            positions=[Position("binance", 1, "BTC-USDT", 1, 0.5, 100.0, 0.0, 0.0, 0.0)],
            strategies=[StrategyNet(1, "BTC-USDT", 1, -0.002)], orders=list(self.open.values())))


def explode(_settings: Settings) -> NoReturn:
    raise ValueError("boom: the process edge must report this")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("role")
    parser.add_argument("mode", choices=("run", "crash", "raise", "hang", "gate"))
    parser.add_argument("--log")
    parser.add_argument("--code", type=int, default=1)
    parser.add_argument("--after", type=float, default=0.0)
    parser.add_argument("--grandchild", action="store_true")
    args = parser.parse_args()
    if args.mode == "crash":
        time.sleep(args.after)
        note(args.log, args.role, "crash", args.code)
        return args.code
    if args.mode == "raise":
        note(args.log, args.role, "raise", os.getpid())
        return run_process(args.role, explode)
    slot = StatusBoard.attach(PREFIX).claim(args.role)
    if args.mode == "hang":
        slot.set_state(ProcState.RUNNING)
        slot.heartbeat()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        note(args.log, args.role, "hanging", os.getpid())
        time.sleep(600)
        return 0
    agent = (MiniGate if args.mode == "gate" else Idler)(args.role, args.log, args.grandchild, args.after)
    agent.role = args.role
    return AgentRunner(agent, sleep_idle(0.01), slot, heartbeat_interval_s=0.05).run()


if __name__ == "__main__":
    sys.exit(main())
