"""Every registered analysis through the study service: submit, dispatch, rounds,
result; and multi-round studies carried on by a restarted hub."""

from __future__ import annotations

from typing import Any

import pytest

from federated_ml.analyses import known_analyses
from hub.auth import UserView
from hub.bootstrap import Hub
from hub.db.models import StudyStatus
from hub.db.session import Database
from hub.studies.service import StudyService
from tests.unit.hub.fake_sites import FakeSites, reference_result, synthetic_sites
from tests.unit.hub.hub_testkit import FakeClock, register_nodes

SITES = {"north": 60, "south": 75, "west": 50}
SURVIVAL = {"time": "time", "event": "status"}
SPECS: dict[str, dict[str, Any]] = {
    "count": {"analysis": "count", "where": {"field": "age", "op": ">=", "value": 60}},
    "describe": {"analysis": "describe", "variables": ["age", "stage"], "histograms": {"age": 10}},
    "cox": {"analysis": "cox", **SURVIVAL, "covariates": ["age", "sex"]},
    "cox_pooled": {"analysis": "cox", **SURVIVAL, "covariates": ["age", "sex"], "strata": None},
    "cox_breslow": {"analysis": "cox", **SURVIVAL, "covariates": ["age"], "ties": "breslow"},
    "logistic": {"analysis": "logistic", "outcome": "response", "covariates": ["age", "sex"]},
    "kaplan_meier": {"analysis": "kaplan_meier", **SURVIVAL, "group": "arm"},
    "kaplan_meier_exact": {
        "analysis": "kaplan_meier",
        **SURVIVAL,
        "group": "arm",
        "time_grid_days": "exact",
    },
    "logrank": {"analysis": "logrank", **SURVIVAL, "group": "arm"},
    "crosstab": {"analysis": "crosstab", "rows": "arm", "cols": "stage"},
    "ttest": {"analysis": "ttest", "value": "marker", "group": "arm"},
}


@pytest.fixture(scope="module")
def frames() -> dict[str, Any]:
    return synthetic_sites(SITES)


def test_every_registered_analysis_has_a_hub_case() -> None:
    # ML studies need the hub's Flower coordinator: tests/unit/hub/test_hub_ml.py.
    elsewhere = {"flower"}
    assert {spec["analysis"] for spec in SPECS.values()} | elsewhere == set(known_analyses())


@pytest.mark.parametrize("case", sorted(SPECS))
def test_each_analysis_runs_through_the_hub_to_the_pooled_result(
    hub: Hub,
    researcher: UserView,
    coordinator: UserView,
    frames: dict[str, Any],
    case: str,
) -> None:
    spec = SPECS[case]
    if "where" in spec:  # the fake sites apply no cohort condition: filter their frames
        frames = {s: f[f["age"] >= 60] for s, f in frames.items()}
    register_nodes(hub, *SITES)
    study = hub.studies.submit(researcher, spec)
    hub.studies.approve(coordinator, study.id)
    sites = FakeSites(frames)
    rounds = sites.drive(study.id, lambda: hub.studies, researcher)

    done = hub.studies.get(researcher, study.id)
    assert done.status is StudyStatus.COMPLETED, done.error
    assert done.result is not None
    assert done.result["analysis"] == spec["analysis"]
    assert done.result["result"] == reference_result(frames, spec)
    assert [s["status"] for s in done.result["sites"]] == ["ok"] * len(SITES)
    tasks = hub.studies.tasks(study.id)
    assert len(tasks) == rounds * len(SITES)
    assert max(t.round for t in tasks) == rounds - 1


def _hub_service(db: Database, clock: FakeClock) -> StudyService:
    return StudyService(db, task_deadline_s=600, clock=clock)


@pytest.mark.parametrize("case", ["cox", "cox_pooled"])
def test_a_cox_study_survives_hub_restarts_between_rounds(
    hub: Hub,
    researcher: UserView,
    coordinator: UserView,
    frames: dict[str, Any],
    clock: FakeClock,
    case: str,
) -> None:
    spec = {**SPECS[case], "no_cache": True}  # the second run must not reuse the first
    register_nodes(hub, *SITES)
    sites = FakeSites(frames)

    steady = hub.studies.submit(researcher, spec)
    hub.studies.approve(coordinator, steady.id)
    steady_rounds = sites.drive(steady.id, lambda: hub.studies, researcher)

    interrupted = hub.studies.submit(researcher, spec)
    hub.studies.approve(coordinator, interrupted.id)
    opened: list[Database] = []

    def restarted() -> StudyService:
        # A new process: its own engine and service over the same database.
        for db in opened:
            db.dispose()
        opened[:] = [Database.from_url(hub.settings.db_url)]
        service = _hub_service(opened[0], clock)
        service.sweep()  # what a starting hub does first
        return service

    try:
        rounds = sites.drive(interrupted.id, restarted, researcher)
    finally:
        for db in opened:
            db.dispose()

    assert rounds == steady_rounds > 2  # several Newton rounds, each after a restart
    first = hub.studies.get(researcher, steady.id)
    second = hub.studies.get(researcher, interrupted.id)
    assert (first.status, second.status) == (StudyStatus.COMPLETED, StudyStatus.COMPLETED)
    assert first.result is not None and second.result is not None
    assert second.result["result"] == first.result["result"]
    assert second.result["result"] == reference_result(frames, SPECS[case])
    assert second.cached_from is None


def test_every_task_tells_the_site_how_many_sites_receive_its_round(
    hub: Hub,
    researcher: UserView,
    coordinator: UserView,
    frames: dict[str, Any],
    clock: FakeClock,
) -> None:
    register_nodes(hub, *SITES)
    study = hub.studies.submit(researcher, SPECS["cox"])
    hub.studies.approve(coordinator, study.id)
    sites = FakeSites(frames)
    sites.silent.add("west")
    for site in ("north", "south"):
        sites.answer(hub.studies, site)
    (pending,) = hub.studies.pull("west")
    assert pending.spec["round_params"]["n_sites"] == 3
    # west never answers: after its deadline the next round goes to two sites.
    clock.advance(601)
    hub.studies.sweep()
    (next_round,) = hub.studies.pull("north")
    assert next_round.round == 1
    assert next_round.spec["round_params"]["n_sites"] == 2
    assert len(next_round.spec["round_params"]["beta"]) == 2
