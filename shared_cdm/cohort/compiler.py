"""Compile a cohort tree to a SQLAlchemy Core boolean over the subject table.

Every value becomes a bound parameter and every field is looked up through the
schema, so nothing from the tree is ever spliced into SQL text. SQL's three-valued
logic is kept: a comparison on a NULL field is unknown, unknown never selects a row,
and NOT unknown is still unknown (so `!=`, `not_in` and `negate` skip NULL fields).
`at_least` counts only children that are true. Events compile to correlated
EXISTS / COUNT subqueries, which are never NULL.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import ScalarSelect

from shared_cdm.cohort.dates import days_between
from shared_cdm.cohort.schema import CdmSchema, EventSource, Schema
from shared_cdm.cohort.tree import (
    LIST_OPS,
    TEXT_OPS,
    Comparator,
    Event,
    Group,
    GroupOp,
    Node,
    Value,
)
from shared_cdm.errors import InvalidInput

Resolve = Callable[[str, str], ColumnElement[Any]]

_CHILD_KEYS = {GroupOp.ALL: "all", GroupOp.ANY: "any", GroupOp.AT_LEAST: "of"}
_ORDERING = {
    Comparator.EQ: operator.eq,
    Comparator.NE: operator.ne,
    Comparator.LT: operator.lt,
    Comparator.LE: operator.le,
    Comparator.GT: operator.gt,
    Comparator.GE: operator.ge,
}


def compile_where(node: Node, schema: Schema, *, path: str = "where") -> ColumnElement[bool]:
    """The tree as a boolean for `select(...).where(...)` on `schema.subject_table`.

    Raises InvalidInput naming the node's JSON path for an unknown field or event, a
    value that does not suit its field's type, or a window without an index date.
    """
    return _compile(node, schema.field, schema, path)


def cohort_select(
    node: Node | None,
    schema: Schema,
    columns: Sequence[str | ColumnElement[Any]] | None = None,
) -> sa.Select[Any]:
    """SELECT the matching subjects: their id by default, or the named fields/columns."""
    if columns is None:
        selected: list[ColumnElement[Any]] = [schema.subject_id]
    else:
        selected = [
            schema.field(column, f"columns[{i}]").label(column)
            if isinstance(column, str)
            else column
            for i, column in enumerate(columns)
        ]
    statement = sa.select(*selected).select_from(schema.subject_table)
    return statement if node is None else statement.where(compile_where(node, schema))


def index_first_event(schema: CdmSchema, event: Node, *, path: str = "index") -> ScalarSelect[Any]:
    """Per person, the date of the first event matching `event`; NULL if there is none.

    Pass it to `schema.with_index_date(...)` so windows and `age` are relative to it.
    """
    if not isinstance(event, Event):
        raise InvalidInput(f"{path}: the index must be an event, e.g. a diagnosis")
    if event.window is not None or event.negate or event.min_count != 1:
        raise InvalidInput(f"{path}: an index event takes no 'window', 'negate' or 'min_count'")
    source = schema.event_source(event.event, path)
    return (
        sa.select(sa.func.min(source.date))
        .select_from(source.table)
        .where(*_event_criteria(event, schema, source, path))
        .correlate(schema.subject_table)
        .scalar_subquery()
    )


def _compile(node: Node, resolve: Resolve, schema: Schema | None, path: str) -> ColumnElement[bool]:
    expression: ColumnElement[bool]
    if isinstance(node, Group):
        expression = _group(node, resolve, schema, path)
    elif isinstance(node, Event):
        if schema is None:  # parse_tree already refuses this; models built by hand may not
            raise InvalidInput(f"{path}: an event's 'where' cannot hold another event")
        expression = _event(node, schema, path)
    else:
        expression = _compare(node.field, node.op, node.value, resolve(node.field, path), path)
    return sa.not_(expression) if node.negate else expression


def _group(group: Group, resolve: Resolve, schema: Schema | None, path: str) -> ColumnElement[bool]:
    key = _CHILD_KEYS[group.op]
    children = [
        _compile(child, resolve, schema, f"{path}.{key}[{i}]")
        for i, child in enumerate(group.children)
    ]
    if group.op is GroupOp.ALL:
        return sa.and_(*children)
    if group.op is GroupOp.ANY:
        return sa.or_(*children)
    # CASE turns unknown into 0, so the count (and its negation) is never NULL.
    counted = [sa.case((child, 1), else_=0) for child in children]
    return functools.reduce(operator.add, counted) >= (group.n or 1)


def _event(event: Event, schema: Schema, path: str) -> ColumnElement[bool]:
    source = schema.event_source(event.event, path)
    matching = (
        sa.select(sa.literal(1) if event.min_count == 1 else sa.func.count())
        .select_from(source.table)
        .where(*_event_criteria(event, schema, source, path))
        .correlate(schema.subject_table)
    )
    if event.min_count == 1:
        return matching.exists()
    return matching.scalar_subquery() >= event.min_count


def _event_criteria(
    event: Event, schema: Schema, source: EventSource, path: str
) -> list[ColumnElement[bool]]:
    criteria: list[ColumnElement[bool]] = [source.subject_key == schema.subject_id]
    if event.field is not None and event.op is not None:
        column = source.field(event.field, path)
        criteria.append(_compare(event.field, event.op, event.value, column, path))
    if event.where is not None:
        criteria.append(_compile(event.where, source.field, None, f"{path}.where"))
    if event.window is not None:
        if schema.index_date is None:
            raise InvalidInput(f"{path}: a 'window' needs an index date, and none was given")
        days = days_between(schema.index_date, source.date)
        if event.window.from_days is not None:
            criteria.append(days >= event.window.from_days)
        if event.window.to_days is not None:
            criteria.append(days <= event.window.to_days)
    if event.min_confidence is not None and "confidence" in source.table.c:
        # Structured sources leave confidence NULL: they count as certain.
        confidence = sa.func.coalesce(source.table.c["confidence"], 1.0)
        criteria.append(confidence >= event.min_confidence)
    return criteria


def _compare(
    field: str, op: Comparator, value: Value, column: ColumnElement[Any], path: str
) -> ColumnElement[bool]:
    """One comparison, with the value checked against the column's type and bound."""
    if op is Comparator.IS_NULL:
        return column.is_(None)
    if op is Comparator.NOT_NULL:
        return column.is_not(None)
    if op in TEXT_OPS:
        # Case-insensitive on both backends (ILIKE / lower() LIKE lower()); see the docs.
        if not isinstance(column.type, sa.String | sa.types.NullType):
            raise InvalidInput(f"{path}: '{op}' needs a text field; {field!r} is not text")
        text = str(value)
        if op is Comparator.LIKE:
            # Backslash escapes on PostgreSQL by default; say so for SQLite to match.
            return column.ilike(text, escape="\\")
        if op is Comparator.STARTS_WITH:
            return column.istartswith(text, autoescape=True)
        return column.icontains(text, autoescape=True)
    if op in LIST_OPS or op is Comparator.BETWEEN:
        items = value if isinstance(value, tuple) else (value,)
        bound = [_coerce(item, column, field, path) for item in items]
        if op is Comparator.IN:
            return column.in_(bound)
        if op is Comparator.NOT_IN:
            return column.not_in(bound)
        if len(bound) != 2:
            raise InvalidInput(f"{path}: 'between' needs [low, high]")
        return column.between(*bound)
    comparison: ColumnElement[bool] = _ORDERING[op](column, _coerce(value, column, field, path))
    return comparison


def _coerce(value: Any, column: ColumnElement[Any], field: str, path: str) -> Any:
    """The value as the column's Python type, or InvalidInput if it cannot be one."""
    column_type = column.type
    if isinstance(column_type, sa.Boolean):
        if isinstance(value, bool):
            return value
        expected = "true or false"
    elif isinstance(column_type, sa.Integer | sa.Numeric | sa.Float):  # Float is no Numeric in 2.1
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        expected = "a number"
    elif isinstance(column_type, sa.Date | sa.DateTime):
        parsed = _iso_date(value, with_time=isinstance(column_type, sa.DateTime))
        if parsed is not None:
            return parsed
        expected = "an ISO date like '2020-01-31'"
    elif isinstance(column_type, sa.String):
        if isinstance(value, str):
            return value
        expected = "a string"
    else:
        return value  # untyped column (e.g. reflected from a CSV): let the database compare
    raise InvalidInput(f"{path}: field {field!r} needs {expected}, not {value!r}")


def _iso_date(value: object, *, with_time: bool) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value) if with_time else date.fromisoformat(value)
    except ValueError:
        return None
