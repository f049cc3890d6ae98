"""Studies on the site's CDM (`"dataset": "cdm"`): the analysis dataset built from the
study's `cdm_dataset` spec, the study's where and derived fields over its columns,
person_id and index_date kept at the site, the CDM's version and registration."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from lifelines import CoxPHFitter

from edge_node.agent import registration_for
from edge_node.cdm import CDM_DATASET, cdm_version, refresh_cdm, upgrade_cdm
from edge_node.policy import Decision, Policy
from edge_node.runner import TaskRunner
from federated_ml.analyses import Finished, analysis_for
from federated_ml.analyses.base import parse_spec
from protocol.messages import ResultStatus, TaskAssignment, TaskResult
from shared_cdm.analysis_dataset import load_dataset, parse_dataset_spec
from shared_cdm.models import Base
from tests.unit.edge_node.conftest import EdgeDbs

TABLES = Base.metadata.tables
N = 60
CUTOFF = date(2024, 1, 1)
DATASET = {
    "index": {"event": "diagnosis", "field": "code", "op": "starts_with", "value": "C34"},
    "outcome": {"event": "death", "censor": CUTOFF.isoformat()},
    "covariates": {"age": {"field": "age"}, "sex": {"field": "sex"}},
    "derived": {"male": {"map": "sex", "values": {"male": 1, "female": 0}}},
}


def persons(n: int, first_id: int = 1) -> dict[str, list[dict[str, Any]]]:
    """n persons with a C34 diagnosis (every fifth has another cancer only); some die."""
    rng = np.random.default_rng(first_id)
    rows: dict[str, list[dict[str, Any]]] = {"person": [], "condition_occurrence": [], "death": []}
    for pid in range(first_id, first_id + n):
        born = date(int(rng.integers(1930, 1975)), 1 + int(rng.integers(0, 12)), 1)
        rows["person"].append(
            {
                "person_id": pid,
                "gender_concept_id": 8507 if pid % 2 else 8532,
                "year_of_birth": born.year,
                "birth_datetime": datetime(born.year, born.month, 1),
                "race_concept_id": 0,
                "ethnicity_concept_id": 0,
            }
        )
        code = "C50.1" if pid % 5 == 0 else "C34.1"
        diagnosed = date(2015, 1, 1) + timedelta(days=int(rng.integers(0, 1500)))
        rows["condition_occurrence"].append(
            {
                "condition_occurrence_id": pid,
                "person_id": pid,
                "condition_concept_id": 0,
                "condition_source_value": code,
                "condition_start_date": diagnosed,
                "condition_type_concept_id": 0,
            }
        )
        if rng.random() < 0.6:
            died = diagnosed + timedelta(days=int(rng.integers(30, 2500)))
            rows["death"].append({"person_id": pid, "death_date": died})
    return rows


def insert(engine: sa.Engine, rows: dict[str, list[dict[str, Any]]]) -> None:
    with engine.begin() as conn:
        for table in ("person", "condition_occurrence", "death"):
            if rows[table]:
                conn.execute(TABLES[table].insert(), rows[table])


@pytest.fixture
def cdm_site(edge_dbs: EdgeDbs, db_url: str) -> Iterator[EdgeDbs]:
    upgrade_cdm(db_url)
    insert(edge_dbs.analysis, persons(N))
    yield edge_dbs


def frame(dbs: EdgeDbs) -> pd.DataFrame:
    return load_dataset(dbs.analysis, parse_dataset_spec(DATASET)).frame


def runner(dbs: EdgeDbs) -> TaskRunner:
    analyses = {a: Decision.AUTO for a in ("count", "describe", "cox")}
    return TaskRunner.create(dbs.analysis, dbs.state, Policy(5, analyses))


def run(r: TaskRunner, spec: dict[str, Any], params: dict[str, Any] | None = None) -> TaskResult:
    full = {"dataset": CDM_DATASET, "cdm_dataset": DATASET, **spec}
    task = TaskAssignment(
        task_id=str(uuid.uuid4()),
        study_id="s-cdm",
        round=0,
        analysis=str(spec["analysis"]),
        dataset=CDM_DATASET,
        spec={**full, "round_params": params or {}},
        requester="alice",
        created_at=datetime.now(UTC),
    )
    return r.run(task)


def test_count_on_the_cdm_dataset_with_where_and_derived_fields(cdm_site: EdgeDbs) -> None:
    rows = frame(cdm_site)
    assert len(rows) == 48  # every fifth person has no lung cancer
    r = runner(cdm_site)
    result = run(r, {"analysis": "count"})
    assert result.status is ResultStatus.OK, result.message
    assert result.payload == {"n": len(rows)}
    where = {
        "all": [
            {"field": "male", "op": "=", "value": 1},
            {"field": "over_60", "op": "=", "value": "yes"},
        ]
    }
    derived = {"over_60": {"cut": "age", "breaks": [60], "labels": ["no", "yes"]}}
    older_men = run(r, {"analysis": "count", "where": where, "derived": derived})
    expected = int(((rows["sex"] == "male") & (rows["age"] >= 60)).sum())
    assert older_men.payload["n"] == expected


def test_cox_on_the_cdm_dataset_equals_lifelines(cdm_site: EdgeDbs) -> None:
    rows = frame(cdm_site)
    spec = {"analysis": "cox", "time": "time", "event": "event", "covariates": ["age", "male"]}
    parsed = parse_spec({"dataset": CDM_DATASET, "cdm_dataset": DATASET, **spec})
    analysis = analysis_for("cox")
    r = runner(cdm_site)
    nxt = analysis.first_round(parsed)
    for _ in range(50):
        result = run(r, spec, nxt.params)
        assert result.status is ResultStatus.OK, result.message
        out = analysis.step(parsed, nxt.state, {"site": result.payload})
        if isinstance(out, Finished):
            break
        nxt = out
    assert isinstance(out, Finished)
    data = rows.assign(male=(rows["sex"] == "male").astype(int))[["time", "event", "age", "male"]]
    ref = CoxPHFitter().fit(data, "time", "event", fit_options={"precision": 1e-12})
    for c in ("age", "male"):
        assert out.result["coef"][c] == pytest.approx(ref.params_[c], rel=1e-6)
    assert out.n == len(rows)


@pytest.mark.parametrize(
    "spec",
    [
        {"analysis": "count", "where": {"field": "person_id", "op": "<", "value": 3}},
        {"analysis": "describe", "variables": ["index_date"]},
        {"analysis": "count", "derived": {"p": {"expr": "person_id * 1"}}},
    ],
)
def test_person_id_and_index_date_stay_at_the_site(cdm_site: EdgeDbs, spec: dict) -> None:
    result = run(runner(cdm_site), spec)
    assert result.status is ResultStatus.FAILED and result.payload == {}
    assert "unknown field" in result.message or "has no column" in result.message


def test_a_cdm_study_needs_its_dataset_spec(cdm_site: EdgeDbs) -> None:
    task = TaskAssignment(
        "t-1", "s-1", 0, "count", CDM_DATASET, {"analysis": "count"}, "alice", datetime.now(UTC)
    )
    result = runner(cdm_site).run(task)
    assert result.status is ResultStatus.FAILED and "cdm_dataset" in result.message


def test_the_cdm_is_registered_and_its_version_follows_the_data(cdm_site: EdgeDbs) -> None:
    record = refresh_cdm(cdm_site.analysis, cdm_site.registry)
    assert record is not None and record.kind == "cdm" and record.row_count == N
    info = {d.name: d for d in registration_for(cdm_site.registry).datasets}
    assert info[CDM_DATASET].kind == "cdm" and info[CDM_DATASET].version == record.version
    assert cdm_version(cdm_site.analysis)[0] == record.version
    insert(cdm_site.analysis, persons(1, first_id=N + 1))
    assert cdm_version(cdm_site.analysis)[0] != record.version
    # A study after the update runs on (and registers) the new version.
    run(runner(cdm_site), {"analysis": "count"})
    assert cdm_site.registry.get(CDM_DATASET).version == cdm_version(cdm_site.analysis)[0]


def test_without_cdm_tables_a_cdm_study_fails_saying_what_to_do(edge_dbs: EdgeDbs) -> None:
    result = run(runner(edge_dbs), {"analysis": "count"})
    assert result.status is ResultStatus.FAILED and "oncofed-edge init" in result.message
    assert refresh_cdm(edge_dbs.analysis, edge_dbs.registry) is None
