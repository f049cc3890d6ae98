"""Analysis datasets built from a small hand-made CDM, on SQLite and PostgreSQL.

Ten persons, each there for a rule (dates are chosen so the days are easy to check):

1  male, born 1950-06-15; C34 on 2015-03-10 (and 2016-01-01, an I10 before): index
   is the first C34; dies 2017-03-10 (day 731); two tumour rows; surgery on day 22;
   CEA at -37 (4.0), -9 (6.5, confidence 0.5) and +83 (3.0).
2  female, year of birth only; C34 2016-01-01, alive; last contact is the
   observation period end 2019-12-31 (day 1460); surgery on day 121 (outside 0..90).
3  male; c34 (lower case) 2014-06-01; dies 2021-01-01, after the 1825-day cap; two
   CEA results on the same day (a tie).
4  female; C34 2018-01-15, alive; last contact a measurement on 2020-02-02 (day 748);
   tumour rows at -10 and +10 days (a nearest-index tie), the +10 one has the smaller key.
5  no C34: not in any dataset.
6  16 at index: left out by the cohort condition age >= 18.
7  dies 2019-04-01, before the C34 on 2019-05-01: negative time, excluded and counted.
8  sex only as source value "F"; last contact a visit end 2018-08-20 (day 409), not the
   later drug end date; tumour rows with a missing stage / EGFR.
9  dies on the index date (day 0); a tumour row without a date.
10 dies exactly on day 1825, the cap: still an event.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from shared_cdm.analysis_dataset import (
    DatasetSpec,
    EventCovariate,
    Pick,
    count_dataset,
    dataset_columns,
    dataset_select,
    dump_dataset_spec,
    load_dataset,
    parse_dataset_spec,
)
from shared_cdm.db import make_engine, upgrade
from shared_cdm.errors import InvalidInput
from shared_cdm.models import Base

DOCS = Path(__file__).resolve().parents[3] / "docs" / "analysis-datasets.md"
TABLES = Base.metadata.tables
MALE, FEMALE = 8507, 8532


def d(text: str) -> date:
    return date.fromisoformat(text)


def days(start: str, end: str) -> int:
    return (d(end) - d(start)).days


PERSONS = [  # person_id, gender concept, source value, year of birth, birth date
    (1, MALE, "M", 1950, "1950-06-15"),
    (2, FEMALE, "F", 1960, None),
    (3, MALE, "M", 1940, "1940-01-01"),
    (4, FEMALE, "F", 1970, "1970-02-02"),
    (5, FEMALE, "F", 1955, "1955-01-01"),
    (6, MALE, "M", 2000, "2000-01-01"),
    (7, MALE, "M", 1945, "1945-01-01"),
    (8, 0, "F", 1965, "1965-05-05"),
    (9, FEMALE, "F", 1930, "1930-07-01"),
    (10, MALE, "M", 1958, "1958-12-31"),
]
DIAGNOSES = [  # id, person, code, date
    (1, 1, "I10", "2014-01-01"),
    (2, 1, "C34.1", "2015-03-10"),
    (3, 1, "C34.9", "2016-01-01"),
    (4, 2, "C34.3", "2016-01-01"),
    (5, 3, "c34.0", "2014-06-01"),
    (6, 4, "C34.1", "2018-01-15"),
    (7, 5, "C50.9", "2017-01-01"),
    (8, 6, "C34.1", "2016-03-01"),
    (9, 7, "C34.2", "2019-05-01"),
    (10, 8, "C34.1", "2017-07-07"),
    (11, 9, "C34.1", "2012-03-03"),
    (12, 10, "C34.1", "2010-01-01"),
]
DEATHS = [
    (1, "2017-03-10"),
    (3, "2021-01-01"),
    (5, "2018-01-01"),
    (7, "2019-04-01"),
    (9, "2012-03-03"),
    (10, "2014-12-31"),
]
VISITS = [  # id, person, start, end
    (1, 1, "2015-03-10", "2015-03-20"),
    (2, 1, "2016-05-01", "2016-05-01"),
    (3, 2, "2018-05-01", "2018-05-05"),
    (4, 4, "2019-01-01", "2019-01-03"),
    (5, 8, "2018-08-01", "2018-08-20"),
    (6, 8, "2017-06-01", "2017-06-02"),
]
OBSERVATION_PERIODS = [(1, 2, "2016-01-01", "2019-12-31"), (2, 4, "2018-01-01", "2019-06-30")]
DRUGS = [  # id, person, start, end
    (1, 4, "2019-06-01", "2019-06-30"),
    (2, 8, "2018-08-10", "2018-09-30"),
    (3, 3, "2020-06-01", "2020-06-30"),
]
PROCEDURES = [  # id, person, code, date
    (1, 1, "32.41", "2015-04-01"),
    (2, 2, "32.29", "2016-05-01"),
    (3, 4, "32.49", "2018-02-20"),
    (4, 8, "32.30", "2018-08-11"),
    (5, 3, "33.27", "2014-06-10"),
]
MEASUREMENTS = [  # id, person, code, date, value, confidence
    (101, 1, "CEA", "2015-02-01", 4.0, None),
    (102, 1, "CEA", "2015-03-01", 6.5, 0.5),
    (103, 1, "CEA", "2015-06-01", 3.0, 0.95),
    (104, 3, "CEA", "2014-05-20", 8.0, None),
    (105, 3, "CEA", "2014-05-20", 9.0, None),
    (106, 2, "HB", "2019-02-02", 130.0, None),
    (107, 4, "HB", "2020-02-02", 120.0, None),
    (108, 4, "CEA", "2017-09-01", 5.5, None),
    (109, 10, "CEA", "2010-01-01", 2.0, 0.9),
]
TUMOURS = [  # id, person, tumour number, diagnosis date, stage, EGFR
    (1, 1, 1, "2015-03-10", "IIIA", "negative"),
    (2, 1, 2, "2016-01-01", "IV", "L858R"),
    (40, 4, 2, "2018-01-25", "IB", "positive"),
    (41, 4, 1, "2018-01-05", "IIA", "negative"),
    (50, 8, 1, "2017-07-07", "IA", None),
    (51, 8, 2, "2017-08-01", None, "unknown"),
    (60, 9, 1, None, "IIB", "negative"),
    (70, 10, 1, "2010-01-01", "IB", "negative"),
]


def _date(text: str | None) -> date | None:
    return None if text is None else d(text)


def _rows() -> dict[str, list[dict[str, Any]]]:
    return {
        "person": [
            {"person_id": pid, "gender_concept_id": gender, "gender_source_value": source,
             "year_of_birth": year, "race_concept_id": 0, "ethnicity_concept_id": 0,
             "birth_datetime": None if born is None else pd.Timestamp(born).to_pydatetime()}
            for pid, gender, source, year, born in PERSONS
        ],
        "visit_occurrence": [
            {"visit_occurrence_id": vid, "person_id": pid, "visit_concept_id": 9201,
             "visit_start_date": d(start), "visit_end_date": d(end), "visit_type_concept_id": 0}
            for vid, pid, start, end in VISITS
        ],
        "observation_period": [
            {"observation_period_id": oid, "person_id": pid, "period_type_concept_id": 0,
             "observation_period_start_date": d(start), "observation_period_end_date": d(end)}
            for oid, pid, start, end in OBSERVATION_PERIODS
        ],
        "condition_occurrence": [
            {"condition_occurrence_id": cid, "person_id": pid, "condition_concept_id": 0,
             "condition_source_value": code, "condition_start_date": d(day),
             "condition_type_concept_id": 0}
            for cid, pid, code, day in DIAGNOSES
        ],
        "death": [{"person_id": pid, "death_date": d(day)} for pid, day in DEATHS],
        "drug_exposure": [
            {"drug_exposure_id": did, "person_id": pid, "drug_concept_id": 0,
             "drug_exposure_start_date": d(start), "drug_exposure_end_date": d(end),
             "drug_type_concept_id": 0}
            for did, pid, start, end in DRUGS
        ],
        "procedure_occurrence": [
            {"procedure_occurrence_id": rid, "person_id": pid, "procedure_concept_id": 0,
             "procedure_source_value": code, "procedure_date": d(day),
             "procedure_type_concept_id": 0}
            for rid, pid, code, day in PROCEDURES
        ],
        "measurement": [
            {"measurement_id": mid, "person_id": pid, "measurement_concept_id": 0,
             "measurement_source_value": code, "measurement_date": d(day),
             "value_as_number": value, "confidence": confidence,
             "measurement_type_concept_id": 0}
            for mid, pid, code, day, value, confidence in MEASUREMENTS
        ],
        "lung_cancer_dataset": [
            {"lung_cancer_dataset_id": tid, "person_id": pid, "tumour_number": number,
             "diagnosis_date": _date(day), "clinical_stage_group": stage, "egfr_status": egfr}
            for tid, pid, number, day, stage, egfr in TUMOURS
        ],
    }  # fmt: skip


@pytest.fixture
def cdm(db_url: str) -> Iterator[sa.Engine]:
    upgrade(db_url)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        for table, rows in _rows().items():
            conn.execute(TABLES[table].insert(), rows)
    yield engine
    engine.dispose()


C34 = {"event": "diagnosis", "field": "code", "op": "starts_with", "value": "C34"}
CEA = {"field": "code", "op": "=", "value": "CEA"}
SPEC = {
    "index": C34,
    "cohort": {"all": [{"field": "age", "op": ">=", "value": 18}]},
    "outcome": {"event": "death", "censor": "last_contact", "max_follow_up_days": 1825},
    "covariates": {
        "age": {"field": "age"},
        "sex": {"field": "sex"},
        "stage": {"event": "lung_cancer", "column": "clinical_stage_group", "pick": "first"},
        "stage_last": {"event": "lung_cancer", "column": "clinical_stage_group", "pick": "last"},
        "egfr": {"event": "lung_cancer", "column": "egfr_status", "pick": "nearest_index",
                 "window": {"from_days": -30, "to_days": 90}},
        "n_tumours": {"event": "lung_cancer", "pick": "count"},
        "surgery_90d": {"event": "procedure", "pick": "exists",
                        "where": {"field": "code", "op": "starts_with", "value": "32"},
                        "window": {"from_days": 0, "to_days": 90}},
        "visits_after": {"event": "visit", "pick": "count", "window": {"from_days": 0}},
        "cea": {"event": "measurement", "where": CEA, "column": "value", "pick": "nearest_index",
                "window": {"from_days": -60, "to_days": 0}, "min_confidence": 0.9},
        "cea_max": {"event": "measurement", "where": CEA, "column": "value", "pick": "max"},
        "cea_after_min": {"event": "measurement", "where": CEA, "column": "value",
                          "pick": "min", "window": {"from_days": 0}},
        "cea_first": {"event": "measurement", "where": CEA, "column": "value", "pick": "first"},
        "cea_last": {"event": "measurement", "where": CEA, "column": "value", "pick": "last"},
        "first_cea_date": {"event": "measurement", "where": CEA, "pick": "first"},
    },
    "derived": {
        "age_group": {"cut": "age", "breaks": [50, 65, 80]},
        "followed_2y": {"cut": "time", "breaks": [730], "labels": ["no", "yes"]},
    },
}  # fmt: skip
COLUMNS = ["person_id", "index_date", "time", "event", *SPEC["covariates"], *SPEC["derived"]]
N = None
# One table per group of columns, each row keyed by person_id (persons 5-7 are not in it).
OUTCOMES = {  # index_date, time, event, age, sex, age_group, followed_2y
    1: ("2015-03-10", 731, 1, 64, "male", "50-<65", "yes"),
    2: ("2016-01-01", 1460, 0, 56, "female", "50-<65", "yes"),
    3: ("2014-06-01", 1825, 0, 74, "male", "65-<80", "yes"),
    4: ("2018-01-15", 748, 0, 47, "female", "<50", "yes"),
    8: ("2017-07-07", 409, 0, 52, "F", "50-<65", "no"),
    9: ("2012-03-03", 0, 1, 81, "female", ">=80", "no"),
    10: ("2010-01-01", 1825, 1, 51, "male", "50-<65", "yes"),
}
EVENT_VALUES = {  # stage, stage_last, egfr, n_tumours, surgery_90d, visits_after
    1: ("IIIA", "IV", "negative", 2, 1, 2),
    2: (N, N, N, 0, 0, 1),
    3: (N, N, N, 0, 0, 0),
    4: ("IIA", "IB", "positive", 2, 1, 1),
    8: ("IA", "IA", "unknown", 2, 0, 1),
    9: (N, N, N, 1, 0, 0),  # the tumour row has no date: counted, never picked
    10: ("IB", "IB", "negative", 1, 0, 0),
}
CEA_VALUES = {  # cea, cea_max, cea_after_min, cea_first, cea_last, first_cea_date
    1: (4.0, 6.5, 3.0, 4.0, 3.0, "2015-02-01"),
    2: (N, N, N, N, N, N),
    3: (8.0, 9.0, N, 8.0, 8.0, "2014-05-20"),
    4: (N, 5.5, N, 5.5, 5.5, "2017-09-01"),
    8: (N, N, N, N, N, N),
    9: (N, N, N, N, N, N),
    10: (2.0, 2.0, 2.0, 2.0, 2.0, "2010-01-01"),
}
DATE_COLUMNS = {"index_date", "first_cea_date"}


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain dicts, NaN as None, so they compare with the expected tuples."""
    out = []
    for row in frame.astype(object).where(frame.notna(), None).to_dict("records"):
        out.append({key: _plain(key, value) for key, value in row.items()})
    return out


