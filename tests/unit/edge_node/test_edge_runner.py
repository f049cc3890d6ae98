"""The task runner on a registered flat dataset, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from edge_node.datasets import add_dataset
from edge_node.policy import Decision, Policy
from edge_node.runner import TaskRunner
from edge_node.store.models import TaskDecision
from federated_ml.analyses.base import SUPPRESSED
from protocol.messages import ResultStatus, TaskAssignment
from tests.unit.edge_node.conftest import EdgeDbs

# 14 patients; ph.ecog missing for two, age missing for one.
ROWS = [
    (1, 63, "男", 1, 1, 450),
    (2, 71, "女", None, 2, 200),
    (3, 55, "男", 0, 1, 800),
    (4, 66, "女", 2, 2, 120),
    (5, 74, "男", 1, 2, 300),
    (6, 80, "女", 1, 2, 90),
    (7, 45, "男", 0, 1, 1000),
    (8, 68, "男", 1, 2, 410),
    (9, None, "女", 1, 1, 600),
    (10, 59, "男", 0, 1, 700),
    (11, 77, "男", 2, 2, 150),
    (12, 62, "女", None, 1, 520),
    (13, 70, "女", 1, 2, 330),
    (14, 58, "女", 0, 1, 640),
]
COLUMNS = ["id", "age", "sex", "ph.ecog", "status", "time"]
K = 3


@pytest.fixture
def lung(edge_dbs: EdgeDbs, tmp_path: Path) -> pd.DataFrame:
    frame = pd.DataFrame(ROWS, columns=COLUMNS)
    path = tmp_path / "lung.csv"
    frame.to_csv(path, index=False)
    add_dataset("default", path, analysis_engine=edge_dbs.analysis, registry=edge_dbs.registry)
    return frame


def _runner(dbs: EdgeDbs, **policy: Any) -> TaskRunner:
    return TaskRunner.create(dbs.analysis, dbs.state, Policy(min_cell_size=K, **policy))


def _task(spec: dict[str, Any], task_id: str = "t-1") -> TaskAssignment:
    return TaskAssignment(
        task_id=task_id,
        study_id="s-1",
        round=0,
        analysis=str(spec["analysis"]),
        dataset=str(spec.get("dataset", "default")),
        spec=spec,
        requester="alice",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_count_with_a_where_tree_counts_the_matching_rows(
    edge_dbs: EdgeDbs, lung: pd.DataFrame
) -> None:
    where = {
        "all": [
            {"field": "age", "op": ">=", "value": 60},
            {"field": "sex", "op": "=", "value": "男"},
        ]
    }
    result = _runner(edge_dbs).run(_task({"analysis": "count", "where": where}))
    expected = int(((lung["age"] >= 60) & (lung["sex"] == "男")).sum())
    assert expected == 4
    assert result.status is ResultStatus.OK
    assert result.payload == {"n": expected}
    assert result.task_id == "t-1"


def test_count_below_k_is_suppressed(edge_dbs: EdgeDbs, lung: pd.DataFrame) -> None:
    where = {"field": "age", "op": ">=", "value": 77}  # two patients: 77 and 80
    result = _runner(edge_dbs).run(_task({"analysis": "count", "where": where}))
    assert result.status is ResultStatus.OK
    assert result.payload == {"n": SUPPRESSED, "suppressed": True}
    assert result.disclosure and "minimum cell size (3)" in result.disclosure[0]


def test_describe_equals_pandas_on_the_same_rows_and_counts_the_missing(
    edge_dbs: EdgeDbs, lung: pd.DataFrame
) -> None:
    spec = {
        "analysis": "describe",
        "variables": ["age", "ph.ecog", "sex"],
        "where": {"field": "time", "op": ">", "value": 100},
    }
    result = _runner(edge_dbs).run(_task(spec))
    assert result.status is ResultStatus.OK, result.message
    cohort = lung[lung["time"] > 100]
    complete = cohort.dropna(subset=["age", "ph.ecog", "sex"])
    payload = result.payload
    assert payload["n"] == len(complete) == 10
    assert payload["n_excluded_missing"] == len(cohort) - len(complete) == 3
    age = payload["variables"]["age"]
    assert age["n"] == len(complete)
    assert age["sum"] == pytest.approx(complete["age"].sum())
    assert age["sum_sq"] == pytest.approx((complete["age"] ** 2).sum())
    assert age["sum"] / age["n"] == pytest.approx(complete["age"].mean())
    ecog = payload["variables"]["ph.ecog"]
    assert ecog["sum"] == pytest.approx(complete["ph.ecog"].sum())
    assert "min" not in age and "max" not in age
    counts = complete["sex"].value_counts().to_dict()
    assert payload["variables"]["sex"]["counts"] == counts


def test_missing_below_k_is_left_out_and_the_count_suppressed(
    edge_dbs: EdgeDbs, lung: pd.DataFrame
) -> None:
    result = _runner(edge_dbs).run(_task({"analysis": "describe", "variables": ["age"]}))
    assert result.payload["n"] == 13
    assert result.payload["n_excluded_missing"] == SUPPRESSED  # one patient without age


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        ({"analysis": "count", "dataset": "registry2"}, "registry2"),
        ({"analysis": "describe", "variables": ["weight_kg"]}, "weight_kg"),
        ({"analysis": "count", "where": {"field": "stage", "op": "=", "value": "I"}}, "stage"),
        ({"analysis": "survival_forest"}, "survival_forest"),
        ({"analysis": "describe"}, "variables"),
        ({"analysis": "count", "round_params": [1, 2]}, "round_params"),
    ],
)
def test_bad_requests_fail_with_the_name_in_the_message(
    edge_dbs: EdgeDbs, lung: pd.DataFrame, spec: dict[str, Any], name: str
) -> None:
    runner = _runner(edge_dbs, analyses={spec["analysis"]: Decision.AUTO})
    result = runner.run(_task(spec))
    assert result.status is ResultStatus.FAILED
    assert name in result.message
    assert result.payload == {}


def test_task_and_spec_disagreeing_on_the_analysis_fails(
    edge_dbs: EdgeDbs, lung: pd.DataFrame
) -> None:
    task = _task({"analysis": "describe", "variables": ["age"]})
    sneaky = TaskAssignment(**{**task.__dict__, "analysis": "count"})
    result = _runner(edge_dbs).run(sneaky)
    assert result.status is ResultStatus.FAILED
    assert "'count'" in result.message and "'describe'" in result.message


def test_policy_deny_refuses_without_running(edge_dbs: EdgeDbs, lung: pd.DataFrame) -> None:
    runner = _runner(edge_dbs, analyses={"count": Decision.DENY})
    task = _task({"analysis": "count"})
    assert runner.decide(task) is TaskDecision.REJECTED
    result = runner.run(task, approved=True)
    assert result.status is ResultStatus.REFUSED
    assert "denies" in result.message and result.payload == {}


def test_manual_task_is_not_run_until_approved(edge_dbs: EdgeDbs, lung: pd.DataFrame) -> None:
    runner = _runner(edge_dbs, analyses={"count": Decision.MANUAL})
    task = _task({"analysis": "count"})
    assert runner.decide(task) is TaskDecision.AWAITING_APPROVAL
    unapproved = runner.run(task)
    assert unapproved.status is ResultStatus.REFUSED
    assert "approval" in unapproved.message and unapproved.payload == {}
    approved = runner.run(task, approved=True)
    assert approved.status is ResultStatus.OK
    assert approved.payload == {"n": len(ROWS)}


def test_analysis_without_a_disclosure_rule_is_refused(
    edge_dbs: EdgeDbs, lung: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge_node import disclosure

    monkeypatch.setattr(disclosure, "_RULES", {})
    result = _runner(edge_dbs).run(_task({"analysis": "count"}))
    assert result.status is ResultStatus.REFUSED
    assert "no disclosure rule" in result.message


def test_an_unexpected_error_becomes_failed_without_its_details(
    edge_dbs: EdgeDbs, lung: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edge_node.runner as runner_module

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("patient 张三 has a bad value")

    monkeypatch.setattr(runner_module, "control", boom)
    result = _runner(edge_dbs).run(_task({"analysis": "count"}))
    assert result.status is ResultStatus.FAILED
    assert "ValueError" in result.message
    assert "张三" not in result.message
