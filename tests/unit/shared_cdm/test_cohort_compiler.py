"""The cohort compiler, run on SQLite and PostgreSQL against known rows."""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Iterator
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shared_cdm.cohort import (
    CdmSchema,
    Comparator,
    Condition,
    FlatSchema,
    Group,
    GroupOp,
    Node,
    cohort_select,
    compile_where,
    days_between,
    dump_tree,
    index_first_event,
    parse_tree,
)
from shared_cdm.cohort.dates import age_in_years
from shared_cdm.errors import InvalidInput

DOCS = Path(__file__).resolve().parents[3] / "docs" / "cohort-query.md"


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = sa.create_engine(db_url)
    yield eng
    eng.dispose()


def _ids(engine: sa.Engine, statement: sa.Select[Any]) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(statement).scalars())


# --- a flat table, one row per patient ------------------------------------------------

FLAT = sa.MetaData()
PATIENTS = sa.Table(
    "patients",
    FLAT,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("age", sa.Integer),
    sa.Column("bmi", sa.Float),
    sa.Column("stage", sa.String(60)),
    sa.Column("dx_date", sa.Date),
    sa.Column("smoker", sa.Boolean),
    sa.Column("ph.ecog", sa.Integer),
    sa.Column("meal cal", sa.Float),
)
PATIENT_ROWS = [
    (1, 45, 22.5, "IA", date(2019, 3, 1), False, 0, 1200.0),
    (2, 60, 27.0, "IIIB", date(2020, 1, 15), True, 1, 900.5),
    (3, 72, None, "IV", date(2020, 6, 30), True, 2, None),
    (4, None, 31.2, "iv", date(2021, 1, 1), None, None, 1500.0),
    (5, 60, 19.9, None, None, False, 1, 800.0),
    (6, 38, 24.0, "50%_off", date(2018, 12, 31), True, 3, 1100.0),
    (7, 81, 22.5, "x'); DROP TABLE patients; --", date(2020, 1, 15), False, 0, 950.0),
]


@pytest.fixture
def flat(engine: sa.Engine) -> sa.Engine:
    FLAT.create_all(engine)
    names = [c.key for c in PATIENTS.c]
    with engine.begin() as conn:
        conn.execute(
            PATIENTS.insert(), [dict(zip(names, row, strict=True)) for row in PATIENT_ROWS]
        )
    return engine


def _flat_ids(engine: sa.Engine, tree: object) -> set[int]:
    return _ids(engine, cohort_select(parse_tree(tree), FlatSchema(PATIENTS)))


COMPARATOR_CASES: list[tuple[dict[str, Any], set[int]]] = [
    ({"field": "age", "op": "=", "value": 60}, {2, 5}),
    ({"field": "age", "op": "!=", "value": 60}, {1, 3, 6, 7}),  # NULL age (4) not selected
    ({"field": "age", "op": "<", "value": 60}, {1, 6}),
    ({"field": "age", "op": "<=", "value": 60}, {1, 2, 5, 6}),
    ({"field": "age", "op": ">", "value": 60}, {3, 7}),
    ({"field": "age", "op": ">=", "value": 60}, {2, 3, 5, 7}),
    ({"field": "bmi", "op": ">=", "value": 24}, {2, 4, 6}),
    ({"field": "bmi", "op": "=", "value": 22.5}, {1, 7}),
    ({"field": "age", "op": "in", "value": [45, 72, 99]}, {1, 3}),
    ({"field": "age", "op": "not_in", "value": [45, 72]}, {2, 5, 6, 7}),
    ({"field": "age", "op": "between", "value": [45, 72]}, {1, 2, 3, 5}),
    ({"field": "bmi", "op": "between", "value": [20, 25.5]}, {1, 6, 7}),
    ({"field": "bmi", "op": "is_null"}, {3}),
    ({"field": "bmi", "op": "not_null"}, {1, 2, 4, 5, 6, 7}),
    ({"field": "stage", "op": "=", "value": "IV"}, {3}),  # exact, case-sensitive
    ({"field": "stage", "op": "!=", "value": "IV"}, {1, 2, 4, 6, 7}),
    ({"field": "stage", "op": "like", "value": "i%"}, {1, 2, 3, 4}),  # case-insensitive
    ({"field": "stage", "op": "like", "value": "I_"}, {1, 3, 4}),
    ({"field": "stage", "op": "like", "value": "50\\%%"}, {6}),  # backslash escapes
    ({"field": "stage", "op": "like", "value": "%\\_%"}, {6}),
    ({"field": "stage", "op": "starts_with", "value": "iii"}, {2}),
    ({"field": "stage", "op": "starts_with", "value": "50%_"}, {6}),  # % and _ literal
    ({"field": "stage", "op": "starts_with", "value": "5_"}, set()),
    ({"field": "stage", "op": "contains", "value": "V"}, {3, 4}),
    ({"field": "stage", "op": "contains", "value": "%"}, {6}),
    ({"field": "stage", "op": "not_in", "value": ["IV", "iv"]}, {1, 2, 6, 7}),
    ({"field": "dx_date", "op": "<", "value": "2020-01-15"}, {1, 6}),
    ({"field": "dx_date", "op": "=", "value": "2020-01-15"}, {2, 7}),
    ({"field": "dx_date", "op": "between", "value": ["2020-01-15", "2020-12-31"]}, {2, 3, 7}),
    ({"field": "dx_date", "op": "is_null"}, {5}),
    ({"field": "smoker", "op": "=", "value": True}, {2, 3, 6}),
    ({"field": "smoker", "op": "=", "value": False}, {1, 5, 7}),
    ({"field": "smoker", "op": "!=", "value": True}, {1, 5, 7}),
    ({"field": "ph.ecog", "op": ">=", "value": 2}, {3, 6}),
    ({"field": "meal cal", "op": "<", "value": 1000}, {2, 5, 7}),
]