def _plain(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key in DATE_COLUMNS:
        return value if isinstance(value, date) else d(str(value))
    return value


def _expected() -> list[dict[str, Any]]:
    rows = []
    for pid, (index_date, time, event, age, sex, age_group, followed) in OUTCOMES.items():
        stage, stage_last, egfr, n_tumours, surgery, visits = EVENT_VALUES[pid]
        cea, cea_max, cea_after_min, cea_first, cea_last, first_cea_date = CEA_VALUES[pid]
        values = [pid, index_date, time, event, age, sex, stage, stage_last, egfr, n_tumours]
        values += [surgery, visits, cea, cea_max, cea_after_min, cea_first, cea_last]
        values += [first_cea_date, age_group, followed]
        row = dict(zip(COLUMNS, values, strict=True))
        rows.append({key: _date(v) if key in DATE_COLUMNS else v for key, v in row.items()})
    return rows


def test_expected_values_on_both_backends(cdm: sa.Engine) -> None:
    dataset = load_dataset(cdm, parse_dataset_spec(SPEC))
    assert list(dataset.frame.columns) == COLUMNS
    assert _records(dataset.frame) == _expected()
    # 9 persons with a C34; person 6 is 16; person 7 died before the index.
    assert (dataset.n_index, dataset.n_cohort, dataset.n_excluded_negative_time) == (9, 8, 1)
    assert len(dataset.frame) == dataset.n_cohort - dataset.n_excluded_negative_time


def test_time_and_event_columns_are_whole_numbers(cdm: sa.Engine) -> None:
    frame = load_dataset(cdm, parse_dataset_spec(SPEC)).frame
    assert frame["time"].dtype.kind == "i"
    assert frame["event"].dtype.kind == "i"


def test_fixed_censor_date_censors_later_deaths_and_drops_later_index(cdm: sa.Engine) -> None:
    spec = parse_dataset_spec({"index": C34, "outcome": {"censor": "2018-01-01"}})
    dataset = load_dataset(cdm, spec)
    got = {row["person_id"]: (row["time"], row["event"]) for row in _records(dataset.frame)}
    assert got == {
        1: (731, 1),  # died 2017-03-10, before the cut-off
        2: (days("2016-01-01", "2018-01-01"), 0),
        3: (days("2014-06-01", "2018-01-01"), 0),  # died 2021: unknown at the cut-off
        6: (days("2016-03-01", "2018-01-01"), 0),  # no cohort condition: the 16-year-old is in
        8: (days("2017-07-07", "2018-01-01"), 0),
        9: (0, 1),
        10: (1825, 1),  # no cap
    }
    # Person 4 is indexed after the cut-off; person 7 died before the index.
    assert (dataset.n_index, dataset.n_cohort, dataset.n_excluded_negative_time) == (9, 9, 2)


def test_outcome_event_with_where_and_default_covariate_free_dataset(cdm: sa.Engine) -> None:
    # Outcome: a CEA measurement (any event kind works); censored at last contact.
    spec = parse_dataset_spec({"index": C34, "outcome": {"event": "measurement", "where": CEA}})
    got = {r["person_id"]: (r["time"], r["event"]) for r in _records(load_dataset(cdm, spec).frame)}
    assert got[2] == (1460, 0)
    assert got[10] == (0, 1)
    assert 1 not in got  # person 1's first CEA is 37 days before the index: not at risk
    columns = list(load_dataset(cdm, spec).frame.columns)
    assert columns == ["person_id", "index_date", "time", "event"]


def test_count_dataset_matches_load(cdm: sa.Engine) -> None:
    spec = parse_dataset_spec(SPEC)
    with cdm.connect() as conn:
        counts = count_dataset(conn, spec)
    assert (counts.n_index, counts.n_cohort, counts.n_excluded_negative_time) == (9, 8, 1)


def test_cohort_window_is_relative_to_the_index(cdm: sa.Engine) -> None:
    spec = parse_dataset_spec(
        {
            "index": C34,
            "cohort": {
                "event": "procedure",
                "field": "code",
                "op": "starts_with",
                "value": "32",
                "window": {"from_days": 0, "to_days": 90},
            },
        }
    )
    dataset = load_dataset(cdm, spec)
    assert dataset.frame["person_id"].tolist() == [1, 4]
    assert (dataset.n_index, dataset.n_cohort, dataset.n_excluded_negative_time) == (9, 2, 0)


def _doc_examples() -> list[dict[str, Any]]:
    text = DOCS.read_text(encoding="utf-8")
    sections = re.split(r"^### Example \d", text, flags=re.MULTILINE)[1:]
    blocks = [re.search(r"```json\n(.*?)```", section, flags=re.DOTALL) for section in sections]
    return [json.loads(block.group(1)) for block in blocks if block is not None]


def test_docs_have_three_examples_that_parse() -> None:
    examples = _doc_examples()
    assert len(examples) == 3
    for example in examples:
        spec = parse_dataset_spec(example)
        assert parse_dataset_spec(dump_dataset_spec(spec)) == spec
    text = DOCS.read_text(encoding="utf-8")
    first = re.search(r"```json\n(.*?)```", text, flags=re.DOTALL)
    assert first is not None
    assert parse_dataset_spec(json.loads(first.group(1))).covariates.keys() == {
        "age", "sex", "stage", "egfr", "surgery_90d", "cea"
    }  # fmt: skip


def test_doc_examples_run(cdm: sa.Engine) -> None:
    survival, surgical, logistic = (parse_dataset_spec(e) for e in _doc_examples())
    os5 = _records(load_dataset(cdm, survival).frame)
    assert [r["person_id"] for r in os5] == [1, 2, 3, 4, 8, 9, 10]
    assert {r["person_id"]: r["time"] for r in os5}[3] == 1826  # died after 5 years
    assert [r["person_id"] for r in _records(load_dataset(cdm, surgical).frame)] == [4]
    rows = _records(load_dataset(cdm, logistic).frame)
    got = {r["person_id"]: (r["time"], r["event"], r["died_within_2y"]) for r in rows}
    assert got == {
        1: (730, 0, 0),  # died on day 731: alive at 2 years
        2: (730, 0, 0),
        3: (730, 0, 0),
        4: (730, 0, 0),
        8: (409, 0, None),  # censored before 2 years: unknown
        9: (0, 1, 1),
        10: (730, 0, 0),
    }


def test_values_are_bound_parameters_not_sql_text() -> None:
    spec = parse_dataset_spec(SPEC | {"cohort": {"field": "sex", "op": "=", "value": "x'); --"}})
    compiled = dataset_select(spec, Base.metadata).compile(dialect=postgresql.dialect())
    assert "x');" not in str(compiled)
    assert "C34" not in str(compiled)
    assert "x'); --" in compiled.params.values()


def test_dataset_columns_leave_out_site_only_columns() -> None:
    spec = parse_dataset_spec(SPEC)
    assert dataset_columns(spec) == ["time", "event", *SPEC["covariates"], *SPEC["derived"]]


def test_spec_round_trips_and_defaults() -> None:
    spec = parse_dataset_spec(SPEC)
    assert parse_dataset_spec(dump_dataset_spec(spec)) == spec
    assert isinstance(spec, DatasetSpec)
    egfr = spec.covariates["egfr"]
    assert isinstance(egfr, EventCovariate) and egfr.pick is Pick.NEAREST_INDEX
    minimal = parse_dataset_spec({"index": C34})
    assert (minimal.outcome.event, minimal.outcome.censor) == ("death", "last_contact")
    assert parse_dataset_spec({"index": C34, "outcome": {"censor": "2026-01-01"}}).outcome.censor
    assert parse_dataset_spec(
        {"index": C34, "outcome": {"censor": "2026-01-01"}}
    ).outcome.censor == date(2026, 1, 1)


def _with(**parts: Any) -> dict[str, Any]:
    return {"index": C34, **parts}


BAD_SPECS = [
    ({}, "index: required"),
    ([], "spec: expected an object"),
    ({"index": C34, "outcomes": {}}, "spec: unknown key 'outcomes'"),
    (_with(index={"field": "age", "op": ">=", "value": 1}), "index: must be one event"),
    (_with(index=C34 | {"window": {"from_days": 0}}), "index: an index event takes no"),
    (_with(index={"event": "tumour"}), "index.event: unknown event 'tumour'"),
    (_with(covariates={"x": {"event": "lung_cancer", "pick": "median"}}),
     "covariates.x.pick: unknown pick 'median'"),
    (_with(covariates={"x": {"event": "lung_cancer"}}), "covariates.x.pick: required"),
    (_with(covariates={"x": {"event": "tumour", "pick": "count"}}),
     "covariates.x.event: unknown event 'tumour'"),
    (_with(covariates={"age": {"field": "age", "window": {"from_days": 0}}}),
     "covariates.age.window: 'window' belongs to event covariates"),
    (_with(covariates={"age": {"field": "age", "pick": "first"}}),
     "covariates.age.pick: 'pick' belongs to event covariates"),
    (_with(covariates={"x": {"field": "age", "event": "death"}}), "covariates.x: give 'field'"),
    (_with(covariates={"x": {"pick": "count"}}), "covariates.x: needs 'field'"),
    (_with(covariates={"x": {"event": "visit", "pick": "count", "column": "code"}}),
     "covariates.x.column: pick 'count' counts events"),
    (_with(covariates={"x": {"event": "visit", "pick": "count",
                             "window": {"from_days": 5, "to_days": 1}}}),
     "covariates.x: 'window' starts after it ends"),
    (_with(covariates={"x": {"event": "visit", "pick": "count", "where": C34}}),
     "covariates.x.where: an event's 'where' cannot hold another event"),
    (_with(covariates={"x": {"event": "visit", "pick": "count", "min_confidence": 2}}),
     "covariates.x: 'min_confidence' must be a number from 0 to 1"),
    (_with(covariates={"time": {"field": "age"}}), "covariates.time: 'time' is a column every"),
    (_with(covariates={"Age": {"field": "age"}}), "covariates.Age: a column name is"),
    (_with(outcome={"censor": "2026-02-30"}), "outcome.censor: must be 'last_contact'"),
    (_with(outcome={"censor": "01/02/2026"}), "outcome.censor: must be 'last_contact'"),
    (_with(outcome={"censor": 20260101}), "outcome.censor: must be 'last_contact'"),
    (_with(outcome={"event": "relapse"}), "outcome.event: unknown event 'relapse'"),
    (_with(outcome={"max_follow_up_days": 0}), "outcome.max_follow_up_days: must be"),
    (_with(outcome={"max_follow_up_days": True}), "outcome.max_follow_up_days: must be"),
    (_with(cohort={"field": "age", "op": "=>", "value": 1}), "cohort: unknown comparator"),
    (_with(derived={"g": {"cut": "bmi", "breaks": [1]}}), "derived.g.cut: unknown field 'bmi'"),
    (_with(covariates={"age": {"field": "age"}}, derived={"age": {"cut": "age", "breaks": [1]}}),
     "derived.age: 'age' is already a covariate"),
    (_with(derived={"g": {"cut": "time", "breaks": []}}), "derived.g.breaks"),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "message"), BAD_SPECS)
