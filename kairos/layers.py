"""Layered YAML into frozen dataclasses: the generic machinery behind kairos.config.

Each key path remembers the layer (file or "environment") that set it, so every error names both.
`Secret` values may only come from the environment and never print themselves. Every numeric field
declares its `Range` with `num()` (field metadata), checked here by one validator as values are
built: a negative limit or an impossible port must stop the start, not silently switch a check off.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kairos.errors import ConfigError


class Secret(str):
    """A string that never prints itself."""

    def __repr__(self) -> str:
        return "Secret('***')" if self else "Secret('')"

    __str__ = __repr__

    def reveal(self) -> str:
        return str.__str__(self)


NO_SECRET = Secret("")

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


def ranges(cls: type, prefix: str = "") -> Iterator[tuple[str, type, Range | None, str]]:
    """``(key, int or float, Range or None, safety)`` for every number a ``cls`` setting can hold (recursively);
    in keys ``*`` stands for any mapping key and ``[]`` for any list item."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        leaf, key = _leaf(hints[f.name], f"{prefix}{f.name}")
        if isinstance(leaf, type) and dataclasses.is_dataclass(leaf):
            yield from ranges(leaf, key + ".")
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


def read_yaml(path: Path) -> dict[str, Any]:
    """One layer file; a syntax error names the file, line and column."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"invalid YAML{at}: {getattr(exc, 'problem', None) or exc}", "", str(path)) from exc
    if not isinstance(data, dict):
        raise ConfigError("top level must be a mapping", "", str(path))
    return data


def env_layer(environ: Mapping[str, str], prefix: str, secret_names: frozenset[str]) -> dict[str, Any]:
    """``PREFIXSECTION__KEY=value`` variables as a nested mapping; values parsed as YAML scalars."""
    layer: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(prefix):
            continue
        parts = [p.lower() for p in name[len(prefix):].split("__") if p]
        node = layer
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        is_secret = parts[-1] in secret_names
        node[parts[-1]] = EnvSecret(raw) if is_secret else yaml.safe_load(raw) if raw else ""
    return layer


class EnvSecret(str):
    """Marks a value that arrived through the environment, the only place secrets may come from."""


def merge(dst: dict[str, Any], src: dict[str, Any], sources: dict[str, str], origin: str, prefix: str) -> None:
    """Deep-merge ``src`` into ``dst``, remembering in ``sources`` which layer set each key path."""
    for key, value in src.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            merge(dst[key], value, sources, origin, path + ".")
        else:
            dst[key] = value
        _mark(value, sources, origin, path)


def _mark(value: Any, sources: dict[str, str], origin: str, path: str) -> None:
    sources[path] = origin
    if isinstance(value, dict):
        for key, sub in value.items():
            _mark(sub, sources, origin, f"{path}.{key}")


def build(cls: type, data: Any, sources: dict[str, str], prefix: str) -> Any:
    """Construct dataclass ``cls`` from merged data, checking keys and types; errors name key and file."""
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping, got {type(data).__name__}", prefix.rstrip("."),
                          sources.get(prefix.rstrip("."), ""))
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise ConfigError("unknown key", f"{prefix}{key}", sources.get(f"{prefix}{key}", ""))
    kwargs = {f.name: _coerce(hints[f.name], data[f.name], sources, f"{prefix}{f.name}", f.metadata.get(RANGE))
              for f in dataclasses.fields(cls) if f.name in data}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        where = prefix.rstrip(".")
        raise ConfigError(f"missing required key: {exc}", where, sources.get(where, "")) from exc
    except ConfigError as exc:
        if exc.source or not exc.key:
            raise
        raise ConfigError(exc.message, exc.key, sources.get(exc.key, "")) from exc


def _coerce(hint: Any, value: Any, sources: dict[str, str], key: str, bounds: Range | None = None) -> Any:
    source = _source(sources, key)
    origin = typing.get_origin(hint)
    if hint is Secret:
        if value and not isinstance(value, EnvSecret):
            raise ConfigError("secrets may only come from the environment", key, source)
        return Secret(value or "")
    if dataclasses.is_dataclass(hint):
        return build(hint, value, sources, key + ".")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"expected a list, got {type(value).__name__}", key, source)
        item = typing.get_args(hint)[0]
        return tuple(_coerce(item, v, sources, f"{key}[{i}]", bounds) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"expected a mapping, got {type(value).__name__}", key, source)
        item = typing.get_args(hint)[1]
        return {str(k): _coerce(item, v, sources, f"{key}.{k}", bounds) for k, v in value.items()}
    if isinstance(hint, types.UnionType):
        raise ConfigError("unsupported union type", key, source)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            value = float(value)
        except OverflowError:
            raise ConfigError(f"must be a finite number, got an integer of {len(str(value))} digits", key,
                              source) from None
    if hint in (int, float, str, bool) and (type(value) is not hint):
        raise ConfigError(f"expected {hint.__name__}, got {type(value).__name__} {value!r}", key, source)
    if hint in (int, float):
        _check(value, bounds, key, source)
    return value


def _check(value: float, bounds: Range | None, key: str, source: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"must be a finite number, got {value!r}", key, source)
    if bounds is not None and not bounds.accepts(value):
        raise ConfigError(f"must be {bounds.describe()}, got {value!r}", key, source)


def _source(sources: dict[str, str], key: str) -> str:
    """The layer that set ``key``, or the nearest enclosing key (list items are not tracked on their own)."""
    while key not in sources and ("." in key or "[" in key):
        key = key[:max(key.rfind("."), key.rfind("["))]
    return sources.get(key, "")


def plain(value: Any) -> Any:
    """Dataclasses as plain data with every secret replaced."""
    if isinstance(value, Secret):
        return "***" if value else ""
    if dataclasses.is_dataclass(value):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    return value
