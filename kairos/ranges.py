"""Declared ranges of numeric settings, and the safety checks a setting can switch off.

Each int/float field of a config dataclass carries its `Range` as field metadata (`num()`, or
`ranged()` for lists and mappings of numbers); kairos/layers.py applies it while loading, docs and
tests enumerate every number with `numeric_keys()`. A field marked ``safety`` (`_limit` and `flag`
in kairos/config.py) may be 0/false, but `disabled()` lists it so the enforcing process warns.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

RANGE = "kairos.range"
"""Field metadata key of a numeric setting's `Range`."""
SAFETY = "kairos.safety"
"""Field metadata key of the safety check a setting switches off when it is 0 or false."""


@dataclass(frozen=True, slots=True)
class Range:
    """The values a numeric setting (or each number inside a list/mapping setting) may take: finite, within
    ``lo``..``hi`` (``lo`` excluded when ``gt``), a power of two when ``pow2``; ``off`` says what 0 means
    when 0 is allowed outside the bounds."""

    lo: float
    hi: float = math.inf
    gt: bool = False
    off: str = ""
    pow2: bool = False

    def accepts(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.off and value == 0:
            return True
        above = value > self.lo if self.gt else value >= self.lo
        return above and value <= self.hi and not (self.pow2 and int(value) & (int(value) - 1))

    def describe(self) -> str:
        """The range in words, as docs/CONFIG.md and every range error show it."""
        low = f"{'>' if self.gt else '>='} {_number(self.lo)}"
        text = f"{low} and <= {_number(self.hi)}" if math.isfinite(self.hi) else low
        if self.pow2:
            text = f"a power of two {text}"
        return f"{text}, or 0 = {self.off}" if self.off else text


def _number(value: float) -> str:
    """Bounds as written in config: whole numbers in full (3600000, not 3.6e+06)."""
    return str(int(value)) if isinstance(value, int) or value.is_integer() else f"{value:g}"


def num(default: float, lo: float = -math.inf, hi: float = math.inf, *, gt: bool = False, off: str = "",
        pow2: bool = False, safety: str = "") -> Any:
    """A numeric dataclass field with its declared `Range`; ``safety`` names the check that a 0 switches off."""
    return dataclasses.field(default=default, metadata=ranged(lo, hi, gt=gt, off=off, pow2=pow2, safety=safety))


def ranged(lo: float = -math.inf, hi: float = math.inf, *, gt: bool = False, off: str = "", pow2: bool = False,
           safety: str = "") -> dict[str, Any]:
    """Field metadata declaring a `Range`: for ``field(default_factory=..., metadata=ranged(...))`` on lists
    and mappings of numbers, where the range applies to each number."""
    return {RANGE: Range(lo, hi, gt, off, pow2), **({SAFETY: safety} if safety else {})}


def flag(default: bool, safety: str) -> Any:
    """A bool field whose ``false`` switches off the safety check ``safety`` names."""
    return dataclasses.field(default=default, metadata={SAFETY: safety})


def disabled(obj: Any, prefix: str) -> Iterator[str]:
    """``key = value: what is off`` for every safety field of dataclass ``obj`` (recursively) set to 0 or false."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from disabled(value, f"{prefix}{f.name}.")
        elif SAFETY in f.metadata and not value:
            yield f"{prefix}{f.name} = {value}: {f.metadata[SAFETY]}"


def numeric_keys(cls: type, prefix: str = "") -> Iterator[tuple[str, type, Range | None, str]]:
    """``(key, int or float, Range or None, safety)`` for every number a ``cls`` setting can hold (recursively);
    in keys ``*`` stands for any mapping key and ``[]`` for any list item."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        leaf, key = _leaf(hints[f.name], f"{prefix}{f.name}")
        if isinstance(leaf, type) and dataclasses.is_dataclass(leaf):
            yield from numeric_keys(leaf, key + ".")
        elif leaf in (int, float):
            yield key, leaf, f.metadata.get(RANGE), f.metadata.get(SAFETY, "")


def _leaf(hint: Any, key: str) -> tuple[Any, str]:
    """The item type inside tuples and mappings, and the key pattern that reaches it."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        return _leaf(typing.get_args(hint)[0], key + "[]")
    if origin is dict:
        return _leaf(typing.get_args(hint)[1], key + ".*")
    return hint, key
