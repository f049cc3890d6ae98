"""Derived fields (F11): new columns computed from existing ones, in SQL.

    {"age_group": {"cut": "age", "breaks": [50, 65, 80],
                   "labels": ["<50", "50-64", "65-79", "80+"]},
     "bmi": {"expr": "weight / (height / 100) ** 2"},
     "ever_smoker": {"map": "smoking",
                     "values": {"current": "yes", "former": "yes", "never": "no"}}}

A derived field compiles to a SQL expression, so it can be a covariate, a
group or a cohort condition, and the rows never leave the database to be
computed. Expressions allow numbers, field names, + - * /, unary minus and
`**` with a small whole exponent; nothing else is evaluated.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from shared_cdm.errors import InvalidInput

Resolve = Callable[[str, str], ColumnElement[Any]]
MAX_EXPONENT = 4
MAX_EXPR_CHARS = 500


def compile_derived(
    spec: Mapping[str, Any], resolve: Resolve, *, path: str = "derived"
) -> dict[str, ColumnElement[Any]]:
    """SQL expressions for each derived field, in the spec's order. A field may use
    any other derived field, whatever their order: specs travel as JSON objects whose
    keys may be re-sorted on the way. A field naming itself means the base column."""
    if not isinstance(spec, Mapping):
        raise InvalidInput(f"{path}: must be an object of name -> definition")
    out: dict[str, ColumnElement[Any]] = {}
    building: set[str] = set()

    def lookup(name: str, where: str) -> ColumnElement[Any]:
        if name in out:
            return out[name]
        if name in spec and name not in building:
            return build(name)
        return resolve(name, where)

    def build(name: str) -> ColumnElement[Any]:
        definition = spec[name]
        here = f"{path}.{name}"
        if not isinstance(name, str) or not name or len(name) > 64:
            raise InvalidInput(f"{path}: a derived field needs a name of 1-64 characters")
        if not isinstance(definition, Mapping):
            raise InvalidInput(f"{here}: must be an object with 'cut', 'expr' or 'map'")
        kinds = [k for k in ("cut", "expr", "map") if k in definition]
        if len(kinds) != 1:
            raise InvalidInput(f"{here}: give exactly one of 'cut', 'expr' or 'map'")
        builder = {"cut": _cut, "expr": _expr, "map": _map}[kinds[0]]
        building.add(name)
        try:
            out[name] = builder(definition, lookup, here).label(name)
        finally:
            building.discard(name)
        return out[name]

    for name in spec:
        if name not in out:
            build(name)
    return {name: out[name] for name in spec}


def _cut(d: Mapping[str, Any], lookup: Resolve, path: str) -> ColumnElement[Any]:
    column = lookup(str(d["cut"]), f"{path}.cut")
    breaks = d.get("breaks")
    if (
        not isinstance(breaks, list)
        or not breaks
        or not all(isinstance(b, int | float) and not isinstance(b, bool) for b in breaks)
        or sorted(breaks) != breaks
        or len(set(breaks)) != len(breaks)
    ):
        raise InvalidInput(f"{path}.breaks: must be a non-empty increasing list of numbers")
    labels = d.get("labels") or _default_labels(breaks)
    if not isinstance(labels, list) or len(labels) != len(breaks) + 1:
        raise InvalidInput(
            f"{path}.labels: needs {len(breaks) + 1} labels for {len(breaks)} breaks"
        )
    whens: list[tuple[ColumnElement[bool], Any]] = [(column.is_(None), sa.null())]
    whens += [
        (column < sa.literal(b), sa.literal(str(lab)))
        for b, lab in zip(breaks, labels, strict=False)
    ]
    return sa.case(*whens, else_=sa.literal(str(labels[-1])))


def _default_labels(breaks: list[float]) -> list[str]:
    def fmt(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else str(x)

    labels = [f"<{fmt(breaks[0])}"]
    labels += [f"{fmt(a)}-<{fmt(b)}" for a, b in itertools.pairwise(breaks)]
    return [*labels, f">={fmt(breaks[-1])}"]


def _map(d: Mapping[str, Any], lookup: Resolve, path: str) -> ColumnElement[Any]:
    column = lookup(str(d["map"]), f"{path}.map")
    values = d.get("values")
    if not isinstance(values, Mapping) or not values:
        raise InvalidInput(f"{path}.values: must be a non-empty object of value -> new value")
    whens = [(column == sa.literal(k), sa.literal(v)) for k, v in values.items()]
    default = d.get("default")
    return sa.case(*whens, else_=sa.literal(default) if default is not None else sa.null())


def _expr(d: Mapping[str, Any], lookup: Resolve, path: str) -> ColumnElement[Any]:
    text = d["expr"]
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_EXPR_CHARS:
        raise InvalidInput(f"{path}.expr: must be a non-empty expression of at most 500 characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise InvalidInput(f"{path}.expr: not a valid expression ({exc.msg})") from None
    return _node(tree.body, lookup, f"{path}.expr")


_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    # 1.0 * forces real division on databases that divide integers as integers
    ast.Div: lambda a, b: (sa.literal(1.0) * a) / sa.func.nullif(b, 0),
}


def _node(node: ast.AST, lookup: Resolve, path: str) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        if isinstance(node.value, bool):
            raise InvalidInput(f"{path}: booleans are not numbers here")
        return sa.literal(node.value)
    if isinstance(node, ast.Name):
        return lookup(node.id, path)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_node(node.operand, lookup, path)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        exp = node.right
        if not (
            isinstance(exp, ast.Constant)
            and isinstance(exp.value, int)
            and 1 <= exp.value <= MAX_EXPONENT
        ):
            raise InvalidInput(f"{path}: '**' needs a whole exponent from 1 to {MAX_EXPONENT}")
        base = _node(node.left, lookup, path)
        result = base
        for _ in range(exp.value - 1):
            result = result * base
        return result
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](
            _node(node.left, lookup, path), _node(node.right, lookup, path)
        )
    raise InvalidInput(
        f"{path}: only numbers, field names, + - * / and ** are allowed "
        f"(found {type(node).__name__})"
    )