@pytest.mark.parametrize(
    ("tree", "expected"),
    [pytest.param(tree, ids, id=f"{tree['field']} {tree['op']}") for tree, ids in COMPARATOR_CASES],
)
def test_each_comparator_selects_exactly(flat: sa.Engine, tree: Any, expected: set[int]) -> None:
    assert _flat_ids(flat, tree) == expected


def test_nested_groups_and_negation(flat: sa.Engine) -> None:
    old = {"field": "age", "op": ">=", "value": 60}
    late = {"field": "stage", "op": "like", "value": "iv%"}
    tree = {
        "any": [
            {"all": [old, {"any": [late, {"field": "smoker", "op": "=", "value": True}]}]},
            {
                "all": [
                    {"field": "age", "op": "<", "value": 40},
                    {"any": [{"field": "bmi", "op": "<", "value": 25}]},
                ]
            },
        ]
    }
    assert _flat_ids(flat, tree) == {2, 3, 6}
    # Rows 4 and 5 are unknown (NULL age; NULL stage with age >= 60): NOT keeps them out.
    assert _flat_ids(flat, {**tree, "negate": True}) == {1, 7}
    deep = {"all": [{"any": [{"all": [{"any": [old]}]}]}, {"all": [late], "negate": True}]}
    assert _flat_ids(flat, deep) == {2, 7}  # 3 is late; 5 has no stage, so NOT late is unknown


def test_at_least_counts_true_children_and_negates_cleanly(flat: sa.Engine) -> None:
    tree = {
        "at_least": 2,
        "of": [
            {"field": "age", "op": ">=", "value": 60},
            {"field": "smoker", "op": "=", "value": True},
            {"field": "bmi", "op": ">", "value": 25},
        ],
    }
    assert _flat_ids(flat, tree) == {2, 3}
    assert _flat_ids(flat, {**tree, "at_least": 1}) == {2, 3, 4, 5, 6, 7}
    assert _flat_ids(flat, {**tree, "at_least": 3}) == {2}
    # CASE makes unknown count as 0, so the negation is the exact complement.
    assert _flat_ids(flat, {**tree, "negate": True}) == {1, 4, 5, 6, 7}
    sql = str(compile_where(parse_tree(tree), FlatSchema(PATIENTS)))
    assert "CASE WHEN" in sql and ">=" in sql


def test_null_semantics_of_negated_leaves(flat: sa.Engine) -> None:
    assert _flat_ids(flat, {"field": "age", "op": "=", "value": 60, "negate": True}) == {1, 3, 6, 7}
    assert _flat_ids(flat, {"field": "bmi", "op": "is_null", "negate": True}) == {1, 2, 4, 5, 6, 7}


