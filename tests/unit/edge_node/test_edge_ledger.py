"""The disclosure ledger through the task runner: differencing (nested cohorts and
complements), repeats, the DP budget, the result cache; on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from edge_node.datasets import add_dataset
from edge_node.ledger.service import Ledger
from edge_node.policy import Decision, Policy
from edge_node.runner import CACHED_NOTE, TaskRunner
from federated_ml.analyses.base import SUPPRESSED
from protocol.messages import ResultStatus, TaskAssignment, TaskResult
from tests.unit.edge_node.conftest import EdgeDbs

K = 5
N = 40


def table(n: int = N) -> pd.DataFrame:
    """Patients 1..n, age 30 + id; weight missing for patients 1 and 2."""
    ids = list(range(1, n + 1))
    return pd.DataFrame(
        {
            "id": ids,
            "age": [30 + i for i in ids],
            "sex": ["m" if i % 2 else "f" for i in ids],
            "weight": [None if i <= 2 else 50 + i for i in ids],
        }
    )


@pytest.fixture
def site(edge_dbs: EdgeDbs, tmp_path: Path) -> EdgeDbs:
    path = tmp_path / "site.csv"
    table().to_csv(path, index=False)
    add_dataset("default", path, analysis_engine=edge_dbs.analysis, registry=edge_dbs.registry)
    return edge_dbs


def runner(dbs: EdgeDbs, **policy: Any) -> TaskRunner:
    analyses = {a: Decision.AUTO for a in ("count", "describe")}
    return TaskRunner.create(dbs.analysis, dbs.state, Policy(K, analyses, **policy))


def ask(r: TaskRunner, spec: dict[str, Any], requester: str = "alice") -> TaskResult:
    task = TaskAssignment(
        task_id=str(uuid.uuid4()),
        study_id=f"study-{uuid.uuid4().hex[:6]}",
        round=0,
        analysis=str(spec["analysis"]),
        dataset="default",
        spec=spec,
        requester=requester,
        created_at=datetime.now(UTC),
    )
    return r.run(task)


def count(where: Any = None, **extra: Any) -> dict[str, Any]:
    return {"analysis": "count", **({"where": where} if where is not None else {}), **extra}


A = {"field": "age", "op": ">=", "value": 41}  # ids 11..40: 30 patients
A_MINUS_TWO = {"all": [A, {"field": "id", "op": "not_in", "value": [39, 40]}]}
A_MINUS_K = {"all": [A, {"field": "id", "op": "not_in", "value": [36, 37, 38, 39, 40]}]}


# --- differencing ---------------------------------------------------------------------------


def test_a_cohort_two_rows_smaller_than_one_released_is_refused(site: EdgeDbs) -> None:
    r = runner(site)
    first = ask(r, count(A))
    assert first.status is ResultStatus.OK and first.payload["n"] == 30
    second = ask(r, count(A_MINUS_TWO))
    assert second.status is ResultStatus.REFUSED
    assert "differencing" in second.message and second.payload == {}
    # k rows apart is fine: the difference itself meets the cell rule.
    assert ask(r, count(A_MINUS_K)).payload["n"] == 25


def test_the_larger_cohort_asked_second_is_refused_too(site: EdgeDbs) -> None:
    r = runner(site)
    assert ask(r, count(A_MINUS_TWO)).status is ResultStatus.OK
    assert ask(r, count(A)).status is ResultStatus.REFUSED


def test_a_complement_query_is_refused_against_the_dataset_total(site: EdgeDbs) -> None:
    r = runner(site)
    assert ask(r, count()).payload["n"] == N
    # Everyone but two: N minus it would be the count of those two.
    not_two = {"field": "id", "op": "in", "value": [7, 8], "negate": True}
    refused = ask(r, count(not_two))
    assert refused.status is ResultStatus.REFUSED and "differencing" in refused.message


def test_differencing_compares_row_sets_not_definitions(site: EdgeDbs) -> None:
    r = runner(site)
    assert ask(r, count({"field": "age", "op": ">", "value": 40})).payload["n"] == 30
    # A different tree for the same 30 rows: nothing new is revealed.
    same_rows = ask(r, count({"field": "id", "op": ">=", "value": 11}))
    assert same_rows.payload["n"] == 30


def test_describe_after_count_would_reveal_two_missing_values(site: EdgeDbs) -> None:
    r = runner(site)
    assert ask(r, count()).payload["n"] == N
    describe = ask(r, {"analysis": "describe", "variables": ["weight"]})
    # n = 38 complete cases against the released 40: 2 patients lack a weight.
    assert describe.status is ResultStatus.REFUSED and "differencing" in describe.message


def test_scope_requester_lets_another_requester_ask_and_scope_all_does_not(
    site: EdgeDbs,
) -> None:
    assert ask(runner(site), count(A), "alice").status is ResultStatus.OK
    assert ask(runner(site), count(A_MINUS_TWO), "bob").status is ResultStatus.OK
    strict = runner(site, differencing_scope="all")
    far = {"field": "age", "op": ">=", "value": 61}  # 10 rows: far from both
    assert ask(strict, count(far), "carol").status is ResultStatus.OK
    # Two rows off alice's cohort, asked by someone else.
    near = {"all": [A, {"field": "id", "op": "not_in", "value": [11, 12]}]}
    assert ask(strict, count(near), "carol").status is ResultStatus.REFUSED


# --- repeats and the cache ------------------------------------------------------------------


def test_repeats_beyond_the_limit_are_refused_and_cached_answers_count(site: EdgeDbs) -> None:
    r = runner(site, max_repeats=2)
    first, second = ask(r, count(A)), ask(r, count(A))
    assert first.payload == second.payload == {"n": 30}
    assert CACHED_NOTE not in first.disclosure and CACHED_NOTE in second.disclosure
    third = ask(r, count(A))
    assert third.status is ResultStatus.REFUSED and "repeats" in third.message
    assert ask(r, count(A), "bob").status is ResultStatus.OK  # repeats are per requester


def test_the_same_task_twice_is_one_release(site: EdgeDbs) -> None:
    r = runner(site, max_repeats=1)
    task = TaskAssignment(
        "t-same", "s-1", 0, "count", "default", count(A), "alice", datetime.now(UTC)
    )
    assert r.run(task).status is ResultStatus.OK
    assert r.run(task).status is ResultStatus.OK  # recomputed after a crash: not a repeat
    assert len(Ledger(site.state, Policy()).releases()) == 1


def test_a_data_update_invalidates_the_cache(site: EdgeDbs, tmp_path: Path) -> None:
    r = runner(site)
    ask(r, count())
    assert CACHED_NOTE in ask(r, count()).disclosure
    path = tmp_path / "v2.csv"
    table(N + 10).to_csv(path, index=False)
    add_dataset("default", path, analysis_engine=site.analysis, registry=site.registry)
    fresh = ask(r, count())
    assert fresh.payload == {"n": N + 10} and CACHED_NOTE not in fresh.disclosure


# --- differential privacy -------------------------------------------------------------------


def test_dp_counts_are_noisy_and_their_epsilon_is_recorded(site: EdgeDbs) -> None:
    r = runner(site)
    cohorts = [{"field": "age", "op": ">=", "value": v} for v in (31, 41, 51)]  # 40, 30, 20
    truth = [40, 30, 20]
    results = [ask(r, count(w, dp={"epsilon": 0.02})) for w in cohorts]
    assert all(res.status is ResultStatus.OK for res in results)
    released = [res.payload["n"] for res in results]
    # Discrete Laplace at scale 50: all three exact by chance has probability ~1e-6.
    assert released != truth
    assert all(v == SUPPRESSED or v >= K for v in released)  # the cell rule, on noisy values
    assert any(note.startswith("dp: 1 count(s) noised") for note in results[0].disclosure)
    budget = Ledger(site.state, Policy()).budget()
    assert budget.per_requester["alice"] == pytest.approx(0.06)


def test_a_request_over_the_requesters_budget_is_refused(site: EdgeDbs) -> None:
    r = runner(site, epsilon_budget_per_requester=1.0)
    assert ask(r, count(A, dp={"epsilon": 0.6})).status is ResultStatus.OK
    over = ask(r, count(A_MINUS_K, dp={"epsilon": 0.6}))
    assert over.status is ResultStatus.REFUSED and "over budget" in over.message
    assert over.payload == {}
    # The same question again is the same noisy answer: nothing new leaves, nothing spent.
    again = ask(r, count(A, dp={"epsilon": 0.6}))
    assert again.status is ResultStatus.OK and CACHED_NOTE in again.disclosure
    assert Ledger(site.state, Policy()).budget().per_requester["alice"] == pytest.approx(0.6)


def test_a_request_over_the_sites_total_budget_is_refused(site: EdgeDbs) -> None:
    r = runner(site, epsilon_budget_total=1.0)
    assert ask(r, count(A, dp={"epsilon": 0.6}), "alice").status is ResultStatus.OK
    over = ask(r, count(A_MINUS_K, dp={"epsilon": 0.6}), "bob")
    assert over.status is ResultStatus.REFUSED and "total epsilon budget" in over.message


def test_dp_describe_noises_categories_and_every_histogram_bin(site: EdgeDbs) -> None:
    r = runner(site)
    spec = {
        "analysis": "describe",
        "variables": ["sex", "age"],
        "histograms": {"age": [30, 50, 70, 90]},
        "dp": {"epsilon": 1.0},
    }
    result = ask(r, spec)
    assert result.status is ResultStatus.OK, result.message
    hist = result.payload["variables"]["age"]["histogram"]
    assert set(hist) == {"30.0", "50.0", "70.0"}  # the empty 70-90 bin is there too
    assert any("5 count(s) noised" in n for n in result.disclosure)
    widths = ask(r, {**spec, "histograms": {"age": 10}})
    assert widths.status is ResultStatus.FAILED and "bin edges as a list" in widths.message


def test_dp_is_refused_for_analyses_it_does_not_cover(site: EdgeDbs) -> None:
    spec = {"analysis": "cox", "time": "age", "event": "id", "covariates": ["weight"]}
    r = TaskRunner.create(site.analysis, site.state, Policy(K, {"cox": Decision.AUTO}, min_sites=1))
    result = ask(r, {**spec, "dp": {"epsilon": 1.0}})
    assert result.status is ResultStatus.FAILED and "dp is available for" in result.message
