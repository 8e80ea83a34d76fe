"""Package boundaries: kairos' packages import each other without a cycle (issue 13).

Walks every ``import kairos...`` statement (function-level ones too) of every kairos module and folds
them into a graph of top-level packages and modules (``gate``, ``execution``, ``journal`` ...). A
cycle (execution/ importing gate/ while the gate imports execution/) fails with the modules that
close it.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

import kairos

ROOT = Path(kairos.__file__).parent
Graph = dict[str, dict[str, str]]


def unit(module: str) -> str:
    """The top-level package or module a dotted kairos name belongs to."""
    return module.split(".")[1]


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("kairos."):
            found.add(node.module or "")
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("kairos.")}
    return found


def graph() -> Graph:
    """unit -> {imported unit: one importing module (for the message)}."""
    edges: Graph = defaultdict(dict)
    for path in ROOT.rglob("*.py"):
        if "gen" in path.relative_to(ROOT).parts:
            continue
        module = ".".join(("kairos", *path.relative_to(ROOT).with_suffix("").parts))
        for target in imports(path):
            if unit(target) != unit(module):
                edges[unit(module)].setdefault(unit(target), module)
    return edges


def cycle(edges: Graph) -> list[str]:
    """One cycle as a path of units, or [] (depth-first search with colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in edges.get(node, {}):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return []

    for node in list(edges):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_packages_import_each_other_without_a_cycle() -> None:
    edges = graph()
    found = cycle(edges)
    assert not found, "import cycle: " + " -> ".join(
        f"{a} ({edges[a][b]})" for a, b in pairwise(found)) + f" -> {found[-1]}"


def test_the_named_boundaries_hold() -> None:
    edges = graph()
    assert "gate" not in edges["execution"], edges["execution"].get("gate")
    assert "supervisor" not in edges["api"], edges["api"].get("supervisor")
    assert {"gate", "api", "execution"} <= {u for u, m in edges.items() if "journal" in m}


def test_a_cycle_is_found_and_named() -> None:
    assert cycle({"a": {"b": "kairos.a.x"}, "b": {"c": "kairos.b.y"}, "c": {"a": "kairos.c.z"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b": "kairos.a.x"}, "b": {}}) == []