def test_bad_specs_name_the_json_path(spec: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_dataset_spec(spec)
    assert message in str(caught.value)


COMPILE_ERRORS = [
    ({"x": {"field": "bmi"}}, "covariates.x.field: unknown field 'bmi'"),
    ({"x": {"event": "measurement", "column": "valu", "pick": "max"}},
     "covariates.x.column: event 'measurement' has no field 'valu'"),
    ({"x": {"event": "measurement", "pick": "count",
            "where": {"field": "cod", "op": "=", "value": "CEA"}}},
     "covariates.x.where: event 'measurement' has no field 'cod'"),
    ({"x": {"event": "measurement", "pick": "count",
            "where": {"field": "value", "op": ">", "value": "high"}}},
     "covariates.x.where: field 'value' needs a number"),
]  # fmt: skip


@pytest.mark.parametrize(("covariates", "message"), COMPILE_ERRORS)
def test_names_are_checked_against_the_database_schema(covariates: Any, message: str) -> None:
    spec = parse_dataset_spec(_with(covariates=covariates))
    with pytest.raises(InvalidInput) as caught:
        dataset_select(spec, Base.metadata)
    assert message in str(caught.value)


def test_missing_table_is_an_error_not_an_empty_column() -> None:
    metadata = sa.MetaData()
    for name in ("person", "condition_occurrence", "death"):
        TABLES[name].to_metadata(metadata)
    spec = parse_dataset_spec(_with(covariates={"x": {"event": "lung_cancer", "pick": "count"}}))
    with pytest.raises(InvalidInput, match=r"covariates\.x: event 'lung_cancer' needs table"):
        dataset_select(spec, metadata)
