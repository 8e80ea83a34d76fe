"""Layered YAML into frozen dataclasses: the generic machinery behind kairos.config.

Each key path remembers the layer (file or "environment") that set it, so every error names both.
`Secret` values may only come from the environment and never print themselves. Every number is
checked here, as it is built, against the `Range` its field declares (kairos/ranges.py) and refused
when not finite: a negative limit or an impossible port stops the start instead of switching a check off.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from kairos.errors import ConfigError
from kairos.ranges import RANGE, Range


class Secret(str):
    """A string that never prints itself."""

    def __repr__(self) -> str:
        return "Secret('***')" if self else "Secret('')"

    __str__ = __repr__

    def reveal(self) -> str:
        return str.__str__(self)


NO_SECRET = Secret("")

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
