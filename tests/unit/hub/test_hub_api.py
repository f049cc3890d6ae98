from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.bootstrap import Hub
from hub.db.models import Role
from protocol.messages import ResultStatus, TaskResult
from tests.unit.hub.hub_testkit import FakeClock, contract_sites, make_user, register_nodes

COUNT = {"analysis": "count"}


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub.settings, hub=hub)) as c:
        yield c


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def tokens(hub: Hub) -> dict[str, str]:
    return {
        name: make_user(hub, name, role)[1]
        for name, role in (
            ("rita", Role.RESEARCHER),
            ("olga", Role.RESEARCHER),
            ("carl", Role.COORDINATOR),
        )
    }


def _submit(client: TestClient, token: str, **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/studies", json={"spec": COUNT, **body}, headers=_auth(token))
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


def test_healthz_needs_no_token(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic cml0YTpwdw=="}],
)
def test_no_or_bad_token_is_401(client: TestClient, headers: dict[str, str]) -> None:
    response = client.get("/api/v1/studies", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["code"] in {"no_token", "bad_token"}


def test_study_lifecycle_over_rest(client: TestClient, hub: Hub, tokens: dict[str, str]) -> None:
    register_nodes(hub, "A", "B")
    created = _submit(client, tokens["rita"], title="lung count", sites=["A", "B"])
    assert created["status"] == "pending_approval"
    study_id = created["id"]

    approved = client.post(f"/api/v1/studies/{study_id}/approve", headers=_auth(tokens["carl"]))
    assert approved.status_code == 200
    assert approved.json() == {"id": study_id, "status": "running"}

    for node, n in (("A", 11), ("B", 13)):
        (task,) = hub.studies.pull(node)
        hub.studies.submit_result(node, TaskResult(task.task_id, ResultStatus.OK, {"n": n}))

    body = client.get(f"/api/v1/studies/{study_id}", headers=_auth(tokens["rita"])).json()
    assert body["status"] == "completed"
    assert (body["title"], body["owner"], body["sites"], body["error"]) == (
        "lung count",
        "rita",
        ["A", "B"],
        None,
    )
    assert body["spec"] == COUNT
    assert body["result"]["n"] == 24
    assert contract_sites(body["result"]) == [
        {"name": "A", "n": 11, "status": "ok"},
        {"name": "B", "n": 13, "status": "ok"},
    ]
    assert body["cached_from"] is None
    datetime.fromisoformat(body["created_at"])
    assert body["updated_at"] >= body["created_at"]


def test_researcher_cannot_approve_403(
    client: TestClient, hub: Hub, tokens: dict[str, str]
) -> None:
    register_nodes(hub, "A")
    study_id = _submit(client, tokens["rita"])["id"]
    for action in ("approve", "reject"):
        response = client.post(
            f"/api/v1/studies/{study_id}/{action}", headers=_auth(tokens["rita"])
        )
        assert response.status_code == 403
    status = client.get(f"/api/v1/studies/{study_id}", headers=_auth(tokens["rita"])).json()
    assert status["status"] == "pending_approval"


def test_researcher_cannot_read_anothers_study_404(
    client: TestClient, hub: Hub, tokens: dict[str, str]
) -> None:
    register_nodes(hub, "A")
    study_id = _submit(client, tokens["rita"])["id"]
    assert (
        client.get(f"/api/v1/studies/{study_id}", headers=_auth(tokens["olga"])).status_code == 404
    )
    assert client.get("/api/v1/studies", headers=_auth(tokens["olga"])).json() == []
    listed = client.get("/api/v1/studies", headers=_auth(tokens["carl"])).json()
    assert [s["id"] for s in listed] == [study_id]
    assert (
        client.get(f"/api/v1/studies/{study_id}", headers=_auth(tokens["carl"])).status_code == 200
    )


def test_reject_with_reason(client: TestClient, hub: Hub, tokens: dict[str, str]) -> None:
    register_nodes(hub, "A")
    study_id = _submit(client, tokens["rita"])["id"]
    response = client.post(
        f"/api/v1/studies/{study_id}/reject",
        json={"reason": "duplicate of an earlier study"},
        headers=_auth(tokens["carl"]),
    )
    assert response.json() == {"id": study_id, "status": "rejected"}
    body = client.get(f"/api/v1/studies/{study_id}", headers=_auth(tokens["rita"])).json()
    assert "duplicate of an earlier study" in body["error"]
    again = client.post(f"/api/v1/studies/{study_id}/approve", headers=_auth(tokens["carl"]))
    assert again.status_code == 409


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"spec": {"analysis": "nope"}}, "unknown analysis"),
        ({"spec": {"analysis": "describe"}}, "variable"),
        ({"spec": COUNT, "sites": ["A", "X"]}, "unknown site"),
        ({"title": "no spec"}, "spec"),
        ({"spec": COUNT, "colour": "red"}, "colour"),
    ],
)
def test_invalid_study_is_422_with_a_clear_message(
    client: TestClient, hub: Hub, tokens: dict[str, str], body: dict[str, Any], fragment: str
) -> None:
    register_nodes(hub, "A")
    response = client.post("/api/v1/studies", json=body, headers=_auth(tokens["rita"]))
    assert response.status_code == 422
    assert fragment in response.json()["detail"]