def test_hostile_value_is_bound_not_spliced(flat: sa.Engine) -> None:
    hostile = "x'); DROP TABLE patients; --"
    for op, value in [
        ("=", hostile),
        ("in", [hostile]),
        ("contains", "DROP TABLE"),
        ("like", hostile),
    ]:
        statement = cohort_select(
            parse_tree({"field": "stage", "op": op, "value": value}), FlatSchema(PATIENTS)
        )
        for dialect in (sa.dialects.sqlite.dialect(), sa.dialects.postgresql.dialect()):  # type: ignore[attr-defined]
            assert "DROP" not in str(statement.compile(dialect=dialect))
        assert _ids(flat, statement) == {7}
    assert sa.inspect(flat).has_table("patients")
    assert _flat_ids(flat, {"field": "age", "op": "not_null"}) == {1, 2, 3, 5, 6, 7}


def test_field_that_is_not_a_column_is_rejected_with_its_path() -> None:
    schema = FlatSchema(PATIENTS)
    tree = parse_tree(
        {
            "all": [
                {"field": "age", "op": ">", "value": 1},
                {"field": 'age"; DROP TABLE x; --', "op": "is_null"},
            ]
        }
    )
    with pytest.raises(InvalidInput, match=r"^where\.all\[1\]: unknown field 'age\"; DROP"):
        compile_where(tree, schema)


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        (
            {"field": "age", "op": ">=", "value": "sixty"},
            "where: field 'age' needs a number, not 'sixty'",
        ),
        ({"field": "stage", "op": "=", "value": 4}, "where: field 'stage' needs a string, not 4"),
        ({"field": "bmi", "op": "in", "value": [20, "fat"]}, "where: field 'bmi' needs a number"),
        ({"field": "smoker", "op": "=", "value": 1}, "where: field 'smoker' needs true or false"),
        (
            {"any": [{"field": "dx_date", "op": ">", "value": "31/01/2020"}]},
            "where.any[0]: field 'dx_date' needs an ISO date",
        ),
        (
            {"field": "age", "op": "contains", "value": "6"},
            "where: 'contains' needs a text field; 'age' is not text",
        ),
        ({"event": "diagnosis"}, "where: event 'diagnosis': this table has fields only"),
    ],
)
def test_values_must_suit_the_column_type(tree: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        compile_where(parse_tree(tree), FlatSchema(PATIENTS))
    assert str(caught.value).startswith(message), str(caught.value)


def test_cohort_select_columns_and_id_column(flat: sa.Engine) -> None:
    schema = FlatSchema(PATIENTS, derived_fields={"old": PATIENTS.c.age >= 70})
    statement = cohort_select(
        parse_tree({"field": "old", "op": "=", "value": True}), schema, ["id", "ph.ecog"]
    )
    with flat.connect() as conn:
        assert sorted(conn.execute(statement).all()) == [(3, 2), (7, 0)]
    assert _ids(flat, cohort_select(None, schema)) == {row[0] for row in PATIENT_ROWS}


# --- an OMOP database: person plus fact tables ---------------------------------------


def omop_metadata(*, without: frozenset[str] = frozenset()) -> sa.MetaData:
    md = sa.MetaData()
    Int, Txt, Day = sa.Integer, sa.String(50), sa.Date

    def table(name: str, *columns: sa.Column[Any]) -> None:
        if name not in without:
            sa.Table(name, md, *columns)

    table(
        "person",
        sa.Column("person_id", Int, primary_key=True),
        sa.Column("gender_concept_id", Int),
        sa.Column("year_of_birth", Int),
        sa.Column("birth_datetime", sa.DateTime),
        sa.Column("gender_source_value", Txt),
    )
    for name, prefix, date_column in [
        ("condition_occurrence", "condition", "condition_start_date"),
        ("procedure_occurrence", "procedure", "procedure_date"),
        ("drug_exposure", "drug", "drug_exposure_start_date"),
    ]:
        table(
            name,
            sa.Column(f"{name}_id", Int, primary_key=True),
            sa.Column("person_id", Int),
            sa.Column(f"{prefix}_concept_id", Int),
            sa.Column(date_column, Day),
            sa.Column(f"{prefix}_source_value", Txt),
            sa.Column("confidence", sa.Float),
        )
    table(
        "measurement",
        sa.Column("measurement_id", Int, primary_key=True),
        sa.Column("person_id", Int),
        sa.Column("measurement_concept_id", Int),
        sa.Column("measurement_date", Day),
        sa.Column("measurement_source_value", Txt),
        sa.Column("value_as_number", sa.Float),
        sa.Column("unit_source_value", Txt),
        sa.Column("confidence", sa.Float),
    )
    table(
        "death",
        sa.Column("person_id", Int, primary_key=True),
        sa.Column("death_date", Day),
        sa.Column("cause_source_value", Txt),
    )
    table(
        "visit_occurrence",
        sa.Column("visit_occurrence_id", Int, primary_key=True),
        sa.Column("person_id", Int),
        sa.Column("visit_concept_id", Int),
        sa.Column("visit_start_date", Day),
        sa.Column("visit_end_date", Day),
    )
    table(
        "lung_cancer_dataset",
        sa.Column("person_id", Int, primary_key=True),
        sa.Column("diagnosis_date", Day),
        sa.Column("histology", Txt),
        sa.Column("clinical_stage_group", Txt),
        sa.Column("egfr_status", Txt),
    )
    return md


D = date.fromisoformat
OMOP_ROWS: dict[str, list[tuple[Any, ...]]] = {
    # person_id, gender_concept_id, year_of_birth, birth_datetime, gender_source_value
    "person": [
        (1, 8507, 1955, datetime(1955, 6, 15), "M"),
        (2, 8532, 1960, datetime(1960, 5, 2), "F"),
        (3, 0, 1970, datetime(1970, 1, 1), "F"),
        (4, 8507, 1961, datetime(1961, 3, 1), "M"),
        (5, 8532, 1940, None, "F"),
        (6, 8507, 1950, None, None),
    ],
    # The first C34 diagnosis is the index: 1: 2020-01-10, 2: 2019-05-01, 4: 2021-03-01,
    # 6: 2018-01-01; persons 3 and 5 have none.
    "condition_occurrence": [
        (1, 1, 0, D("2020-01-10"), "C34.1", None),
        (2, 2, 0, D("2019-05-01"), "C34.9", 0.6),
        (3, 3, 0, D("2020-02-01"), "C50.9", None),
        (4, 4, 0, D("2021-03-01"), "C34.0", None),
        (5, 4, 0, D("2021-06-01"), "C34.0", 0.95),
        (6, 6, 0, D("2018-01-01"), "C34.2", 0.95),
    ],
    "procedure_occurrence": [
        (1, 1, 0, D("2020-02-15"), "32.4", None),  # index + 36
        (2, 2, 0, D("2019-12-01"), "32.5", None),  # index + 214
        (3, 4, 0, D("2021-02-20"), "32.3", None),  # index - 9
        (4, 6, 0, D("2018-02-01"), "33.1", None),  # not a lung resection
        (5, 3, 0, D("2020-03-01"), "32.1", None),  # no index
        (6, 4, 0, D("2021-05-30"), "32.9", None),  # index + 90, the window's edge
        (7, 2, 0, D("2019-06-15"), "32.6", None),  # index + 45
    ],
    "drug_exposure": [
        (1, 2, 0, D("2019-06-10"), "L01XE02", None),
        (2, 1, 0, D("2020-02-01"), "L01XE03", None),
    ],
    "measurement": [
        (1, 1, 0, D("2020-01-20"), "EGFR", 1.0, None, None),
        (2, 2, 0, D("2019-06-01"), "CEA", 7.5, "ng/mL", 0.85),
        (3, 2, 0, D("2019-09-01"), "CEA", 9.1, "ng/mL", 0.97),
        (4, 4, 0, D("2021-04-01"), "CEA", 3.0, "ng/mL", None),
        (5, 6, 0, D("2018-03-01"), "CEA", 12.0, "ng/mL", None),
        (6, 6, 0, D("2018-06-01"), "CEA", 15.0, "ng/mL", None),
        (7, 3, 0, D("2020-03-01"), "cea", 6.0, "ng/mL", None),
    ],
    "death": [(2, D("2020-06-01"), "C34.9"), (6, D("2018-09-01"), None)],
    "visit_occurrence": [
        (1, 1, 9201, D("2020-01-08"), D("2020-01-20")),
        (2, 3, 9202, D("2020-02-01"), None),
    ],
    "lung_cancer_dataset": [
        (1, D("2020-01-10"), "adenocarcinoma", "IIA", "L858R"),
        (2, D("2019-05-01"), "squamous", "IIIB", "negative"),
        (4, D("2021-03-01"), "adenocarcinoma", "IB", "positive"),
        (6, D("2018-01-01"), "small cell", "IVA", None),
    ],
}
C34 = {"event": "diagnosis", "field": "code", "op": "starts_with", "value": "C34"}
SURGERY = {"event": "procedure", "field": "code", "op": "starts_with", "value": "32"}


@pytest.fixture
def omop(engine: sa.Engine) -> tuple[sa.Engine, CdmSchema]:
    md = omop_metadata()
    md.create_all(engine)
    with engine.begin() as conn:
        for name, rows in OMOP_ROWS.items():
            table = md.tables[name]
            keys = [c.key for c in table.c]
            conn.execute(table.insert(), [dict(zip(keys, row, strict=True)) for row in rows])
    schema = CdmSchema(md)
    return engine, schema.with_index_date(index_first_event(schema, parse_tree(C34)))


def _cdm_ids(
    omop: tuple[sa.Engine, CdmSchema], tree: object, schema: CdmSchema | None = None
) -> set[int]:
    engine, indexed = omop
    return _ids(engine, cohort_select(parse_tree(tree), schema or indexed))


EVENT_CASES: list[tuple[str, dict[str, Any], set[int]]] = [
    ("diagnosis", C34, {1, 2, 4, 6}),
    ("negated event", {**C34, "negate": True}, {3, 5}),
    ("min_count", {**C34, "min_count": 2}, {4}),
    ("min_confidence null is 1.0", {**C34, "min_confidence": 0.9}, {1, 4, 6}),
    ("min_confidence low", {**C34, "min_confidence": 0.5}, {1, 2, 4, 6}),
    ("window 0..90 inclusive", {**SURGERY, "window": {"from_days": 0, "to_days": 90}}, {1, 2, 4}),
    ("window 0..44", {**SURGERY, "window": {"from_days": 0, "to_days": 44}}, {1}),
    ("window before index", {**SURGERY, "window": {"to_days": -1}}, {4}),
    ("window from 91", {**SURGERY, "window": {"from_days": 91}}, {2}),
    (
        "count in window",
        {**SURGERY, "window": {"from_days": -30, "to_days": 365}, "min_count": 2},
        {2, 4},
    ),
    (
        "negated window",
        {**SURGERY, "window": {"from_days": 0, "to_days": 44}, "negate": True},
        {2, 3, 4, 5, 6},
    ),
    ("any procedure", {"event": "procedure"}, {1, 2, 3, 4, 6}),
    (
        "event date field",
        {"event": "procedure", "field": "date", "op": "<", "value": "2019-07-01"},
        {2, 6},
    ),
    (
        "where on one row",
        {
            "event": "measurement",
            "where": {
                "all": [
                    {"field": "code", "op": "=", "value": "CEA"},
                    {"field": "value", "op": ">", "value": 5},
                ]
            },
        },
        {2, 6},
    ),
    ("value alone", {"event": "measurement", "field": "value", "op": ">", "value": 5}, {2, 3, 6}),
    (
        "twice",
        {"event": "measurement", "field": "code", "op": "=", "value": "CEA", "min_count": 2},
        {2, 6},
    ),
    (
        "twice and confident",
        {
            "event": "measurement",
            "field": "code",
            "op": "=",
            "value": "CEA",
            "min_count": 2,
            "min_confidence": 0.9,
        },
        {6},
    ),
    ("drug", {"event": "drug", "field": "code", "op": "=", "value": "L01XE02"}, {2}),
    (
        "death as event",
        {"event": "death", "field": "cause", "op": "starts_with", "value": "c34"},
        {2},
    ),
    ("death in a year", {"event": "death", "window": {"from_days": 0, "to_days": 365}}, {6}),
    ("visit column by name", {"event": "visit", "field": "visit_end_date", "op": "not_null"}, {1}),
    (
        "status not_in skips NULL",
        {"event": "lung_cancer", "field": "egfr_status", "op": "not_in", "value": ["negative"]},
        {1, 4},
    ),
    (
        "dataset column",
        {"event": "lung_cancer", "field": "histology", "op": "contains", "value": "adeno"},
        {1, 4},
    ),
    ("age at index", {"field": "age", "op": ">=", "value": 60}, {1, 4, 6}),
    ("birthday not yet", {"field": "age", "op": "=", "value": 58}, {2}),
    ("sex from concept", {"field": "sex", "op": "=", "value": "male"}, {1, 4, 6}),
    ("sex falls back to source", {"field": "sex", "op": "in", "value": ["female", "F"]}, {2, 3, 5}),
    ("death field", {"field": "death", "op": "=", "value": True}, {2, 6}),
    ("no death", {"field": "death", "op": "=", "value": False}, {1, 3, 4, 5}),
    ("person column", {"field": "year_of_birth", "op": "<", "value": 1956}, {1, 5, 6}),
]


@pytest.mark.parametrize(
    ("tree", "expected"), [pytest.param(t, e, id=i) for i, t, e in EVENT_CASES]
)
def test_events_and_person_fields(
    omop: tuple[sa.Engine, CdmSchema], tree: Any, expected: set[int]
) -> None:
    assert _cdm_ids(omop, tree) == expected


def test_age_at_reference_date_without_index(omop: tuple[sa.Engine, CdmSchema]) -> None:
    engine, indexed = omop
    at_may_2020 = CdmSchema(indexed.metadata, reference_date=date(2020, 5, 1))
    assert _cdm_ids(omop, {"field": "age", "op": ">=", "value": 60}, at_may_2020) == {1, 5, 6}
    assert _cdm_ids(omop, {"field": "age", "op": "=", "value": 59}, at_may_2020) == {2, 4}
    statement = cohort_select(None, at_may_2020, ["person_id", "age", "sex"])
    with engine.connect() as conn:
        rows = sorted(tuple(row) for row in conn.execute(statement))
    assert rows == [
        (1, 64, "male"),
        (2, 59, "female"),
        (3, 50, "F"),
        (4, 59, "male"),
        (5, 80, "female"),
        (6, 70, "male"),
    ]


def test_every_docs_example_runs_and_the_lung_cancer_one_selects_exactly(
    omop: tuple[sa.Engine, CdmSchema],
) -> None:
    engine, indexed = omop
    blocks = [
        json.loads(b)
        for b in re.findall(r"```json\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.DOTALL)
    ]
    derived = CdmSchema(
        indexed.metadata, index_date=indexed.index_date, derived_fields={"stage": sa.literal("IIA")}
    )
    for block in blocks:
        _ids(engine, cohort_select(parse_tree(block), derived))
    lung = next(b for b in blocks if "lung_cancer" in json.dumps(b))
    # 1: 64, EGFR mutant, surgery +36; 2: 58 but stage IIIB, surgery +45; 4: exactly 60,
    # mutant, surgery +90; 6: stage IV but no lung resection.
    assert _cdm_ids(omop, lung) == {1, 2, 4}
    cea = next(b for b in blocks if "CEA" in json.dumps(b))
    assert _cdm_ids(omop, cea) == {6}  # 2 has one confident CEA only, and had gefitinib


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        (
            {"all": [C34, {"event": "surgery"}]},
            "where.all[1]: unknown event 'surgery' (events: death, diagnosis",
        ),
        (
            {"event": "diagnosis", "field": "colour", "op": "=", "value": "x"},
            "where: event 'diagnosis' has no field 'colour'",
        ),
        (
            {"event": "measurement", "where": {"any": [{"field": "nope", "op": "is_null"}]}},
            "where.where.any[0]: event 'measurement' has no field 'nope'",
        ),
        (
            {"field": "weight", "op": ">", "value": 1},
            "where: unknown field 'weight' (fields: age, sex, death, person_id",
        ),
        (
            {"event": "measurement", "field": "value", "op": ">", "value": "high"},
            "where: field 'value' needs a number",
        ),
    ],
)
def test_cdm_compile_errors_name_the_node(tree: Any, message: str) -> None:
    schema = CdmSchema(omop_metadata())
    with pytest.raises(InvalidInput) as caught:
        compile_where(parse_tree(tree), schema)
    assert str(caught.value).startswith(message), str(caught.value)


