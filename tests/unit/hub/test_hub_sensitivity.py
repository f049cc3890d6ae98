"""Sensitivity runs at the hub: started with the study, answered by the sites like any
task, combined into the primary result whichever ends first; old studies unchanged."""

from __future__ import annotations

import math
from typing import Any

import pytest

from hub.auth import UserView
from hub.bootstrap import Hub
from hub.db.models import StudyStatus
from hub.studies.sensitivity import compare
from protocol.messages import ResultStatus, TaskAssignment, TaskResult
from shared_cdm.errors import InvalidInput
from tests.unit.hub.hub_testkit import register_nodes

LUNG = {"event": "diagnosis", "field": "code", "op": "starts_with", "value": "C34"}
PT3 = {
    "event": "measurement",
    "where": {
        "all": [
            {"field": "code", "op": "=", "value": "pT"},
            {"field": "value_source_value", "op": "in", "value": ["T3", "T4"]},
        ]
    },
}
STUDY = {
    "analysis": "count",
    "dataset": "cdm",
    "cdm_dataset": {"index": LUNG, "cohort": PT3},
    "sensitivity": {"min_confidence": 0.9},
}


def _start(hub: Hub, researcher: UserView, coordinator: UserView, spec: dict[str, Any]) -> str:
    study = hub.studies.submit(researcher, spec, title="pT3-4")
    hub.studies.approve(coordinator, study.id)
    return study.id


def _pull(hub: Hub, node: str) -> dict[str, TaskAssignment]:
    return {task.study_id: task for task in hub.studies.pull(node)}


def _answer(hub: Hub, node: str, task: TaskAssignment, n: int) -> None:
    hub.studies.submit_result(node, TaskResult(task.task_id, ResultStatus.OK, {"n": n}))


def _is_strict(task: TaskAssignment) -> bool:
    return task.spec["cdm_dataset"]["cohort"].get("min_confidence") == 0.9


@pytest.mark.parametrize("run_first", [True, False])
def test_the_run_is_dispatched_restricted_and_combined_whichever_ends_first(
    hub: Hub, researcher: UserView, coordinator: UserView, run_first: bool
) -> None:
    register_nodes(hub, "A", "B")
    primary_id = _start(hub, researcher, coordinator, STUDY)
    tasks = {node: _pull(hub, node) for node in ("A", "B")}
    (run_id,) = set(tasks["A"]) - {primary_id}
    for node in ("A", "B"):
        assert set(tasks[node]) == {primary_id, run_id}
        assert not _is_strict(tasks[node][primary_id])
        assert _is_strict(tasks[node][run_id])
        assert "sensitivity" not in tasks[node][run_id].spec
        assert tasks[node][primary_id].spec["sensitivity"] == {"min_confidence": 0.9}

    counts = {primary_id: {"A": 26, "B": 25}, run_id: {"A": 20, "B": 18}}
    order = [run_id, primary_id] if run_first else [primary_id, run_id]
    for study_id in order:
        for node in ("A", "B"):
            _answer(hub, node, tasks[node][study_id], counts[study_id][node])
        if study_id == primary_id and not run_first:
            waiting = hub.studies.get(researcher, primary_id).result
            assert waiting is not None
            assert waiting["sensitivity"] == {
                "min_confidence": 0.9,
                "study_id": run_id,
                "status": "running",
            }

    primary = hub.studies.get(researcher, primary_id)
    assert primary.status is StudyStatus.COMPLETED
    assert primary.result is not None
    assert primary.result["result"]["count"] == 51
    section = primary.result["sensitivity"]
    assert section["status"] == "completed"
    assert section["result"]["count"] == 38
    assert section["result"]["by_site"] == {"A": 20, "B": 18}
    assert section["comparison"]["result"]["count"] == {
        "primary": 51,
        "sensitivity": 38,
        "change": -13,
    }
    assert section["comparison"]["n"] == {"primary": 51, "sensitivity": 38, "change": -13}
    run = hub.studies.get(researcher, run_id)
    assert run.status is StudyStatus.COMPLETED
    assert run.sensitivity_of == primary_id
    assert run.title == "pT3-4 (sensitivity: min_confidence 0.9)"
    assert hub.studies.get(researcher, primary_id).sensitivity_of is None
    assert "sensitivity" not in (run.result or {})


