from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from hub.auth import UserView
from hub.bootstrap import Hub, build_hub
from hub.db.models import Role, StudyStatus, TaskStatus
from hub.db.session import Database
from hub.settings import HubSettings
from protocol.messages import ResultStatus, SubmitAck, TaskResult
from shared_cdm.errors import Conflict, Forbidden, InvalidInput, NotFound
from tests.unit.hub.hub_testkit import FakeClock, contract_sites, make_user, register_nodes

COUNT = {"analysis": "count", "dataset": "default"}


def _running_count_study(
    hub: Hub, researcher: UserView, coordinator: UserView, sites: list[str] | None = None
) -> str:
    study = hub.studies.submit(researcher, COUNT, title="how many", sites=sites)
    hub.studies.approve(coordinator, study.id)
    return study.id


def _answer(hub: Hub, node: str, status: ResultStatus, payload: dict[str, Any]) -> SubmitAck:
    (task,) = hub.studies.pull(node)
    return hub.studies.submit_result(node, TaskResult(task.task_id, status, payload, "why"))


def test_submit_waits_for_approval_then_dispatches_one_task_per_site(
    hub: Hub, researcher: UserView, coordinator: UserView
) -> None:
    register_nodes(hub, "A", "B", "C")
    study = hub.studies.submit(researcher, COUNT, sites=["A", "C"])
    assert study.status is StudyStatus.PENDING_APPROVAL
    assert study.sites == ("A", "C")
    assert hub.studies.tasks(study.id) == []
    assert hub.studies.pull("A") == []

    approved = hub.studies.approve(coordinator, study.id)
    assert approved.status is StudyStatus.RUNNING
    tasks = hub.studies.tasks(study.id)
    assert sorted(t.node_name for t in tasks) == ["A", "C"]
    assert {t.status for t in tasks} == {TaskStatus.PENDING}

    (assignment,) = hub.studies.pull("A")
    assert assignment.study_id == study.id
    assert (assignment.analysis, assignment.dataset, assignment.round) == ("count", "default", 0)
    assert assignment.spec == {**COUNT, "round_params": {"n_sites": 2}}
    assert assignment.requester == "rita"
    assert hub.studies.pull("B") == []


def test_sites_default_to_every_registered_node(hub: Hub, researcher: UserView) -> None:
    register_nodes(hub, "B", "A")
    assert hub.studies.submit(researcher, COUNT).sites == ("A", "B")


@pytest.mark.parametrize(
    ("spec", "sites", "message"),
    [
        ({"analysis": "no_such_thing"}, None, "unknown analysis"),
        ({"analysis": "describe"}, None, "at least one variable"),
        ({"dataset": "default"}, None, "analysis"),
        (COUNT, ["A", "Z"], "unknown site"),
        (COUNT, [], "empty"),
        ({"analysis": "count", "weight": float("nan")}, None, "JSON"),
    ],
)
def test_invalid_submissions_are_refused(
    hub: Hub, researcher: UserView, spec: dict[str, Any], sites: list[str] | None, message: str
) -> None:
    register_nodes(hub, "A")
    with pytest.raises(InvalidInput, match=message):
        hub.studies.submit(researcher, spec, sites=sites)
    assert hub.studies.list_visible(researcher) == []


def test_a_hub_without_nodes_refuses_a_study_without_sites(hub: Hub, researcher: UserView) -> None:
    with pytest.raises(InvalidInput, match="no nodes"):
        hub.studies.submit(researcher, COUNT)


def test_only_coordinators_approve_and_only_pending_studies(
    hub: Hub, researcher: UserView, coordinator: UserView
) -> None:
    register_nodes(hub, "A")
    study = hub.studies.submit(researcher, COUNT)
    with pytest.raises(Forbidden):
        hub.studies.approve(researcher, study.id)
    assert hub.studies.get(researcher, study.id).status is StudyStatus.PENDING_APPROVAL
    hub.studies.approve(coordinator, study.id)
    with pytest.raises(Conflict):
        hub.studies.approve(coordinator, study.id)
    with pytest.raises(Conflict):
        hub.studies.reject(coordinator, study.id)
    assert len(hub.studies.tasks(study.id)) == 1


def test_rejected_study_never_dispatches(
    hub: Hub, researcher: UserView, coordinator: UserView
) -> None:
    register_nodes(hub, "A")
    study = hub.studies.submit(researcher, COUNT)
    rejected = hub.studies.reject(coordinator, study.id, "not ethical")
    assert rejected.status is StudyStatus.REJECTED
    assert rejected.error is not None and "not ethical" in rejected.error
    assert hub.studies.tasks(study.id) == []


def test_auto_approve_dispatches_at_submission(
    hub_settings: HubSettings, hub_db: Database, clock: FakeClock, researcher: UserView
) -> None:
    auto = build_hub(hub_settings.model_copy(update={"auto_approve": True}), db=hub_db, clock=clock)
    register_nodes(auto, "A", "B")
    study = auto.studies.submit(researcher, COUNT)
    assert study.status is StudyStatus.RUNNING
    assert len(auto.studies.tasks(study.id)) == 2