def test_window_and_age_need_an_index_date() -> None:
    schema = CdmSchema(omop_metadata())
    with pytest.raises(InvalidInput, match=r"^where\.any\[0\]: a 'window' needs an index date"):
        compile_where(parse_tree({"any": [{**SURGERY, "window": {"to_days": 90}}]}), schema)
    with pytest.raises(
        InvalidInput, match=r"^where: 'age' needs an index date or a reference date"
    ):
        compile_where(parse_tree({"field": "age", "op": ">", "value": 1}), schema)


def test_missing_table_makes_its_event_unavailable() -> None:
    schema = CdmSchema(omop_metadata(without=frozenset({"drug_exposure", "death"})))
    with pytest.raises(InvalidInput, match="event 'drug' needs table 'drug_exposure', not present"):
        compile_where(parse_tree({"event": "drug"}), schema)
    with pytest.raises(InvalidInput, match="event 'death' needs table 'death'"):
        compile_where(parse_tree({"field": "death", "op": "=", "value": True}), schema)
    assert "drug" not in schema.event_names() and "diagnosis" in schema.event_names()
    with pytest.raises(InvalidInput, match="needs a 'person' table"):
        CdmSchema(omop_metadata(without=frozenset({"person"})))


def test_index_event_takes_no_window() -> None:
    schema = CdmSchema(omop_metadata())
    with pytest.raises(InvalidInput, match=r"^index: an index event takes no 'window'"):
        index_first_event(schema, parse_tree({**C34, "window": {"to_days": 1}}))
    with pytest.raises(InvalidInput, match=r"^index: the index must be an event"):
        index_first_event(schema, parse_tree({"field": "age", "op": ">", "value": 1}))


