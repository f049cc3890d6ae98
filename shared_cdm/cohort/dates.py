"""Date arithmetic that renders correctly on SQLite and PostgreSQL.

SQLAlchemy has no portable "days between two dates", and the two backends store
dates differently (ISO text in SQLite, native dates in PostgreSQL), so each
expression is compiled per dialect. Other dialects fail at compile time rather
than run SQL that means something else.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement


class DaysBetween(FunctionElement[int]):
    """Whole days from `a` to `b` (negative when `b` is before `a`); NULL if either is."""

    type = sa.Integer()
    name = "days_between"
    inherit_cache = True


class AgeInYears(FunctionElement[int]):
    """Completed years of life at date `at` for someone born on `birth`."""

    type = sa.Integer()
    name = "age_in_years"
    inherit_cache = True


def days_between(a: ColumnElement[Any], b: ColumnElement[Any]) -> DaysBetween:
    return DaysBetween(a, b)


def age_in_years(birth: ColumnElement[Any], at: ColumnElement[Any]) -> AgeInYears:
    return AgeInYears(birth, at)


def _args(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> list[str]:
    return [compiler.process(arg, **kw) for arg in element.clauses]


@compiles(DaysBetween, "sqlite")
def _days_between_sqlite(element: DaysBetween, compiler: SQLCompiler, **kw: Any) -> str:
    a, b = _args(element, compiler, **kw)
    # date() drops any time part so datetimes count calendar days, as on PostgreSQL.
    return f"CAST(julianday(date({b})) - julianday(date({a})) AS INTEGER)"


@compiles(DaysBetween, "postgresql")
def _days_between_pg(element: DaysBetween, compiler: SQLCompiler, **kw: Any) -> str:
    a, b = _args(element, compiler, **kw)
    return f"(CAST({b} AS DATE) - CAST({a} AS DATE))"


@compiles(AgeInYears, "sqlite")
def _age_sqlite(element: AgeInYears, compiler: SQLCompiler, **kw: Any) -> str:
    birth, at = _args(element, compiler, **kw)
    # Year difference, minus one if the birthday has not come yet that year.
    return (
        f"(CAST(strftime('%Y', {at}) AS INTEGER) - CAST(strftime('%Y', {birth}) AS INTEGER)"
        f" - (strftime('%m-%d', {at}) < strftime('%m-%d', {birth})))"
    )


@compiles(AgeInYears, "postgresql")
def _age_pg(element: AgeInYears, compiler: SQLCompiler, **kw: Any) -> str:
    birth, at = _args(element, compiler, **kw)
    return f"CAST(date_part('year', age(CAST({at} AS DATE), CAST({birth} AS DATE))) AS INTEGER)"


@compiles(DaysBetween)
@compiles(AgeInYears)
def _unsupported(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> str:
    # str(statement) uses the "default" dialect: render something readable for debugging.
    if compiler.dialect.name == "default":
        return f"{element.name}({', '.join(_args(element, compiler, **kw))})"
    raise sa.exc.CompileError(f"{element.name} is not implemented for {compiler.dialect.name}")