def test_a_failed_run_shows_its_error_next_to_the_primary_result(
    hub: Hub, researcher: UserView, coordinator: UserView
) -> None:
    register_nodes(hub, "A")
    primary_id = _start(hub, researcher, coordinator, STUDY)
    tasks = _pull(hub, "A")
    (run_id,) = set(tasks) - {primary_id}
    hub.studies.submit_result(
        "A", TaskResult(tasks[run_id].task_id, ResultStatus.REFUSED, {}, "differencing")
    )
    _answer(hub, "A", tasks[primary_id], 26)
    result = hub.studies.get(researcher, primary_id).result
    assert result is not None
    section = result["sensitivity"]
    assert section["status"] == "failed"
    assert "differencing" in section["error"]
    assert "comparison" not in section


def test_nothing_to_restrict_runs_once_and_says_so(
    hub: Hub, researcher: UserView, coordinator: UserView
) -> None:
    register_nodes(hub, "A")
    spec = {**STUDY, "cdm_dataset": {"index": {**LUNG, "min_confidence": 0.95}}}
    primary_id = _start(hub, researcher, coordinator, spec)
    (task,) = hub.studies.pull("A")
    _answer(hub, "A", task, 30)
    result = hub.studies.get(researcher, primary_id).result
    assert result is not None
    assert result["sensitivity"]["status"] == "identical"
    assert len(hub.studies.list_visible(researcher)) == 1


def test_a_study_without_the_option_is_unchanged(
    hub: Hub, researcher: UserView, coordinator: UserView
) -> None:
    register_nodes(hub, "A")
    spec = {key: value for key, value in STUDY.items() if key != "sensitivity"}
    primary_id = _start(hub, researcher, coordinator, spec)
    (task,) = hub.studies.pull("A")
    assert task.spec == {**spec, "round_params": {"n_sites": 1}}
    _answer(hub, "A", task, 30)
    result = hub.studies.get(researcher, primary_id).result
    assert result is not None and "sensitivity" not in result
    assert len(hub.studies.list_visible(researcher)) == 1


@pytest.mark.parametrize(
    "option", [{"min_confidence": -1}, {"min_confidence": "high"}, {"threshold": 0.9}, 0.9]
)
def test_a_malformed_option_is_refused_at_submission(
    hub: Hub, researcher: UserView, option: Any
) -> None:
    register_nodes(hub, "A")
    with pytest.raises(InvalidInput, match="sensitivity"):
        hub.studies.submit(researcher, {**STUDY, "sensitivity": option})


def test_compare_gives_the_change_of_every_shared_number() -> None:
    primary = {
        "coef": {"age": 0.03, "stage": 0.7},
        "hr": {"age": math.exp(0.03), "stage": math.exp(0.7)},
        "hr_ci95": {"age": [1.0, 1.06]},
        "converged": True,
        "method": "efron",
        "only_here": 1,
    }
    sensitivity = {
        "coef": {"age": 0.03, "stage": 0.5},
        "hr": {"age": math.exp(0.03), "stage": math.exp(0.5)},
        "hr_ci95": {"age": [0.9, 1.1]},
        "converged": True,
        "method": "breslow",
    }
    out = compare(primary, sensitivity)
    assert out["coef"]["stage"]["change"] == pytest.approx(-0.2)
    assert out["coef"]["age"]["change"] == 0
    assert out["hr"]["stage"] == {
        "primary": math.exp(0.7),
        "sensitivity": math.exp(0.5),
        "change": pytest.approx(math.exp(0.5) - math.exp(0.7)),
    }
    assert out["method"] == {"primary": "efron", "sensitivity": "breslow"}
    assert "converged" not in out and "only_here" not in out and "hr_ci95" not in out
    assert compare("suppressed", 12) == {"primary": "suppressed", "sensitivity": 12}
    assert compare(None, None) is None
