"""The sensitivity transformation (min_confidence on every confidence-bearing event) and
what it does to a cohort on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shared_cdm.analysis_dataset import dump_dataset_spec, parse_dataset_spec
from shared_cdm.cohort import CdmSchema, Event, cohort_select, dump_tree, parse_tree
from shared_cdm.cohort.sensitivity import (
    confidence_events,
    dataset_spec_with_min_confidence,
    sensitivity_threshold,
    study_spec_with_min_confidence,
    with_min_confidence,
)
from shared_cdm.errors import InvalidInput
from shared_cdm.models import Base

NLP = 32858
PT = {"field": "code", "op": "=", "value": "pT"}
# The docs' example: lung-cancer patients whose pathology pT is T3 or T4.
T3_T4 = {"all": [PT, {"field": "value_source_value", "op": "in", "value": ["T3", "T4"]}]}
LUNG = {"event": "diagnosis", "field": "code", "op": "starts_with", "value": "C34"}


def _events(tree: dict[str, Any]) -> list[dict[str, Any]]:
    """Every event node of a canonical tree, in document order."""
    if "event" in tree:
        return [tree]
    children = tree.get("all") or tree.get("any") or tree.get("of") or []
    return [event for child in children for event in _events(child)]


def test_the_confidence_bearing_events_are_the_tables_with_a_confidence_column() -> None:
    tables = Base.metadata.tables
    kinds = confidence_events()
    assert {"diagnosis", "measurement", "procedure", "drug", "lung_cancer"} <= kinds
    assert not {"death", "visit"} & kinds
    for kind in ("death", "visit"):
        assert "confidence" not in tables[{"death": "death", "visit": "visit_occurrence"}[kind]].c


def test_nested_groups_negation_stricter_thresholds_and_other_tables() -> None:
    raw = {
        "all": [
            {"field": "age", "op": ">=", "value": 18},
            {"event": "measurement", "where": T3_T4},
            {
                "any": [
                    {**LUNG, "negate": True},
                    {"at_least": 1, "of": [{"event": "drug", "min_confidence": 0.95}]},
                    {"event": "death"},
                    {"event": "visit", "min_count": 2},
                ],
                "negate": True,
            },
            {"event": "procedure", "min_confidence": 0.5},
        ]
    }
    tree = parse_tree(raw)
    before = dump_tree(tree)
    out = dump_tree(with_min_confidence(tree, 0.9))

    measurement, diagnosis, drug, death, visit, procedure = _events(out)
    assert measurement["min_confidence"] == 0.9
    assert measurement["where"] == T3_T4  # the event's own conditions are unchanged
    assert diagnosis == {**LUNG, "negate": True, "min_confidence": 0.9}
    assert drug["min_confidence"] == 0.95  # stricter already: kept
    assert procedure["min_confidence"] == 0.9  # looser: raised
    assert "min_confidence" not in death and "min_confidence" not in visit
    assert visit["min_count"] == 2
    assert out["all"][0] == {"field": "age", "op": ">=", "value": 18}
    assert out["all"][2]["negate"] is True
    # The original tree is not changed, and the result is a valid tree again.
    assert dump_tree(tree) == before
    assert parse_tree(out) == with_min_confidence(tree, 0.9)


def test_a_tree_without_confidence_bearing_events_comes_back_equal() -> None:
    tree = parse_tree({"any": [{"event": "death"}, {"field": "sex", "op": "=", "value": "male"}]})
    assert with_min_confidence(tree, 0.9) == tree
    stricter = parse_tree({**LUNG, "min_confidence": 0.99})
    assert with_min_confidence(stricter, 0.9) == stricter


def test_the_event_kinds_can_be_named() -> None:
    tree = parse_tree({"all": [LUNG, {"event": "death"}]})
    out = dump_tree(with_min_confidence(tree, 0.8, events={"death"}))
    assert [event.get("min_confidence") for event in _events(out)] == [None, 0.8]


@pytest.mark.parametrize("threshold", [-0.1, 1.5, True, "0.9", None])
def test_a_threshold_outside_zero_to_one_is_refused(threshold: Any) -> None:
    with pytest.raises(InvalidInput, match="from 0 to 1"):
        with_min_confidence(parse_tree(LUNG), threshold)


def test_dataset_spec_index_cohort_and_event_covariates() -> None:
    raw = {
        "index": LUNG,
        "cohort": {"all": [{"field": "age", "op": ">=", "value": 18}, {"event": "measurement"}]},
        "outcome": {"event": "death"},
        "covariates": {
            "age": {"field": "age"},
            "pt": {
                "event": "measurement",
                "where": PT,
                "column": "value_source_value",
                "pick": "first",
            },
            "egfr": {"event": "measurement", "pick": "exists", "min_confidence": 0.97},
            "visits": {"event": "visit", "pick": "count"},
        },
    }
    spec = parse_dataset_spec(raw)
    before = dump_dataset_spec(spec)
    out = dump_dataset_spec(dataset_spec_with_min_confidence(spec, 0.9))

    assert out["index"]["min_confidence"] == 0.9
    assert out["cohort"]["all"][1] == {"event": "measurement", "min_confidence": 0.9}
    assert out["covariates"]["pt"]["min_confidence"] == 0.9
    assert out["covariates"]["egfr"]["min_confidence"] == 0.97
    assert "min_confidence" not in out["covariates"]["visits"]
    assert out["covariates"]["age"] == {"field": "age"}
    assert out["outcome"] == before["outcome"]
    assert dump_dataset_spec(spec) == before
    assert parse_dataset_spec(out) == dataset_spec_with_min_confidence(spec, 0.9)


def test_study_spec_keeps_its_other_keys_and_drops_the_option() -> None:
    spec = {
        "analysis": "count",
        "dataset": "cdm",
        "cdm_dataset": {"index": LUNG},
        "where": {"field": "age", "op": ">=", "value": 60},
        "sensitivity": {"min_confidence": 0.9},
    }
    original = copy.deepcopy(spec)
    out = study_spec_with_min_confidence(spec, 0.9)
    assert spec == original
    assert "sensitivity" not in out
    assert out["where"] == spec["where"]  # nothing to restrict: as given
    assert out["cdm_dataset"]["index"] == {**LUNG, "min_confidence": 0.9}
    assert {k: v for k, v in out.items() if k != "cdm_dataset"} == {
        k: v for k, v in spec.items() if k not in ("cdm_dataset", "sensitivity")
    }


def test_study_spec_with_a_bad_dataset_spec_names_it() -> None:
    with pytest.raises(InvalidInput, match=r"cdm_dataset\.index"):
        study_spec_with_min_confidence({"analysis": "count", "cdm_dataset": {}}, 0.9)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ([0.9], "must be an object"),
        ({}, "required"),
        ({"min_confidence": 2}, "from 0 to 1"),
        ({"min_confidence": 0.9, "max": 1}, "unknown key 'max'"),
    ],
)
def test_the_sensitivity_option_is_checked(option: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        sensitivity_threshold({"analysis": "count", "sensitivity": option})


def test_the_sensitivity_option_reads_its_threshold() -> None:
    assert sensitivity_threshold({"analysis": "count"}) is None
    assert sensitivity_threshold({"sensitivity": {"min_confidence": 1}}) == 1.0


# -- the compiled cohort on both backends ---------------------------------------------------


@pytest.fixture
def cdm(db_url: str) -> Iterator[sa.Engine]:
    """Six lung-cancer patients; pT facts from pathology (NLP) of varied confidence."""
    engine = sa.create_engine(db_url)
    Base.metadata.create_all(engine)
    t = Base.metadata.tables
    persons = [
        {
            "person_id": pid,
            "gender_concept_id": 8507,
            "year_of_birth": 1950,
            "race_concept_id": 0,
            "ethnicity_concept_id": 0,
        }
        for pid in range(1, 8)
    ]
    diagnoses = [
        {
            "condition_occurrence_id": pid,
            "person_id": pid,
            "condition_concept_id": 0,
            "condition_start_date": date(2024, 1, 10),
            "condition_type_concept_id": 32817,
            "condition_source_value": "C34.1",
            "confidence": None,
        }
        for pid in range(1, 8)
    ]
    # person: (pT, confidence); None is a structured (registry) fact, certain.
    facts = {
        1: ("T3", 0.97),
        2: ("T4", 0.9),
        3: ("T3", 0.6),
        4: ("T4", None),
        5: ("T2a", 0.99),
        6: ("T3", 0.89),
        7: ("T4", 0.3),
    }
    measurements = [
        {
            "measurement_id": pid,
            "person_id": pid,
            "measurement_concept_id": 0,
            "measurement_date": date(2024, 1, 20),
            "measurement_type_concept_id": NLP if confidence is not None else 32817,
            "measurement_source_value": "pT",
            "value_source_value": stage,
            "measurement_event_id": pid,
            "confidence": confidence,
        }
        for pid, (stage, confidence) in facts.items()
    ]
    # Person 7 also has a certain pT4 from the registry: the strict cohort keeps them.
    measurements.append(
        {
            "measurement_id": 70,
            "person_id": 7,
            "measurement_concept_id": 0,
            "measurement_date": date(2024, 2, 1),
            "measurement_type_concept_id": 32817,
            "measurement_source_value": "pT",
            "value_source_value": "T4",
            "measurement_event_id": 7,
            "confidence": None,
        }
    )
    with engine.begin() as conn:
        conn.execute(t["person"].insert(), persons)
        conn.execute(t["condition_occurrence"].insert(), diagnoses)
        conn.execute(t["measurement"].insert(), measurements)
    try:
        yield engine
    finally:
        engine.dispose()


def _cohort(engine: sa.Engine, tree: dict[str, Any]) -> set[int]:
    schema = CdmSchema(Base.metadata, reference_date=date(2025, 1, 1))
    with engine.connect() as conn:
        return set(conn.scalars(cohort_select(parse_tree(tree), schema)))


def test_the_documented_example_selects_exactly_on_both_backends(cdm: sa.Engine) -> None:
    documented = {"event": "measurement", "where": T3_T4, "min_confidence": 0.9}
    assert _cohort(cdm, documented) == {1, 2, 4, 7}
    assert _cohort(cdm, {"event": "measurement", "where": T3_T4}) == {1, 2, 3, 4, 6, 7}


def test_the_sensitivity_tree_drops_exactly_the_low_confidence_patients(cdm: sa.Engine) -> None:
    tree = {"all": [LUNG, {"event": "measurement", "where": T3_T4}]}
    primary = _cohort(cdm, tree)
    strict = _cohort(cdm, dump_tree(with_min_confidence(parse_tree(tree), 0.9)))
    looser = _cohort(cdm, dump_tree(with_min_confidence(parse_tree(tree), 0.5)))
    assert primary == {1, 2, 3, 4, 6, 7}
    assert strict == {1, 2, 4, 7}  # 3 (0.6) and 6 (0.89) only had low-confidence pT3
    assert looser == {1, 2, 3, 4, 6, 7}
    # Negated: "no pT3/pT4" grows by exactly the patients whose only such fact is doubtful.
    negated = {"all": [LUNG, {"event": "measurement", "where": T3_T4, "negate": True}]}
    assert _cohort(cdm, negated) == {5}
    assert _cohort(cdm, dump_tree(with_min_confidence(parse_tree(negated), 0.9))) == {3, 5, 6}


def test_an_event_node_built_by_hand_is_restricted_too(cdm: sa.Engine) -> None:
    event = Event(event="measurement", where=parse_tree(T3_T4))
    assert _cohort(cdm, dump_tree(with_min_confidence(event, 0.95))) == {1, 4, 7}


DOCS = Path(__file__).resolve().parents[3] / "docs" / "cohort-query.md"


def _doc_block(name: str) -> Any:
    text = DOCS.read_text(encoding="utf-8")
    (block,) = re.findall(rf"```json {name}\n(.*?)```", text, flags=re.DOTALL)
    return json.loads(block)


def test_the_docs_example_selects_exactly(cdm: sa.Engine) -> None:
    example = _doc_block("sensitivity-example")
    assert _cohort(cdm, example) == {1, 2, 4, 7}
    extracted_only = copy.deepcopy(example)
    conditions = extracted_only["all"][1]["where"]["all"]
    conditions.append({"field": "measurement_type_concept_id", "op": "=", "value": NLP})
    assert _cohort(cdm, extracted_only) == {1, 2}  # 4 and 7's certain pT4 is a registry fact


def test_the_docs_study_is_restricted_as_described() -> None:
    study = _doc_block("sensitivity-study")
    threshold = sensitivity_threshold(study)
    assert threshold == 0.9
    run = study_spec_with_min_confidence(study, threshold)
    assert run["cdm_dataset"]["cohort"]["min_confidence"] == 0.9
    assert run["cdm_dataset"]["index"]["min_confidence"] == 0.9
    assert "sensitivity" not in run
