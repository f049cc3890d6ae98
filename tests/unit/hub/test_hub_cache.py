"""The hub's result cache (F7): same question, same sites, same data → the same envelope,
without asking the sites again."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hub import audit
from hub.api.app import create_app
from hub.auth import UserView
from hub.bootstrap import Hub
from hub.db.models import Role, StudyStatus
from protocol.messages import ResultStatus, TaskResult
from shared_cdm.errors import InvalidInput
from tests.unit.hub.hub_testkit import FakeClock, make_user, register_nodes

SITES = ("A", "B", "C")
SPEC = {"analysis": "describe", "dataset": "default", "variables": ["age"]}
# The same question written another way: key order does not matter.
SAME_SPEC = {"variables": ["age"], "dataset": "default", "analysis": "describe"}
PAYLOAD = {
    "n": 10,
    "variables": {"age": {"type": "numeric", "n": 10, "sum": 600.0, "sum_sq": 36500.0}},
}


def _run(hub: Hub, researcher: UserView, coordinator: UserView, spec: dict[str, Any]) -> str:
    """Submit, approve and answer from every site; the study's id."""
    study = hub.studies.submit(researcher, spec)
    assert study.status is StudyStatus.PENDING_APPROVAL
    hub.studies.approve(coordinator, study.id)
    for site in study.sites:
        (task,) = hub.studies.pull(site)
        hub.studies.submit_result(site, TaskResult(task.task_id, ResultStatus.OK, PAYLOAD))
    assert hub.studies.get(researcher, study.id).status is StudyStatus.COMPLETED
    return study.id


def _actions(hub: Hub, object_id: str) -> list[str]:
    with hub.db.session() as session:
        entries = audit.recent(session, limit=1000)
    return [e.action for e in reversed(entries) if e.object_id == object_id]


def test_the_same_question_is_answered_from_the_cache_without_tasks(
    hub: Hub, researcher: UserView, coordinator: UserView
) -> None:
    register_nodes(hub, *SITES)
    first_id = _run(hub, researcher, coordinator, SPEC)

    again = hub.studies.submit(researcher, SAME_SPEC, title="once more")
    assert again.status is StudyStatus.COMPLETED
    assert again.cached_from == first_id
    first = hub.studies.get(researcher, first_id)
    assert again.result == first.result
    assert again.result is not None and again.result["n"] == 30
    assert hub.studies.tasks(again.id) == []
    assert all(hub.studies.pull(site) == [] for site in SITES)
    assert _actions(hub, again.id) == ["study.submitted", "study.served_from_cache"]
    with hub.db.session() as session:
        (served,) = [
            e for e in audit.recent(session, limit=1000) if e.action == "study.served_from_cache"
        ]
    assert served.details == {"cached_from": first_id}


def test_a_new_dataset_version_at_any_site_invalidates_the_cache(
    hub: Hub, researcher: UserView, coordinator: UserView
) -> None:
    register_nodes(hub, *SITES)
    first_id = _run(hub, researcher, coordinator, SPEC)
    register_nodes(hub, "B", version="v2")  # B updated its data

    fresh = hub.studies.submit(researcher, SPEC)
    assert fresh.status is StudyStatus.PENDING_APPROVAL
    assert fresh.cached_from is None
    hub.studies.approve(coordinator, fresh.id)
    assert len(hub.studies.tasks(fresh.id)) == len(SITES)
    for site in SITES:
        (task,) = hub.studies.pull(site)
        hub.studies.submit_result(site, TaskResult(task.task_id, ResultStatus.OK, PAYLOAD))
    result = hub.studies.get(researcher, fresh.id).result
    assert result is not None
    assert {s["name"]: s["dataset_version"] for s in result["sites"]} == {
        "A": "v1",
        "B": "v2",
        "C": "v1",
    }
    # The fresh answer is what the next identical study gets; the old one is never used.
    third = hub.studies.submit(researcher, SPEC)
    assert third.cached_from == fresh.id != first_id


