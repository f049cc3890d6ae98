"""Training rows of an ML study from the analysis database: the CDM analysis dataset
with the study's where and derived fields, pseudonyms as keys, one-hot levels,
scaling, survival outcome with censoring kept, skipped rows counted; a flat dataset
with an id column; the snapshot the ClientApp reads. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from edge_node.cdm import CDM_DATASET, upgrade_cdm
from edge_node.datasets import add_dataset
from edge_node.ml.features import (
    AnalysisDbFeatureSource,
    parse_ml_study,
    write_snapshot,
)
from federated_ml.flower.features import SqliteFeatureSource, needed_columns, split_site_rows
from federated_ml.flower.spec import input_columns
from shared_cdm.analysis_dataset import load_dataset, parse_dataset_spec
from shared_cdm.errors import InvalidInput
from shared_cdm.models import Base
from tests.unit.edge_node.conftest import EdgeDbs

TABLES = Base.metadata.tables
CUTOFF = date(2024, 1, 1)
DATASET = {
    "index": {"event": "diagnosis", "field": "code", "op": "starts_with", "value": "C34"},
    "outcome": {"event": "death", "censor": CUTOFF.isoformat()},
    "covariates": {"age": {"field": "age"}, "sex": {"field": "sex"}},
}
N = 40


def cdm_rows(n: int) -> dict[str, list[dict[str, Any]]]:
    rng = np.random.default_rng(3)
    rows: dict[str, list[dict[str, Any]]] = {"person": [], "condition_occurrence": [], "death": []}
    for pid in range(1, n + 1):
        born = int(rng.integers(1935, 1975))
        rows["person"].append(
            {
                "person_id": pid,
                "gender_concept_id": 8507 if pid % 2 else 8532,
                "year_of_birth": born,
                "birth_datetime": datetime(born, 1, 1),
                "race_concept_id": 0,
                "ethnicity_concept_id": 0,
                # The last person was loaded without a pseudonym: keyed by its id.
                "person_source_value": f"P{pid:04d}" if pid != n - 1 else None,
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
        if rng.random() < 0.5:
            died = diagnosed + timedelta(days=int(rng.integers(30, 2500)))
            rows["death"].append({"person_id": pid, "death_date": died})
    return rows


@pytest.fixture
def cdm_site(edge_dbs: EdgeDbs, db_url: str) -> Iterator[EdgeDbs]:
    upgrade_cdm(db_url)
    rows = cdm_rows(N)
    with edge_dbs.analysis.begin() as conn:
        for table in ("person", "condition_occurrence", "death"):
            conn.execute(TABLES[table].insert(), rows[table])
    yield edge_dbs


def ml_spec(**over: Any) -> dict[str, Any]:
    ml: dict[str, Any] = {
        "name": "lung survival",
        "model": {"kind": "discrete_survival"},
        "features": ["age", "sex"],
        "categorical": {"sex": ["female", "male"]},
        "scaling": {"age": [60, 10]},
        "outcome": {
            "kind": "survival",
            "time_column": "time",
            "event_column": "event",
            "horizon": 1826,
            "intervals": 4,
        },
    }
    ml.update(over)
    return ml


def cdm_study(**extra: Any) -> dict[str, Any]:
    return {
        "analysis": "flower",
        "dataset": CDM_DATASET,
        "cdm_dataset": DATASET,
        "ml": ml_spec(),
        **extra,
    }


def test_cdm_rows_are_keyed_by_pseudonym_encoded_and_keep_censored(cdm_site: EdgeDbs) -> None:
    study = parse_ml_study(cdm_study())
    rows = AnalysisDbFeatureSource(cdm_site.analysis, cdm_site.registry, study).rows()
    frame = load_dataset(cdm_site.analysis, parse_dataset_spec(DATASET)).frame
    assert len(frame) == 32  # every fifth person has no lung cancer
    assert len(rows.keys) == len(frame) and rows.skipped.total == 0
    assert len(set(rows.keys)) == len(rows.keys)
    assert str(N - 1) in rows.keys  # no pseudonym: its person id
    by_id = frame.set_index("person_id")
    for i, key in enumerate(rows.keys):
        pid = int(key[1:]) if key.startswith("P") else int(key)
        source = by_id.loc[pid]
        assert rows.columns["age"][i] == pytest.approx((source["age"] - 60) / 10)
        assert rows.columns["sex__1"][i] == (1.0 if source["sex"] == "male" else 0.0)
        assert rows.columns["time"][i] == pytest.approx(source["time"])
        assert rows.columns["event"][i] == float(source["event"])
    # Censored patients are rows too (event 0), not dropped.
    assert 0 < rows.columns["event"].sum() < len(rows.keys)
    assert input_columns(study.ml) == ["age", "sex__1"]


def test_where_and_derived_fields_select_the_cohort(cdm_site: EdgeDbs) -> None:
    raw = cdm_study(
        derived={
            "older": {"cut": "age", "breaks": [60], "labels": ["no", "yes"]},
            "male": {"map": "sex", "values": {"male": 1, "female": 0}},
        },
        where={"field": "older", "op": "=", "value": "yes"},
    )
    raw["ml"] = ml_spec(features=["age", "male"], categorical={})
    got = AnalysisDbFeatureSource(cdm_site.analysis, cdm_site.registry, parse_ml_study(raw)).rows()
    frame = load_dataset(cdm_site.analysis, parse_dataset_spec(DATASET)).frame
    older = frame[frame["age"] >= 60]
    assert len(got.keys) == len(older) > 0 and got.skipped.total == 0
    assert got.columns["male"].sum() == (older["sex"] == "male").sum()
    assert (got.columns["age"] >= 0).all()  # (age - 60) / 10 for the over-60s only


def test_an_unknown_field_is_named(cdm_site: EdgeDbs) -> None:
    raw = cdm_study()
    raw["ml"] = ml_spec(features=["age", "stage"], categorical={}, scaling={})
    source = AnalysisDbFeatureSource(cdm_site.analysis, cdm_site.registry, parse_ml_study(raw))
    with pytest.raises(InvalidInput, match="no field 'stage'"):
        source.rows()


FLAT_CSV = """pseudonym,age,stage,died_5y
A1,61,I,0
A2,70,III,1
A3,,II,0
A4,55,IV,1
A5,66,II,maybe
A2,71,III,1
A6,59,II,1
A7,80,III,true
"""


def flat_study(**over: Any) -> dict[str, Any]:
    ml = {
        "name": "5y death",
        "model": {"kind": "logistic"},
        "features": ["age", "stage"],
        "categorical": {"stage": ["I", "II", "III"]},
        "outcome": {"kind": "binary", "column": "died_5y"},
        **over,
    }
    return {"analysis": "flower", "dataset": "lung", "ml": ml}


def test_flat_rows_count_what_they_skip_and_why(edge_dbs: EdgeDbs, tmp_path: Path) -> None:
    csv = tmp_path / "lung.csv"
    csv.write_text(FLAT_CSV, encoding="utf-8")
    add_dataset("lung", csv, analysis_engine=edge_dbs.analysis, registry=edge_dbs.registry)
    source = AnalysisDbFeatureSource(
        edge_dbs.analysis, edge_dbs.registry, parse_ml_study(flat_study())
    )
    rows = source.rows()
    assert rows.keys == ["A1", "A2", "A6", "A7"]
    assert rows.skipped.missing == 1  # A3: no age
    assert rows.skipped.unknown_level == 1  # A4: stage IV is not a listed level
    assert rows.skipped.bad_outcome == 1  # A5: "maybe"
    assert rows.skipped.duplicate == 1  # the second A2
    np.testing.assert_array_equal(rows.columns["stage__1"], [0, 0, 1, 0])
    np.testing.assert_array_equal(rows.columns["stage__2"], [0, 1, 0, 1])
    np.testing.assert_array_equal(rows.columns["died_5y"], [0, 1, 1, 1])
    # Scoring rows need no outcome: A5 is scored even though its outcome is unusable.
    scoring = AnalysisDbFeatureSource(
        edge_dbs.analysis, edge_dbs.registry, parse_ml_study(flat_study()), with_outcome=False
    ).rows()
    assert "A5" in scoring.keys and "died_5y" not in scoring.columns


def test_a_flat_dataset_needs_its_id_column(edge_dbs: EdgeDbs, tmp_path: Path) -> None:
    csv = tmp_path / "lung.csv"
    csv.write_text(FLAT_CSV, encoding="utf-8")
    add_dataset("lung", csv, analysis_engine=edge_dbs.analysis, registry=edge_dbs.registry)
    raw = {**flat_study(), "id_column": "mrn"}
    source = AnalysisDbFeatureSource(edge_dbs.analysis, edge_dbs.registry, parse_ml_study(raw))
    with pytest.raises(InvalidInput, match="no column 'mrn'"):
        source.rows()


def test_the_snapshot_is_what_the_client_app_reads(cdm_site: EdgeDbs, tmp_path: Path) -> None:
    study = parse_ml_study(cdm_study())
    source = AnalysisDbFeatureSource(cdm_site.analysis, cdm_site.registry, study)
    rows = source.rows()
    columns = needed_columns(study.ml)
    path = write_snapshot(tmp_path / "snap" / "features.sqlite", rows, columns)
    assert path.stat().st_mode & 0o077 == 0
    read = SqliteFeatureSource(path).load(columns)
    assert sorted(read.keys) == sorted(rows.keys)
    direct = split_site_rows(study.ml, source.load(columns))
    via_file = split_site_rows(study.ml, read)
    np.testing.assert_allclose(np.sort(direct.x_train, axis=0), np.sort(via_file.x_train, axis=0))
    assert len(direct.x_held_out) == len(via_file.x_held_out) > 0


def test_spec_checks_categorical_and_scaling() -> None:
    with pytest.raises(InvalidInput, match="not features"):
        parse_ml_study(cdm_study(ml=ml_spec(categorical={"stage": ["I", "II"]})))
    with pytest.raises(InvalidInput, match="two distinct levels"):
        parse_ml_study(cdm_study(ml=ml_spec(categorical={"sex": ["male", "male"]})))
    with pytest.raises(InvalidInput, match="scaling"):
        parse_ml_study(cdm_study(ml=ml_spec(scaling={"age": [60, 0]})))
    with pytest.raises(InvalidInput, match="needs an `ml` block"):
        parse_ml_study({"analysis": "flower", "dataset": "cdm"})


def test_analysis_db_is_left_unchanged(cdm_site: EdgeDbs) -> None:
    before = sa.inspect(cdm_site.analysis).get_table_names()
    AnalysisDbFeatureSource(
        cdm_site.analysis, cdm_site.registry, parse_ml_study(cdm_study())
    ).rows()
    assert sa.inspect(cdm_site.analysis).get_table_names() == before
