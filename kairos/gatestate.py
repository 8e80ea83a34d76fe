"""The gate-state blob as a typed contract: what the gate publishes (`kairos.gate.state.describe`) and
what api/, persist/ and supervisor/ read, declared once (schema version 1).

The gate builds a `GateState` and the segment (`kairos.gate.snapshot`) carries it as JSON; a reader
turns the JSON back into the same dataclasses with `parse`, which checks every field's type, so a
consumer never meets a missing key or a string where a number belongs: a wrong-shaped blob is one
`GateStateError` naming the field. Enum fields carry the wire numbers of kairos/records.py; venues
and instruments come with both their id and their name. ``age_s`` is set by the reader.

Extending version 1: a new field is declared with ``metadata=ADDED`` and a default. A blob from an older
gate, without it, still parses (the default stands); an older reader refuses a newer gate's blob (an
unknown key), so readers (supervisor, strategy, persister) are upgraded with or before the gate.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final, get_args, get_origin, get_type_hints

from kairos.errors import KairosError

VERSION: Final = 1
ADDED: Final = {"added_in_version": VERSION}
"""Field metadata: added within the version, so an older gate's blob may lack it (docstring above)."""


class GateStateError(KairosError):
    """The blob does not have the contract's shape (another version, a bug, a partial write)."""


@dataclass(frozen=True, slots=True)
class Balance:
    venue: str
    venue_id: int
    asset: str
    free: float  # total - locked
    locked: float


@dataclass(frozen=True, slots=True)
class Position:
    venue: str
    venue_id: int
    instrument: str
    instrument_id: int
    quantity: float
    avg_price: float
    realized_pnl: float
    mark: float
    unrealized_pnl: float


@dataclass(frozen=True, slots=True)
class OpenOrder:
    client_order_id: str
    venue_order_id: int
    venue: str
    venue_id: int
    instrument: str
    instrument_id: int
    side: int
    order_type: int
    tif: int
    state: int
    price: float
    quantity: float
    cum_quantity: float
    strategy: int
    flags: int


@dataclass(frozen=True, slots=True)
class StrategyNet:
    """Signed fills of one strategy in one instrument."""

    strategy: int
    instrument: str
    instrument_id: int
    net_quantity: float


@dataclass(frozen=True, slots=True)
class Pnl:
    realized_today: float = 0.0
    unrealized: float = 0.0


@dataclass(frozen=True, slots=True)
class GateCounters:
    intents: int = 0
    orders_sent: int = 0
    fills: int = 0
    rejects: int = 0
    replayed: int = 0
    events: int = 0
    rejects_by_reason: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GateState:
    """``reconciled``: every venue; ``venues_reconciled``: those reconciled so far (the others are closed,
    their intents rejected NOT_RECONCILED). ``trading_reason``: why the state was set; ``trading_refused``:
    state changes refused because the journal could not be written. ``orders``: open orders only.
    ``balance_pushes``: per venue, what became of its balance pushes (`kairos.gate.pushes.OUTCOMES`)."""

    version: int = VERSION
    ts_ns: int = 0
    pid: int = 0
    mode: str = ""
    reconciled: bool = False
    venues_reconciled: list[str] = field(default_factory=list)
    trading_state: str = "HALTED"
    trading_state_id: int = 2
    trading_reason: str = ""
    trading_refused: int = 0
    balances: list[Balance] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)
    orders: list[OpenOrder] = field(default_factory=list)
    strategies: list[StrategyNet] = field(default_factory=list)
    pnl: Pnl = field(default_factory=Pnl)
    counters: GateCounters = field(default_factory=GateCounters)
    executors: dict[str, dict[str, int]] = field(default_factory=dict)
    balance_pushes: dict[str, dict[str, int]] = field(default_factory=dict, metadata=ADDED)
    age_s: float = 0.0


def parse(raw: object) -> GateState:
    """The blob's JSON value as a `GateState`; GateStateError naming the first field that does not fit."""
    state = _value(GateState, raw, "gate state")
    if state.version != VERSION:
        raise GateStateError(f"gate state version {state.version}, this reader knows {VERSION}")
    return state


def _value(kind: Any, raw: object, path: str) -> Any:
    origin = get_origin(kind)
    if origin is list:
        (item,) = get_args(kind)
        return [_value(item, v, f"{path}[{i}]") for i, v in enumerate(_checked(raw, list, path))]
    if origin is dict:
        _, item = get_args(kind)
        return {k: _value(item, v, f"{path}.{k}") for k, v in _checked(raw, dict, path).items()}
    if dataclasses.is_dataclass(kind):
        fields = _check_keys(kind, _checked(raw, dict, path), path)
        return kind(**{name: _value(hint, fields[name], f"{path}.{name}") for name, hint in _hints(kind).items()
                       if name in fields})
    if kind is float:
        return float(_checked(raw, (int, float), path))
    return _checked(raw, kind, path)


def _checked(raw: object, kind: type | tuple[type, ...], path: str) -> Any:
    if not isinstance(raw, kind) or (isinstance(raw, bool) and kind is not bool):
        raise GateStateError(f"{path}: {type(raw).__name__} {raw!r:.60} where the contract has {_name(kind)}")
    return raw


def _check_keys(kind: type, raw: dict[str, Any], path: str) -> dict[str, Any]:
    """Every field must be there but an `ADDED` one (the defaults are for building one in code); unknown keys
    are another schema."""
    hints = _hints(kind)
    missing, unknown = hints.keys() - raw.keys() - _added(kind), raw.keys() - hints.keys()
    if missing or unknown:
        raise GateStateError(f"{path}: missing {sorted(missing)}, unknown {sorted(unknown)}")
    return raw


@cache
def _hints(kind: type) -> dict[str, Any]:
    return get_type_hints(kind)


@cache
def _added(kind: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(kind) if "added_in_version" in f.metadata)


def _name(kind: type | tuple[type, ...]) -> str:
    return "number" if isinstance(kind, tuple) else kind.__name__