def test_unknown_study_is_404(client: TestClient, tokens: dict[str, str]) -> None:
    response = client.get("/api/v1/studies/does-not-exist", headers=_auth(tokens["carl"]))
    assert response.status_code == 404
    assert response.json()["code"] == "study_not_found"


def test_nodes_listing_for_coordinators_with_online_status(
    client: TestClient, hub: Hub, tokens: dict[str, str], clock: FakeClock
) -> None:
    register_nodes(hub, "A")
    clock.advance(hub.settings.node_offline_after_s + 1)
    register_nodes(hub, "B")
    assert client.get("/api/v1/nodes", headers=_auth(tokens["rita"])).status_code == 403
    nodes = client.get("/api/v1/nodes", headers=_auth(tokens["carl"])).json()
    assert [(n["name"], n["status"]) for n in nodes] == [("A", "offline"), ("B", "online")]
    assert nodes[0]["datasets"] == [
        {
            "name": "default",
            "kind": "flat",
            "version": "v1",
            "columns": ["age", "sex"],
            "data_quality": None,
        }
    ]
    assert hub.nodes.touch("A") is True
    nodes = client.get("/api/v1/nodes", headers=_auth(tokens["carl"])).json()
    assert nodes[0]["status"] == "online"


def test_audit_for_coordinators_records_actions_without_payloads(
    client: TestClient, hub: Hub, tokens: dict[str, str]
) -> None:
    register_nodes(hub, "A")
    study_id = _submit(client, tokens["rita"])["id"]
    client.post(f"/api/v1/studies/{study_id}/approve", headers=_auth(tokens["carl"]))
    (task,) = hub.studies.pull("A")
    result = TaskResult(task.task_id, ResultStatus.OK, {"n": 4242})
    hub.studies.submit_result("A", result)
    hub.studies.submit_result("A", result)

    assert client.get("/api/v1/audit", headers=_auth(tokens["rita"])).status_code == 403
    entries = client.get("/api/v1/audit", headers=_auth(tokens["carl"])).json()
    actions = [e["action"] for e in reversed(entries)]
    assert actions == [
        "node.registered",
        "study.submitted",
        "study.approved",
        "task.dispatched",
        "task.delivered",
        "result.accepted",
        "study.completed",
        "result.duplicate",
    ]
    by_action = {e["action"]: e for e in entries}
    assert by_action["study.submitted"]["actor"] == "user:rita"
    assert by_action["study.approved"]["actor"] == "user:carl"
    assert by_action["result.accepted"]["actor"] == "node:A"
    assert by_action["result.accepted"]["object_id"] == task.task_id
    assert "4242" not in str(entries)  # the payload never enters the log
    verified = client.get("/api/v1/audit/verify", headers=_auth(tokens["carl"])).json()
    assert verified == {"ok": True, "entries": len(entries), "first_bad_id": None, "reason": ""}
    page = client.get(
        "/api/v1/audit", params={"limit": 2, "before_id": 3}, headers=_auth(tokens["carl"])
    ).json()
    assert [e["id"] for e in page] == [2, 1]


def test_study_tasks_for_the_owner_and_coordinators_without_payloads(
    client: TestClient, hub: Hub, tokens: dict[str, str], clock: FakeClock
) -> None:
    register_nodes(hub, "A", "B")
    study_id = _submit(client, tokens["rita"])["id"]
    client.post(f"/api/v1/studies/{study_id}/approve", headers=_auth(tokens["carl"]))
    (task,) = hub.studies.pull("A")
    clock.advance(5)
    hub.studies.submit_result(
        "A", TaskResult(task.task_id, ResultStatus.OK, {"n": 4242}, "computed on 4242 rows")
    )

    for who in ("rita", "carl"):
        response = client.get(f"/api/v1/studies/{study_id}/tasks", headers=_auth(tokens[who]))
        assert response.status_code == 200
        listed = response.json()
        assert [(t["site"], t["round"], t["status"]) for t in listed] == [
            ("A", 0, "ok"),
            ("B", 0, "pending"),
        ]
        assert set(listed[0]) == {
            "id",
            "site",
            "round",
            "status",
            "message",
            "created_at",
            "delivered_at",
            "completed_at",
            "deadline",
        }
        a, b = listed
        assert a["message"] == "computed on 4242 rows"
        assert a["delivered_at"] == a["created_at"] < a["completed_at"]
        assert b["delivered_at"] is None and b["completed_at"] is None
        assert "payload" not in str(listed)

    other = client.get(f"/api/v1/studies/{study_id}/tasks", headers=_auth(tokens["olga"]))
    assert other.status_code == 404
    missing = client.get("/api/v1/studies/nope/tasks", headers=_auth(tokens["carl"]))
    assert missing.status_code == 404
