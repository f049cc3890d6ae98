"""The coordinating center's minimum number of sites per result."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hub import audit
from hub.api.app import create_app
from hub.auth import UserView
from hub.bootstrap import Hub, build_hub
from hub.db.models import Role, StudyStatus
from hub.db.session import Database
from hub.settings import load_settings
from protocol.messages import ResultStatus, TaskResult
from shared_cdm.errors import InvalidInput
from tests.unit.hub.fake_sites import FakeSites, synthetic_sites
from tests.unit.hub.hub_testkit import FakeClock, make_user, register_nodes

COUNT = {"analysis": "count"}
LOGRANK = {"analysis": "logrank", "time": "time", "event": "status", "group": "arm"}


@pytest.fixture
def strict(tmp_path: Path, db_url: str, hub_db: Database, clock: FakeClock) -> Hub:
    """A hub on the default settings: count and describe need three sites."""
    settings = load_settings(tmp_path / "strict-home", db_url=db_url, task_deadline_s=600)
    return build_hub(settings, db=hub_db, clock=clock)


@pytest.fixture
def people(strict: Hub) -> tuple[UserView, UserView]:
    return (
        make_user(strict, "rita", Role.RESEARCHER)[0],
        make_user(strict, "carl", Role.COORDINATOR)[0],
    )


def test_default_minimum_is_three_for_count_and_describe_only(strict: Hub) -> None:
    assert strict.settings.min_sites == {"count": 3, "describe": 3}


@pytest.mark.parametrize(
    ("spec", "needed"),
    [
        (COUNT, "count needs at least 3 sites (the hub's minimum sites per count result)"),
        ({"analysis": "describe", "variables": ["age"]}, "describe needs at least 3 sites"),
        (LOGRANK, "logrank needs at least 3 sites (secure aggregation"),
    ],
)
def test_a_study_targeting_fewer_sites_is_refused_at_submission(
    strict: Hub, people: tuple[UserView, UserView], spec: dict[str, Any], needed: str
) -> None:
    researcher, _ = people
    register_nodes(strict, "A", "B", "C")
    with pytest.raises(InvalidInput, match=re.escape(needed)) as caught:
        strict.studies.submit(researcher, spec, sites=["A", "B"])
    assert caught.value.code == "too_few_sites"
    assert "this study targets 2: A, B" in caught.value.message
    assert strict.studies.list_visible(researcher) == []


def test_unlisted_analyses_need_one_site(strict: Hub, people: tuple[UserView, UserView]) -> None:
    researcher, _ = people
    register_nodes(strict, "A")
    cox = {"analysis": "cox", "time": "t", "event": "e", "covariates": ["age"]}
    assert strict.studies.submit(researcher, cox).status is StudyStatus.PENDING_APPROVAL


def test_rest_submission_below_the_minimum_is_422_naming_it(strict: Hub) -> None:
    _, token = make_user(strict, "rita", Role.RESEARCHER)
    register_nodes(strict, "A", "B")
    with TestClient(create_app(strict.settings, hub=strict)) as client:
        response = client.post(
            "/api/v1/studies",
            json={"spec": COUNT},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 422
    assert response.json()["code"] == "too_few_sites"
    assert "at least 3 sites" in response.json()["detail"]


def _answer(hub: Hub, node: str, status: ResultStatus, payload: dict[str, Any]) -> None:
    (task,) = hub.studies.pull(node)
    hub.studies.submit_result(node, TaskResult(task.task_id, status, payload, "policy says no"))


def test_fewer_sites_answering_than_the_minimum_fails_without_a_result(
    strict: Hub, people: tuple[UserView, UserView], clock: FakeClock
) -> None:
    researcher, coordinator = people
    register_nodes(strict, "A", "B", "C", "D")
    study = strict.studies.submit(researcher, COUNT)
    strict.studies.approve(coordinator, study.id)
    _answer(strict, "A", ResultStatus.OK, {"n": 40})
    _answer(strict, "B", ResultStatus.OK, {"n": 35})
    _answer(strict, "C", ResultStatus.REFUSED, {})
    clock.advance(601)  # D never answers
    strict.studies.sweep()

    failed = strict.studies.get(researcher, study.id)
    assert failed.status is StudyStatus.FAILED
    assert failed.result is None
    assert failed.error == (
        "count needs results from at least 3 sites, but only 2 answered in round 0 (A, B); "
        "did not answer: C (refused: policy says no), D (expired). No result is stored."
    )
    with strict.db.session() as session:
        (entry,) = [e for e in audit.recent(session, limit=100) if e.action == "study.failed"]
    assert entry.details["error"] == failed.error


def test_the_minimum_holds_in_every_round_of_a_multi_round_study(
    tmp_path: Path, db_url: str, hub_db: Database, clock: FakeClock
) -> None:
    settings = load_settings(
        tmp_path / "cox-home", db_url=db_url, task_deadline_s=600, min_sites={"cox": 3}
    )
    hub = build_hub(settings, db=hub_db, clock=clock)
    researcher = make_user(hub, "rita", Role.RESEARCHER)[0]
    coordinator = make_user(hub, "carl", Role.COORDINATOR)[0]
    frames = synthetic_sites({"A": 40, "B": 40, "C": 40})
    register_nodes(hub, *frames)
    spec = {"analysis": "cox", "time": "time", "event": "status", "covariates": ["age"]}
    study = hub.studies.submit(researcher, spec)
    hub.studies.approve(coordinator, study.id)
    sites = FakeSites(frames)
    for site in frames:  # round 0: everyone
        sites.answer(hub.studies, site)
    sites.answer(hub.studies, "A")  # round 1: C drops out, B fails
    (task_b,) = hub.studies.pull("B")
    hub.studies.submit_result("B", TaskResult(task_b.task_id, ResultStatus.FAILED, {}, "disk"))
    clock.advance(601)
    hub.studies.sweep()

    failed = hub.studies.get(researcher, study.id)
    assert failed.status is StudyStatus.FAILED
    assert failed.result is None
    assert failed.error is not None
    assert "only 1 answered in round 1 (A)" in failed.error
    assert "B (failed: disk), C (expired)" in failed.error


@pytest.fixture
def _no_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("ONCOFED_HUB_MIN_SITES", raising=False)
    yield


@pytest.mark.usefixtures("_no_env")
def test_min_sites_table_in_hub_toml_overrides_per_analysis(tmp_path: Path) -> None:
    (tmp_path / "hub.toml").write_text("[min_sites]\ncox = 2\ncount = 5\n", encoding="utf-8")
    assert load_settings(tmp_path).min_sites == {"count": 5, "describe": 3, "cox": 2}


@pytest.mark.parametrize(
    ("table", "message"),
    [("coxx = 2", "unknown analysis coxx"), ("count = 0", "at least 1 for count")],
)
@pytest.mark.usefixtures("_no_env")
def test_min_sites_table_refuses_unknown_analyses_and_zero(
    tmp_path: Path, table: str, message: str
) -> None:
    (tmp_path / "hub.toml").write_text(f"[min_sites]\n{table}\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match=message):
        load_settings(tmp_path)


def test_min_sites_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONCOFED_HUB_MIN_SITES", '{"describe": 4}')
    assert load_settings(tmp_path).min_sites == {"count": 3, "describe": 4}