def test_date_functions_on_both_backends(engine: sa.Engine) -> None:
    def one(expression: Any) -> Any:
        with engine.connect() as conn:
            return conn.execute(sa.select(expression)).scalar_one()

    def day(text: str) -> Any:
        return sa.literal(D(text), sa.Date())

    assert one(days_between(day("2020-02-28"), day("2020-03-01"))) == 2
    assert one(days_between(day("2021-01-01"), day("2020-12-25"))) == -7
    moment = sa.literal(datetime(2020, 3, 1, 23, 59), sa.DateTime())
    assert one(days_between(day("2020-02-28"), moment)) == 2  # calendar days
    leapling = day("2000-02-29")
    assert one(age_in_years(leapling, day("2021-02-28"))) == 20
    assert one(age_in_years(leapling, day("2021-03-01"))) == 21
    assert (
        one(age_in_years(sa.literal(datetime(1990, 7, 1, 8), sa.DateTime()), day("2020-07-01")))
        == 30
    )
    assert one(days_between(day("2020-01-01"), sa.null())) is None
    assert "days_between(" in str(days_between(day("2020-01-01"), day("2020-01-02")))


# --- property: the compiled SQL agrees with a pure-Python evaluator -------------------

PROP = sa.MetaData()
PROP_TABLE = sa.Table(
    "prop",
    PROP,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("n", sa.Integer),
    sa.Column("x", sa.Float),
    sa.Column("s", sa.String),
    sa.Column("d", sa.Date),
    sa.Column("b", sa.Boolean),
)
NUMBERS = [-1, 0, 1, 2, 5, 1.5, -0.5, 2.25]
DATES = ["2020-01-01", "2020-06-30", "2021-01-01"]
TEXT = st.text(alphabet="aAb%_/", max_size=3)  # LIKE wildcards and the escape char
DOMAINS: dict[str, st.SearchStrategy[Any]] = {
    "n": st.sampled_from([-1, 0, 1, 2, 5]),
    "x": st.sampled_from([-0.5, 0.0, 1.5, 2.25]),
    "s": TEXT,
    "d": st.sampled_from(DATES).map(D),
    "b": st.booleans(),
}
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "n": st.sampled_from(NUMBERS),
    "x": st.sampled_from(NUMBERS),
    "s": TEXT,
    "d": st.sampled_from(DATES),
    "b": st.booleans(),
}
ORDERED_OPS = ["=", "!=", "<", "<=", ">", ">=", "in", "not_in", "between", "is_null", "not_null"]
TEXT_OPS = ["like", "starts_with", "contains"] * 3  # weighted: wildcards need many tries
OPS = {"n": ORDERED_OPS, "x": ORDERED_OPS, "d": ORDERED_OPS, "s": [*ORDERED_OPS, *TEXT_OPS]}
OPS["b"] = ["=", "!=", "in", "not_in", "is_null", "not_null"]


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    field = draw(st.sampled_from(["n", "x", "s", "s", "s", "d", "b"]))  # text has most ops
    op = draw(st.sampled_from(OPS[field]))
    leaf: dict[str, Any] = {"field": field, "op": op}
    if op in ("in", "not_in"):
        leaf["value"] = draw(st.lists(VALUES[field], min_size=1, max_size=3))
    elif op == "between":
        leaf["value"] = draw(st.lists(VALUES[field], min_size=2, max_size=2).map(sorted))
    elif op in ("like", "starts_with", "contains"):
        leaf["value"] = draw(TEXT.filter(bool))
    elif op not in ("is_null", "not_null"):
        leaf["value"] = draw(VALUES[field])
    if draw(st.booleans()):
        leaf["negate"] = True
    return leaf


