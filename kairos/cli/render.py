"""Plain-text tables for kairosctl: kairos.v1 responses in, aligned columns out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kairos.api.commands import MANUAL_STRATEGY
from kairos.api.pb import pb
from kairos.gate.pushes import OUTCOMES
from kairos.instruments import VENUE_NAMES
from kairos.strategy import REGISTRY

VENUES = tuple(VENUE_NAMES)
PUSH = "push."  # the gate's balance-push totals on its row: push.<outcome> (kairos/gate/metrics.py)
STRATEGY_NAMES = {MANUAL_STRATEGY: "manual"} | {sid: strategy for strategy, (sid, _) in REGISTRY.items()}


def strategy(sid: int) -> str:
    """Strategy id -> its configured name (`manual`, `arbitrage`, ...); never a bare number if known."""
    return STRATEGY_NAMES.get(sid, f"strategy#{sid}")


def venue(name: str | None) -> int:
    return pb.Venue.Value(f"VENUE_{name.upper()}") if name else 0


def name(enum: Any, value: int) -> str:
    """SIDE_BUY -> BUY; an unset enum prints as '-'."""
    if not value:
        return "-"
    full = enum.Name(value)
    prefix = enum.DESCRIPTOR.values[0].name.removesuffix("UNSPECIFIED").removesuffix("NONE")
    return full.removeprefix(prefix)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(headers), *([str(c) for c in row] for row in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)


def duration(seconds: float) -> str:
    if seconds < 0:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def status(s: Any) -> str:
    state = name(pb.TradingState, s.trading_state) if s.trading_state else "UNKNOWN (gate has not published)"
    if s.trading_state_note:
        state = f"UNKNOWN ({s.trading_state_note}: its last published state is not trusted)"
    elif s.trading_reason and s.trading_state != pb.TRADING_STATE_ACTIVE:
        state = f"{state} ({s.trading_reason})"
    head = (f"engine: {s.mode} mode, trading {state}, gate state {duration(s.gate_state_age_s)} old, "
            f"up {duration(s.uptime_s)}, shm prefix {s.shm_prefix}")
    rows = [(p.role, _state(p), p.pid or "-", duration(p.uptime_s) if p.pid else "-", p.restarts,
             duration(p.heartbeat_age_s), _rates(p), _latencies(p), p.last_error or "") for p in s.processes]
    procs = table(("ROLE", "STATE", "PID", "UPTIME", "RESTARTS", "HEARTBEAT", "RATES /s", "P50/P99/P99.9 us",
                   "LAST ERROR"),
                  rows)
    cursors = [(r.ring, r.consumer, r.depth, r.overruns) for p in s.processes for r in p.rings]
    rings = table(("RING", "CONSUMER", "DEPTH", "OVERRUNS"), sorted(cursors))
    stages = [(h.name, f"{h.p50_us:.1f}", f"{h.p99_us:.1f}", f"{h.p999_us:.1f}", h.count) for h in s.order_latencies]
    traced = table(("ORDER STAGE", "P50 us", "P99 us", "P99.9 us", "ORDERS"), stages) if stages else "(no orders yet)"
    return f"{head}\n\n{procs}{_waiting(s.processes)}{_bans(s.processes)}{_gate(s.processes)}\n\n{rings}\n\n{traced}"


def _bans(procs: Sequence[Any]) -> str:
    """One line per venue whose REST calls are halted by a 429/418 (the supervisor's ``rl.<venue>.*`` counters)."""
    counters = {k: v for p in procs if p.role == "supervisor" for k, v in p.counters.items()}
    return "".join(f"\n{k.split('.')[1]}: REST calls halted by HTTP {counters.get(k[:-5] + 'ban_status', 0)}, "
                   f"{duration(v)} left" for k, v in sorted(counters.items()) if k.endswith(".ban_s") and v)


def _gate(procs: Sequence[Any]) -> str:
    """The gate's safety counters (docs/RISK.md): venues not reconciled (closed), quotes refused as marks, and
    what became of the venues' balance pushes (kairos/gate/pushes.py), once there were any."""
    counters = {k: v for p in procs if p.role == "gate" for k, v in p.counters.items()}
    closed = sorted(k.removeprefix("closed.") for k, v in counters.items() if k.startswith("closed.") and v)
    lines = [f"\ngate: {', '.join(closed)} not reconciled: its orders are rejected NOT_RECONCILED, retried every "
             "second"] if closed else []
    if counters.get("bad_quotes"):
        lines.append(f"\ngate: {counters['bad_quotes']} invalid quotes not used as marks (bad_quotes)")
    pushes = {name: counters.get(f"{PUSH}{name}", 0) for name in OUTCOMES}
    if any(pushes.values()):
        bad = " (bad: not a finite non-negative amount, ignored; see the gate's log)" if pushes["bad"] else ""
        lines.append("\ngate: venue balance pushes " + ", ".join(f"{k} {n}" for k, n in pushes.items()) + bad)
    return "".join(lines)


def _waiting(procs: Sequence[Any]) -> str:
    """One line per child in BACKOFF (when it is retried, whether it is crash-looping), and per process
    systemd restarts in a crash loop (--watch: its restarts without a stable run)."""
    return "".join(_retried(p) for p in procs if p.state_name == "BACKOFF" or p.crash_loop)


def _retried(p: Any) -> str:
    if p.state_name != "BACKOFF":
        return f"\n{p.role}: crash loop ({p.restarts} restarts, no stable run yet)"
    return (f"\n{p.role}: BACKOFF, next attempt in {duration(p.next_attempt_in_s)}"
            + (" (crash loop: retried forever at the capped delay)" if p.crash_loop else ""))


def _state(p: Any) -> str:
    """The supervisor's view, then what the process says of itself when that differs (RUNNING/DEGRADED)."""
    own = p.self_state if p.self_state and p.self_state != p.state_name else ""
    return f"{p.state_name}/{own}" if own else p.state_name


def _rates(p: Any) -> str:
    return " ".join(f"{k}={v:.0f}" for k, v in sorted(p.msg_rates.items()) if v) or "-"


def _latencies(p: Any) -> str:
    shown = (f"{h.name.removesuffix('_ns')}={h.p50_us:.0f}/{h.p99_us:.0f}/{h.p999_us:.0f}"
             for h in p.latencies if h.count)
    return " ".join(shown) or "-"


def orders(r: Any) -> str:
    rows = [(o.client_order_id, name(pb.Venue, o.venue), o.instrument, name(pb.Side, o.side),
             name(pb.OrderType, o.order_type), name(pb.OrderState, o.state), f"{o.price:g}", f"{o.quantity:g}",
             f"{o.cum_quantity:g}", strategy(o.strategy)) for o in r.orders]
    body = table(("ID", "VENUE", "INSTRUMENT", "SIDE", "TYPE", "STATE", "PRICE", "QTY", "FILLED", "STRATEGY"), rows)
    return f"{body}\n({len(rows)} open, gate state {duration(r.state_age_s)} old)"


def positions(r: Any) -> str:
    rows = [(name(pb.Venue, p.venue), p.instrument, f"{p.quantity:g}", f"{p.avg_price:g}", f"{p.realized_pnl:g}")
            for p in r.positions]
    body = table(("VENUE", "INSTRUMENT", "QTY", "AVG PRICE", "REALIZED PNL"), rows)
    nets = [(strategy(n.strategy), n.instrument, f"{n.net_quantity:+g}")
            for n in r.strategy_nets]
    return f"{body}\n\n{table(('STRATEGY', 'INSTRUMENT', 'NET QTY (all venues)'), nets)}" if nets else body


def balances(r: Any) -> str:
    rows = [(name(pb.Venue, b.venue), b.asset, f"{b.free:g}", f"{b.locked:g}") for b in r.balances]
    return table(("VENUE", "ASSET", "FREE", "LOCKED"), rows)


def event(e: Any) -> str:
    reason = f" reason={name(pb.RejectReason, e.reason)}" if e.reason else ""
    qty = e.quantity if e.kind == pb.EXEC_KIND_FILL else e.order_quantity
    return (f"#{e.event_seq} {name(pb.ExecKind, e.kind)} {e.client_order_id} {name(pb.Venue, e.venue)} "
            f"{e.instrument} {name(pb.Side, e.side)} {name(pb.OrderState, e.state)} "
            f"{qty:g}@{e.price:g} cum={e.cum_quantity:g} fee={e.fee:g}{reason} strategy={strategy(e.strategy)}")


def placed(r: Any) -> str:
    if r.pending:
        return f"PENDING {r.client_order_id}: queued, no outcome yet; repeat with --id {r.client_order_id} to ask"
    return ("(repeat of an earlier call) " if r.duplicate else "") + event(r.event)


def cancelled(r: Any) -> str:
    return f"PENDING cancel of {r.client_order_id}: no outcome yet" if r.pending else event(r.event)


def trading(r: Any) -> str:
    applied = "confirmed by the gate" if r.applied else "queued, NOT yet confirmed by the gate (is it running?)"
    return f"trading {name(pb.TradingState, r.previous)} -> {name(pb.TradingState, r.current)}: {applied}"


def filled(first: Any, later: Sequence[Any], wait_ms: int) -> str:
    """What a market/IOC order came to: filled quantity, average price, fees, and its last state."""
    fills = [e for e in (first, *later) if e.kind == pb.EXEC_KIND_FILL]
    qty = sum(e.quantity for e in fills)
    last = later[-1] if later else first
    state = name(pb.OrderState, last.state)
    if not qty:
        final = last.state in (pb.ORDER_STATE_CANCELED, pb.ORDER_STATE_REJECTED, pb.ORDER_STATE_EXPIRED)
        return f"no fill; order {state}" if final else f"no fill within {wait_ms} ms; order {state}"
    avg = sum(e.quantity * e.price for e in fills) / qty
    return (f"filled {qty:g} of {first.order_quantity:g} {first.instrument} at avg {avg:g} "
            f"({len(fills)} fill{'s' if len(fills) > 1 else ''}, fee {sum(e.fee for e in fills):g}); order {state}")
