"""The child table: which processes run, the exact command for each, and the order they stop in.

Data, not code: the supervisor spawns these and scripts/gen_systemd.py writes one unit per row,
so `make run` and systemd run the same command lines. Stop order (phase 0 first): feeds, strategy,
gate, persister, sim. Start order is the reverse, so consumers exist before their producers.
``fail_closed``: a crash loop of that role halts trading (gate, strategy). ``secrets``: the config
sections whose secrets the role gets in its environment (kairos/supervisor/secrets.py): the gate
the venue keys, and the simulator too, because it plays the venues and checks their signatures.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

from kairos.config import Settings
from kairos.supervisor.child import ChildSpec
from kairos.venues import NAMES


@dataclass(frozen=True, slots=True)
class Role:
    role: str
    module: str
    args: tuple[str, ...]
    stop_phase: int
    wanted: Callable[[Settings, bool], bool]
    halts_trading: bool = False
    fail_closed: bool = False
    secrets: tuple[str, ...] = ()

    @property
    def instance(self) -> str:
        """The venue of a per-venue process (a systemd template instance), else ''."""
        return self.args[1] if self.args[:1] == ("--venue",) else ""


def _venue(name: str) -> Callable[[Settings, bool], bool]:
    return lambda settings, _sim: name in settings.venues and settings.venues[name].enabled


ROLES: tuple[Role, ...] = (
    *(Role(f"feed.{name}", "procs.feed", ("--venue", name), 0, _venue(name)) for name in NAMES),
    Role("strategy", "procs.strategy", (), 1, lambda s, _sim: True, fail_closed=True),
    Role("gate", "procs.gate", (), 2, lambda s, _sim: True, halts_trading=True, fail_closed=True,
         secrets=("venues",)),
    Role("persister", "procs.persister", (), 3, lambda s, _sim: s.persister.enabled),
    Role("sim", "procs.sim", (), 4, lambda _s, sim: sim, secrets=("venues",)),
)


@dataclass(frozen=True, slots=True)
class Plan:
    """The children of one run, in start order, and their stop phases."""

    specs: tuple[ChildSpec, ...]
    stop_phases: tuple[tuple[str, ...], ...]


def argv(role: Role, python: str = sys.executable) -> tuple[str, ...]:
    return (python, "-m", role.module, *role.args)


def plan(settings: Settings, sim: bool, python: str = sys.executable) -> Plan:
    chosen = [r for r in ROLES if r.wanted(settings, sim)]
    starting = sorted(chosen, key=lambda r: -r.stop_phase)
    specs = tuple(ChildSpec(r.role, argv(r, python), r.halts_trading, r.fail_closed, r.secrets) for r in starting)
    phases = sorted({r.stop_phase for r in chosen})
    return Plan(specs, tuple(tuple(r.role for r in chosen if r.stop_phase == p) for p in phases))