def test_no_cache_asks_the_sites_again_and_refreshes_the_cache(
    hub: Hub, researcher: UserView, coordinator: UserView, clock: FakeClock
) -> None:
    register_nodes(hub, *SITES)
    _run(hub, researcher, coordinator, SPEC)
    clock.advance(60)
    bypass_id = _run(hub, researcher, coordinator, {**SPEC, "no_cache": True})
    assert hub.studies.get(researcher, bypass_id).cached_from is None
    assert len(hub.studies.tasks(bypass_id)) == len(SITES)
    assert hub.studies.submit(researcher, SPEC).cached_from == bypass_id


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_no_cache_must_be_a_boolean(hub: Hub, researcher: UserView, value: Any) -> None:
    register_nodes(hub, *SITES)
    with pytest.raises(InvalidInput, match="no_cache"):
        hub.studies.submit(researcher, {**SPEC, "no_cache": value})


def test_other_sites_another_researcher_or_another_spec_are_not_served(
    hub: Hub, researcher: UserView, coordinator: UserView
) -> None:
    register_nodes(hub, *SITES)
    _run(hub, researcher, coordinator, SPEC)
    olga = make_user(hub, "olga", Role.RESEARCHER)[0]
    misses = [
        hub.studies.submit(researcher, SPEC, sites=["A", "B"]),
        # Each site's ledger counts releases per researcher: no sharing across owners.
        hub.studies.submit(olga, SPEC),
        hub.studies.submit(researcher, {**SPEC, "variables": ["age", "sex"]}),
    ]
    assert [(m.status, m.cached_from) for m in misses] == [(StudyStatus.PENDING_APPROVAL, None)] * 3


def test_a_failed_study_is_never_served(
    hub: Hub, researcher: UserView, coordinator: UserView
) -> None:
    register_nodes(hub, *SITES)
    study = hub.studies.submit(researcher, SPEC)
    hub.studies.approve(coordinator, study.id)
    for site in SITES:
        (task,) = hub.studies.pull(site)
        hub.studies.submit_result(site, TaskResult(task.task_id, ResultStatus.REFUSED, {}))
    assert hub.studies.get(researcher, study.id).status is StudyStatus.FAILED
    assert hub.studies.submit(researcher, SPEC).status is StudyStatus.PENDING_APPROVAL


def test_data_changed_during_the_study_makes_its_result_unfit_for_the_cache(
    hub: Hub, researcher: UserView, coordinator: UserView
) -> None:
    register_nodes(hub, *SITES)
    study = hub.studies.submit(researcher, SPEC)
    hub.studies.approve(coordinator, study.id)
    register_nodes(hub, "C", version="v2")  # between dispatch and answer
    for site in SITES:
        (task,) = hub.studies.pull(site)
        hub.studies.submit_result(site, TaskResult(task.task_id, ResultStatus.OK, PAYLOAD))
    assert hub.studies.get(researcher, study.id).status is StudyStatus.COMPLETED
    assert hub.studies.submit(researcher, SPEC).cached_from is None


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub.settings, hub=hub)) as c:
        yield c


def test_the_study_view_names_the_cached_source(
    hub: Hub, client: TestClient, coordinator: UserView
) -> None:
    rita, token = make_user(hub, "ria", Role.RESEARCHER)
    register_nodes(hub, *SITES)
    first_id = _run(hub, rita, coordinator, SPEC)
    headers = {"Authorization": f"Bearer {token}"}
    created = client.post("/api/v1/studies", json={"spec": SAME_SPEC}, headers=headers).json()
    assert created["status"] == "completed"
    body = client.get(f"/api/v1/studies/{created['id']}", headers=headers).json()
    assert body["cached_from"] == first_id
    assert body["result"]["n"] == 30
    assert client.get(f"/api/v1/studies/{created['id']}/tasks", headers=headers).json() == []