def test_all_sites_answer_then_the_study_completes_with_the_envelope(
    hub: Hub, researcher: UserView, coordinator: UserView
) -> None:
    register_nodes(hub, "A", "B", "C")
    study_id = _running_count_study(hub, researcher, coordinator)
    assert _answer(hub, "A", ResultStatus.OK, {"n": 12}) == SubmitAck(True, False)
    assert _answer(hub, "B", ResultStatus.OK, {"n": "suppressed", "suppressed": True}).accepted
    assert hub.studies.get(researcher, study_id).status is StudyStatus.RUNNING
    _answer(hub, "C", ResultStatus.OK, {"n": 30})

    study = hub.studies.get(researcher, study_id)
    assert study.status is StudyStatus.COMPLETED
    assert study.error is None
    envelope = study.result
    assert envelope is not None
    assert envelope["analysis"] == "count"
    assert envelope["n"] == 42
    assert envelope["n_excluded_missing"] == 0
    assert contract_sites(envelope) == [
        {"name": "A", "n": 12, "status": "ok"},
        {"name": "B", "n": "suppressed", "status": "ok"},
        {"name": "C", "n": 30, "status": "ok"},
    ]
    assert envelope["result"]["count"] == 42
    assert any("B" in note for note in envelope["disclosure"])


def test_a_duplicate_result_changes_nothing(
    hub: Hub, researcher: UserView, coordinator: UserView
) -> None:
    register_nodes(hub, "A", "B")
    study_id = _running_count_study(hub, researcher, coordinator)
    (task,) = hub.studies.pull("A")
    first = TaskResult(task.task_id, ResultStatus.OK, {"n": 10})
    assert hub.studies.submit_result("A", first) == SubmitAck(True, False)
    second = TaskResult(task.task_id, ResultStatus.OK, {"n": 999})
    assert hub.studies.submit_result("A", second) == SubmitAck(True, True)
    _answer(hub, "B", ResultStatus.OK, {"n": 5})
    assert hub.studies.submit_result("A", second) == SubmitAck(True, True)
    result = hub.studies.get(researcher, study_id).result
    assert result is not None and result["n"] == 15
    # A pulled-again node gets nothing: its task is answered.
    assert hub.studies.pull("A") == []


def test_a_failing_site_shows_in_the_envelope(
    hub: Hub, researcher: UserView, coordinator: UserView
) -> None:
    register_nodes(hub, "A", "B", "C")
    study_id = _running_count_study(hub, researcher, coordinator)
    _answer(hub, "A", ResultStatus.OK, {"n": 10})
    _answer(hub, "B", ResultStatus.FAILED, {})
    _answer(hub, "C", ResultStatus.REFUSED, {})
    study = hub.studies.get(researcher, study_id)
    assert study.status is StudyStatus.COMPLETED
    assert study.result is not None
    assert study.result["n"] == 10
    assert contract_sites(study.result) == [
        {"name": "A", "n": 10, "status": "ok"},
        {"name": "B", "n": 0, "status": "failed"},
        {"name": "C", "n": 0, "status": "refused"},
    ]
    assert any("site B could not compute" in d for d in study.result["disclosure"])


def test_no_usable_answer_fails_the_study_naming_the_sites(
    hub: Hub, researcher: UserView, coordinator: UserView
) -> None:
    register_nodes(hub, "A", "B")
    study_id = _running_count_study(hub, researcher, coordinator)
    _answer(hub, "A", ResultStatus.REFUSED, {})
    _answer(hub, "B", ResultStatus.FAILED, {})
    study = hub.studies.get(researcher, study_id)
    assert study.status is StudyStatus.FAILED
    assert study.result is None
    assert study.error is not None
    assert "A (refused: why)" in study.error and "B (failed: why)" in study.error


def test_deadline_expiry_completes_from_the_other_sites(
    hub: Hub, researcher: UserView, coordinator: UserView, clock: FakeClock
) -> None:
    register_nodes(hub, "A", "B")
    study_id = _running_count_study(hub, researcher, coordinator)
    _answer(hub, "A", ResultStatus.OK, {"n": 8})
    (late,) = hub.studies.pull("B")
    assert hub.studies.sweep() == 0  # nothing due yet
    clock.advance(601)
    assert hub.studies.pull("B") == []  # past its deadline: not offered again
    assert hub.studies.sweep() == 1
    study = hub.studies.get(researcher, study_id)
    assert study.status is StudyStatus.COMPLETED
    assert study.result is not None
    assert contract_sites(study.result)[1] == {"name": "B", "n": 0, "status": "expired"}
    # A result after expiry is not taken.
    ack = hub.studies.submit_result("B", TaskResult(late.task_id, ResultStatus.OK, {"n": 50}))
    assert ack == SubmitAck(False, False)
    result = hub.studies.get(researcher, study_id).result
    assert result is not None and result["n"] == 8


