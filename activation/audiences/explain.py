"""Why a profile is in or out: every condition evaluated for that one profile, then combined.

One read-only query evaluates each condition of the tree (scoped to the profile, so it reads only
that profile's traits and events) together with what was observed: the trait's JSON value, the
computed trait, the number of matching events. The tree is then folded in Python.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from activation.audiences.compiler import Compiler
from activation.audiences.limits import select
from activation.audiences.printer import render
from activation.audiences.tree import COMPUTED, And, Computed, Event, Leaf, Node, Not, Or, Trait, leaves


def explain_sql(node: Node, now: datetime, profile_id: str) -> tuple[str, dict[str, Any]]:
    """SELECT of one row: per condition `cN` (0/1) and `oN` (what was observed, as text)."""
    compiler = Compiler(now, profile_id)
    columns = []
    for i, (_, leaf) in enumerate(leaves(node)):
        columns.append(f"toUInt8({compiler.leaf(leaf)}) AS c{i}")
        columns.append(f"{_observed(compiler, leaf)} AS o{i}")
    return f"SELECT {', '.join(columns)} FROM profiles FINAL WHERE {compiler.universe()}", compiler.values


def _observed(compiler: Compiler, leaf: Leaf) -> str:
    if isinstance(leaf, Trait):
        return f"toString({compiler.trait_value(leaf)})"
    if isinstance(leaf, Computed):
        if leaf.name not in COMPUTED:
            return f"toString({compiler.user_computed_value(leaf)})"
        return f"toString({COMPUTED[leaf.name][0]})"
    if isinstance(leaf, Event):
        return f"toString((SELECT sum(n) FROM ({compiler.event_counts(leaf)})))"
    return "''"


def explain(ch: Client, node: Node, now: datetime, profile_id: str) -> dict[str, Any]:
    """{"profile_id", "found", "member", "conditions": [...], "tree": {...}} for one profile."""
    sql, params = explain_sql(node, now, profile_id)
    rows = select(ch, sql, params)
    if not rows:
        return {"profile_id": profile_id, "found": False, "member": False, "conditions": [], "tree": None}
    row = rows[0]
    conditions = [
        _condition(path, leaf, bool(row[2 * i]), row[2 * i + 1])
        for i, (path, leaf) in enumerate(leaves(node))
    ]
    results = {c["path"]: c for c in conditions}
    tree = _fold(node, "$", results)
    return {
        "profile_id": profile_id,
        "found": True,
        "member": tree["result"],
        "conditions": conditions,
        "tree": tree,
    }


def _condition(path: str, leaf: Leaf, result: bool, observed: str) -> dict[str, Any]:
    out: dict[str, Any] = {"path": path, "condition": render(leaf), "result": result}
    if isinstance(leaf, Trait):
        out["observed"] = {"value": _json(observed), "set": bool(observed)}
    elif isinstance(leaf, Event):
        out["observed"] = {"count": int(observed or 0)}
    elif isinstance(leaf, Computed):
        out["observed"] = {leaf.name: observed}
    return out


def _fold(node: Node, path: str, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if isinstance(node, And | Or):
        kind = "and" if isinstance(node, And) else "or"
        items = [_fold(item, f"{path}.{kind}[{i}]", results) for i, item in enumerate(node.items)]
        flags = [item["result"] for item in items]
        return {
            "path": path,
            "op": kind,
            "result": all(flags) if kind == "and" else any(flags),
            "items": items,
        }
    if isinstance(node, Not):
        inner = _fold(node.item, f"{path}.not", results)
        return {"path": path, "op": "not", "result": not inner["result"], "items": [inner]}
    return results[path]


def _json(text: str) -> Any:
    try:
        return orjson.loads(text) if text else None
    except orjson.JSONDecodeError:
        return text