@st.composite
def groups(draw: st.DrawFn, children: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    members = draw(st.lists(children, min_size=1, max_size=4))
    kind = draw(st.sampled_from(["all", "any", "at_least"]))
    group: dict[str, Any] = (
        {kind: members}
        if kind != "at_least"
        else {
            "at_least": draw(st.integers(1, len(members))),
            "of": members,
        }
    )
    if draw(st.booleans()):
        group["negate"] = True
    return group


TREES = conditions() | st.recursive(conditions(), groups, max_leaves=12)  # many lone leaves too
ROWS = st.lists(
    st.fixed_dictionaries({name: st.none() | domain for name, domain in DOMAINS.items()}),
    max_size=12,
)


def _like(pattern: str, text: str) -> bool:
    regex = "".join(
        ".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern.lower()
    )
    return re.fullmatch(regex, text.lower(), flags=re.DOTALL) is not None


def _value(field: str, value: Any) -> Any:
    return D(value) if field == "d" else value


def evaluate(node: Node, row: dict[str, Any]) -> bool | None:
    """SQL's three-valued logic in Python: None is unknown."""
    result: bool | None
    if isinstance(node, Group):
        results = [evaluate(child, row) for child in node.children]
        if node.op is GroupOp.AT_LEAST:
            result = sum(r is True for r in results) >= (node.n or 1)
        elif node.op is GroupOp.ALL:
            result = False if False in results else None if None in results else True
        else:
            result = True if True in results else None if None in results else False
    else:
        assert isinstance(node, Condition)
        result = _compare(node, row[node.field])
    return None if result is None else (not result if node.negate else result)


def _compare(leaf: Condition, cell: Any) -> bool | None:
    op = leaf.op
    if op is Comparator.IS_NULL or op is Comparator.NOT_NULL:
        return (cell is None) == (op is Comparator.IS_NULL)
    if cell is None:
        return None
    value = leaf.value
    if op in (Comparator.IN, Comparator.NOT_IN):
        assert isinstance(value, tuple)
        return (cell in [_value(leaf.field, v) for v in value]) == (op is Comparator.IN)
    if op is Comparator.BETWEEN:
        assert isinstance(value, tuple)
        low, high = (_value(leaf.field, v) for v in value)
        return bool(low <= cell <= high)
    if op is Comparator.LIKE:
        return _like(str(value), cell)
    if op is Comparator.STARTS_WITH:
        return bool(cell.lower().startswith(str(value).lower()))
    if op is Comparator.CONTAINS:
        return str(value).lower() in cell.lower()
    compare = {
        "=": operator.eq,
        "!=": operator.ne,
        "<": operator.lt,
        "<=": operator.le,
        ">": operator.gt,
        ">=": operator.ge,
    }
    return bool(compare[op](cell, _value(leaf.field, value)))


@cache
def _sqlite_engine() -> sa.Engine:
    engine = sa.create_engine("sqlite://", poolclass=sa.pool.StaticPool)
    PROP.create_all(engine)
    return engine


def _row(**cells: Any) -> dict[str, Any]:
    return {name: cells.get(name) for name in DOMAINS}


@settings(max_examples=400, deadline=None)
@given(tree=TREES, rows=ROWS)
@example(tree={"field": "s", "op": "contains", "value": "_"}, rows=[_row(s="a"), _row(s="a_")])
@example(
    tree={"field": "s", "op": "starts_with", "value": "%/"}, rows=[_row(s="a/"), _row(s="%/b")]
)
@example(tree={"field": "n", "op": "!=", "value": 1, "negate": True}, rows=[_row(), _row(n=1)])
def test_compiled_sql_matches_python_evaluator_on_sqlite(
    tree: dict[str, Any], rows: list[dict[str, Any]]
) -> None:
    node = parse_tree(tree)
    assert parse_tree(dump_tree(node)) == node
    engine = _sqlite_engine()
    with engine.begin() as conn:
        conn.execute(PROP_TABLE.delete())
        if rows:
            conn.execute(PROP_TABLE.insert(), [{"id": i, **row} for i, row in enumerate(rows)])
    expected = {i for i, row in enumerate(rows) if evaluate(node, row) is True}
    assert _ids(engine, cohort_select(node, FlatSchema(PROP_TABLE))) == expected