def test_deadline_expiry_of_every_site_fails_the_study(
    hub: Hub, researcher: UserView, coordinator: UserView, clock: FakeClock
) -> None:
    register_nodes(hub, "A", "B")
    study_id = _running_count_study(hub, researcher, coordinator)
    clock.advance(601)
    hub.studies.sweep()
    study = hub.studies.get(researcher, study_id)
    assert study.status is StudyStatus.FAILED
    assert study.error is not None and "A (expired)" in study.error


def test_a_result_arriving_after_the_deadline_expires_the_task(
    hub: Hub, researcher: UserView, coordinator: UserView, clock: FakeClock
) -> None:
    register_nodes(hub, "A")
    study_id = _running_count_study(hub, researcher, coordinator)
    (task,) = hub.studies.pull("A")
    clock.advance(601)
    ack = hub.studies.submit_result("A", TaskResult(task.task_id, ResultStatus.OK, {"n": 9}))
    assert ack == SubmitAck(False, False)
    assert hub.studies.get(researcher, study_id).status is StudyStatus.FAILED


def test_another_nodes_task_and_unknown_task_are_refused(
    hub: Hub, researcher: UserView, coordinator: UserView
) -> None:
    register_nodes(hub, "A", "B")
    study_id = _running_count_study(hub, researcher, coordinator)
    (task,) = hub.studies.pull("A")
    with pytest.raises(Forbidden):
        hub.studies.submit_result("B", TaskResult(task.task_id, ResultStatus.OK, {"n": 1}))
    with pytest.raises(NotFound):
        hub.studies.submit_result("A", TaskResult("no-such-task", ResultStatus.OK, {"n": 1}))
    statuses = {t.node_name: t.status for t in hub.studies.tasks(study_id)}
    assert statuses == {"A": TaskStatus.DELIVERED, "B": TaskStatus.PENDING}


def test_delivered_tasks_are_delivered_again_until_answered(
    hub: Hub, researcher: UserView, coordinator: UserView
) -> None:
    register_nodes(hub, "A")
    _running_count_study(hub, researcher, coordinator)
    first = hub.studies.pull("A")
    again = hub.studies.pull("A")
    assert [t.task_id for t in first] == [t.task_id for t in again]
    hub.studies.submit_result("A", TaskResult(first[0].task_id, ResultStatus.OK, {"n": 7}))
    assert hub.studies.pull("A") == []


def test_researchers_see_only_their_own_studies(
    hub: Hub, researcher: UserView, coordinator: UserView
) -> None:
    other, _ = make_user(hub, "olga", Role.RESEARCHER)
    register_nodes(hub, "A")
    mine = hub.studies.submit(researcher, COUNT)
    theirs = hub.studies.submit(other, COUNT)
    with pytest.raises(NotFound):
        hub.studies.get(researcher, theirs.id)
    assert [s.id for s in hub.studies.list_visible(researcher)] == [mine.id]
    assert {s.id for s in hub.studies.list_visible(coordinator)} == {mine.id, theirs.id}


def test_a_payload_the_analysis_cannot_read_fails_the_study_not_the_hub(
    hub: Hub, researcher: UserView, coordinator: UserView
) -> None:
    register_nodes(hub, "A")
    study = hub.studies.submit(researcher, {"analysis": "describe", "variables": ["age"]})
    hub.studies.approve(coordinator, study.id)
    # `describe` expects per-variable figures; this payload has none.
    assert _answer(hub, "A", ResultStatus.OK, {"n": 10, "variables": "garbage"}).accepted
    failed = hub.studies.get(researcher, study.id)
    assert failed.status is StudyStatus.FAILED
    assert failed.error is not None and failed.error.startswith("combining results failed")


def test_a_restarted_hub_finishes_a_study_whose_round_ended(
    hub: Hub, researcher: UserView, coordinator: UserView, clock: FakeClock
) -> None:
    register_nodes(hub, "A", "B")
    study_id = _running_count_study(hub, researcher, coordinator)
    _answer(hub, "A", ResultStatus.OK, {"n": 4})
    # As if the hub died between storing B's answer and moving the study on.
    with hub.db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE tasks SET status = 'ok', payload = :p"
                " WHERE study_id = :s AND node_name = 'B'"
            ),
            {"p": '{"n": 6}', "s": study_id},
        )
    assert hub.studies.get(researcher, study_id).status is StudyStatus.RUNNING

    restarted = build_hub(hub.settings, db=Database(hub.db.engine), clock=clock)
    assert restarted.studies.sweep() == 1
    study = restarted.studies.get(researcher, study_id)
    assert study.status is StudyStatus.COMPLETED
    assert study.result is not None and study.result["n"] == 10
