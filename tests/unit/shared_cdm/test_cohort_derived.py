"""Derived fields compile to SQL and select the same rows on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from shared_cdm.cohort import FlatSchema, cohort_select, parse_tree
from shared_cdm.cohort.derived import compile_derived
from shared_cdm.errors import InvalidInput

ROWS = [
    {"id": 1, "age": 45, "weight": 70.0, "height": 175, "smoking": "never"},
    {"id": 2, "age": 50, "weight": 90.0, "height": 170, "smoking": "current"},
    {"id": 3, "age": 64, "weight": 55.0, "height": 160, "smoking": "former"},
    {"id": 4, "age": 65, "weight": 80.0, "height": 180, "smoking": None},
    {"id": 5, "age": None, "weight": 60.0, "height": 0, "smoking": "never"},
    {"id": 6, "age": 81, "weight": 72.5, "height": 165, "smoking": "current"},
]
SPEC = {
    "age_group": {"cut": "age", "breaks": [50, 65, 80]},
    "bmi": {"expr": "weight / (height / 100) ** 2"},
    "ever_smoker": {"map": "smoking", "values": {"current": "yes", "former": "yes", "never": "no"}},
    "old_smoker": {"expr": "age * 1"},
}


@pytest.fixture
def table_engine(db_url: str):
    engine = sa.create_engine(db_url)
    meta = sa.MetaData()
    table = sa.Table(
        "patients",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("age", sa.Integer),
        sa.Column("weight", sa.Float),
        sa.Column("height", sa.Integer),
        sa.Column("smoking", sa.String(20)),
    )
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), ROWS)
    yield table, engine
    engine.dispose()


def _schema(table: sa.Table) -> FlatSchema:
    base = FlatSchema(table)
    return FlatSchema(table, derived_fields=compile_derived(SPEC, base.field))


def test_derived_values_on_both_backends(table_engine) -> None:
    table, engine = table_engine
    schema = _schema(table)
    query = cohort_select(None, schema, ["id", "age_group", "bmi", "ever_smoker"])
    with engine.connect() as conn:
        got = {r.id: r for r in conn.execute(query.order_by(table.c.id))}
    assert [got[i].age_group for i in range(1, 7)] == [
        "<50",
        "50-<65",
        "50-<65",
        "65-<80",
        None,
        ">=80",
    ]
    assert got[2].bmi == pytest.approx(90 / 1.7**2)
    assert got[5].bmi is None  # division by zero height is NULL, not an error
    assert [got[i].ever_smoker for i in range(1, 7)] == ["no", "yes", "yes", None, "no", "yes"]


def test_derived_field_as_cohort_condition(table_engine) -> None:
    table, engine = table_engine
    where = parse_tree(
        {
            "all": [
                {"field": "age_group", "op": "in", "value": ["50-<65", "65-<80"]},
                {"field": "bmi", "op": "<", "value": 30},
            ]
        }
    )
    with engine.connect() as conn:
        ids = sorted(r.id for r in conn.execute(cohort_select(where, _schema(table))))
    assert ids == [3, 4]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"x": {"cut": "age", "breaks": [65, 50]}}, "derived.x.breaks"),
        ({"x": {"cut": "age", "breaks": [50], "labels": ["a"]}}, "needs 2 labels"),
        ({"x": {"expr": "__import__('os').system('id')"}}, "only numbers"),
        ({"x": {"expr": "age ** 0.5"}}, "whole exponent"),
        ({"x": {"expr": "age +"}}, "not a valid expression"),
        ({"x": {"expr": "nosuch * 2"}}, "nosuch"),
        ({"x": {"cut": "age", "expr": "age"}}, "exactly one"),
        ({"x": {"map": "smoking", "values": {}}}, "non-empty"),
    ],
)
def test_bad_derived_fields_are_rejected_with_their_path(
    spec: dict, message: str, table_engine
) -> None:
    table, _ = table_engine
    with pytest.raises(InvalidInput, match=message):
        compile_derived(spec, FlatSchema(table).field)


def test_a_field_may_use_one_named_after_it_whatever_the_key_order(table_engine) -> None:
    # Specs cross the wire as JSON with sorted keys: "a_*" comes before "z_*" then.
    table, engine = table_engine
    spec = {
        "a_bmi_band": {"cut": "z_bmi", "breaks": [25]},
        "z_bmi": {"expr": "weight / (height / 100) ** 2"},
        "age": {"expr": "age + 1"},  # naming itself: the base column
    }
    base = FlatSchema(table)
    derived = compile_derived(spec, base.field)
    assert list(derived) == ["a_bmi_band", "z_bmi", "age"]
    schema = FlatSchema(table, derived_fields=derived)
    query = cohort_select(None, schema, ["id", "a_bmi_band", "age"])
    with engine.connect() as conn:
        got = {r.id: r for r in conn.execute(query.order_by(table.c.id))}
    assert [got[i].a_bmi_band for i in (1, 2, 3, 5)] == ["<25", ">=25", "<25", None]
    assert got[1].age == 46


def test_derived_fields_using_each_other_are_refused(table_engine) -> None:
    table, _ = table_engine
    spec = {"p": {"expr": "q + 1"}, "q": {"expr": "p + 1"}}
    with pytest.raises(InvalidInput, match="p"):
        compile_derived(spec, FlatSchema(table).field)
