"""Study endpoints: submit, approve, reject, read, a study's tasks and an ML study's figures."""

from __future__ import annotations

from fastapi import APIRouter, status
from fastapi.responses import HTMLResponse

from hub.api.deps import HubDep
from hub.api.schemas import StudyCreate, StudyDecision, StudyOut, StudyStatusOut, TaskOut
from hub.auth import CurrentUser
from hub.studies.ml_page import figures_page

router = APIRouter(prefix="/api/v1/studies", tags=["studies"])


@router.post("", status_code=status.HTTP_201_CREATED)
def submit_study(body: StudyCreate, user: CurrentUser, hub: HubDep) -> StudyStatusOut:
    view = hub.studies.submit(user, body.spec, title=body.title, sites=body.sites)
    return StudyStatusOut(id=view.id, status=view.status.value)


@router.get("")
def list_studies(user: CurrentUser, hub: HubDep) -> list[StudyOut]:
    return [StudyOut.of(v) for v in hub.studies.list_visible(user)]


@router.get("/{study_id}")
def get_study(study_id: str, user: CurrentUser, hub: HubDep) -> StudyOut:
    return StudyOut.of(hub.studies.get(user, study_id))


@router.get("/{study_id}/tasks")
def list_study_tasks(study_id: str, user: CurrentUser, hub: HubDep) -> list[TaskOut]:
    """Each task's site, round, status, times and message: for the owner or a coordinator."""
    return [TaskOut.of(t) for t in hub.studies.tasks_visible(user, study_id)]


@router.get("/{study_id}/figures", response_class=HTMLResponse)
def ml_study_figures(study_id: str, user: CurrentUser, hub: HubDep) -> HTMLResponse:
    """An ML study's figures as one self-contained HTML page (plotly.js inline).

    Readable by whoever may read the study; 404 for a study that is not ML, 409
    while its Flower run has recorded no rounds.
    """
    hub.studies.get(user, study_id)  # the study's own access rule: 404 to anyone else
    return HTMLResponse(figures_page(hub.db, study_id))


@router.post("/{study_id}/approve")
def approve_study(study_id: str, user: CurrentUser, hub: HubDep) -> StudyStatusOut:
    view = hub.studies.approve(user, study_id)
    return StudyStatusOut(id=view.id, status=view.status.value)


@router.post("/{study_id}/reject")
def reject_study(
    study_id: str, user: CurrentUser, hub: HubDep, body: StudyDecision | None = None
) -> StudyStatusOut:
    view = hub.studies.reject(user, study_id, body.reason if body else "")
    return StudyStatusOut(id=view.id, status=view.status.value)
