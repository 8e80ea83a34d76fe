"""Benchmark dispatcher: ``python -m scripts.bench <name>|all [--json] [--quick]``.

Loads ``scripts/bench_<name>.py`` and calls its ``run(quick: bool) -> dict``. Every benchmark
measures its own baseline in the same run and reports ratios, because this machine is shared and
noisy: absolute numbers move, ratios move less.

Result convention (anything else is printed as ``key: value``):
  ``rows``: list of dicts, printed as one table (columns: every key, in first-seen order);
  ``ratios``, ``targets``, ``notes``: printed under their own heading.
With ``--json`` exactly one JSON object is printed: the result, or ``{name: result}`` for ``all``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def run_one(name: str, quick: bool) -> dict[str, Any]:
    if name not in available():
        raise SystemExit(f"unknown benchmark {name!r}; available: {', '.join(available())}")
    module = importlib.import_module(f"scripts.bench_{name}")
    return module.run(quick)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e6 else f"{value / 1e6:.3g}M"
    return str(value)


def render(name: str, result: dict[str, Any]) -> str:
    """A readable text report of one benchmark result."""
    lines = [f"== {name} =="]
    rows = result.get("rows", [])
    if rows:
        columns = list(dict.fromkeys(key for row in rows for key in row))
        table = [columns] + [[_cell(row.get(c, "")) for c in columns] for row in rows]
        widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
        for k, row in enumerate(table):
            lines.append("  ".join(cell.rjust(w) if k else cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    for key, value in result.items():
        if key == "rows":
            continue
        if isinstance(value, dict):
            lines.append(f"-- {key}")
            lines.extend(f"  {k}: {_cell(v)}" for k, v in value.items())
        elif isinstance(value, list):
            lines.append(f"-- {key}")
            lines.extend(f"  {v}" for v in value)
        else:
            lines.append(f"{key}: {_cell(value)}")
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    """numpy scalars and arrays (which benchmarks naturally return) as plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench", description=__doc__.splitlines()[0])
    parser.add_argument("name", help=f"one of: all, {', '.join(available())}")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object")
    parser.add_argument("--quick", action="store_true", help="fewer messages: a smoke run")
    args = parser.parse_args(argv)
    names = available() if args.name == "all" else [args.name]
    results: dict[str, Any] = {}
    failed = False
    for name in names:
        try:
            results[name] = run_one(name, args.quick)
        except Exception as exc:  # one broken benchmark must not hide the others' numbers
            if args.name != "all":
                raise
            failed = True
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            traceback.print_exc(file=sys.stderr)
        if not args.json:
            print(render(name, results[name]), flush=True)
    if args.json:
        print(json.dumps(results if args.name == "all" else results[args.name], default=_jsonable))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
