"""Dispatching a round's tasks and, once every task of a round has ended, moving on.

The analysis' `step()` decides: another round for the sites that answered, or
the final result. Called inside a write transaction with the study row locked.
Everything a later round needs is in the study row (`driver_state`), so a hub
restarted between rounds carries on where it stopped.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from federated_ml.analyses import Finished, NextRound, analysis_for
from federated_ml.analyses.base import parse_spec
from hub import audit
from hub.db.models import Study, StudyStatus, Task, TaskStatus
from hub.studies import repository, sensitivity
from hub.studies.envelope import (
    SiteOutcome,
    build_envelope,
    failure_message,
    json_safe,
    too_few_sites_message,
)
from hub.studies.provenance import dataset_versions, site_provenance, study_dataset
from hub.studies.rules import StudyRules, site_minimum
from shared_cdm.errors import OncoFedError

log = logging.getLogger(__name__)

HUB_ACTOR = "hub"
# A safety net against an analysis that never converges.
MAX_ROUNDS = 200


def task_spec(
    study_spec: Mapping[str, Any], params: Mapping[str, Any], n_sites: int
) -> dict[str, Any]:
    """What a site receives: the full study spec plus this round's params, with how
    many sites receive the round, so each site can enforce its own minimum."""
    return {**study_spec, "round_params": {**params, "n_sites": n_sites}}


def dispatch_round(
    session: Session,
    study: Study,
    round_no: int,
    outcome: NextRound,
    sites: Iterable[str],
    *,
    now: datetime,
    rules: StudyRules,
) -> list[Task]:
    targets = list(sites)
    study.current_round = round_no
    study.driver_state = json_safe({"state": outcome.state, "params": outcome.params})
    study.updated_at = now
    spec = task_spec(study.spec, study.driver_state["params"], len(targets))
    tasks = []
    for site in targets:
        task = Task(
            id=str(uuid.uuid4()),
            study_id=study.id,
            node_name=site,
            round=round_no,
            analysis=str(study.spec["analysis"]),
            dataset=study_dataset(study.spec),
            spec=spec,
            requester=study.owner,
            status=TaskStatus.PENDING.value,
            message="",
            disclosure=[],
            created_at=now,
            deadline=now + rules.task_deadline,
        )
        session.add(task)
        tasks.append(task)
    session.flush()
    for task in tasks:
        audit.append(
            session,
            at=now,
            actor=HUB_ACTOR,
            action="task.dispatched",
            object_id=task.id,
            details={"study": study.id, "node": task.node_name, "round": round_no},
        )
    return tasks


def _outcome(task: Task) -> SiteOutcome:
    return SiteOutcome(
        name=task.node_name,
        status=TaskStatus(task.status),
        payload=task.payload,
        message=task.message,
        disclosure=tuple(str(d) for d in task.disclosure),
    )


def _outcomes(session: Session, study: Study) -> list[SiteOutcome]:
    """Each site's last task: dropped sites keep the status they ended with."""
    latest: dict[str, Task] = {}
    for task in repository.tasks_of_study(session, study.id):
        latest[task.node_name] = task  # ordered by round, so the last one wins
    return [_outcome(t) for t in latest.values()]


def _unchanged_versions(session: Session, study: Study) -> dict[str, Any] | None:
    """The start's dataset versions if every site still reports them, else None: a
    site that changed its data mid-study makes the result unfit to serve again."""
    if study.dataset_versions is None:
        return None
    current = site_provenance(session, study.sites, study_dataset(study.spec))
    return study.dataset_versions if dataset_versions(current) == study.dataset_versions else None


def _envelope(session: Session, study: Study, outcome: Finished) -> dict[str, Any]:
    outcomes = _outcomes(session, study)
    provenance = site_provenance(session, [o.name for o in outcomes], study_dataset(study.spec))
    return build_envelope(str(study.spec["analysis"]), outcome, outcomes, provenance)


def _finish(
    session: Session,
    study: Study,
    status: StudyStatus,
    now: datetime,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    study.status = status.value
    study.updated_at = now
    study.result = result
    study.error = error
    details: dict[str, Any] = {"round": study.current_round}
    if study.error:
        details["error"] = study.error
    action = "study.completed" if status is StudyStatus.COMPLETED else "study.failed"
    audit.append(
        session, at=now, actor=HUB_ACTOR, action=action, object_id=study.id, details=details
    )
    sensitivity.record_outcome(session, study, now)  # side-by-side result, if it has a run


def _step(study: Study, payloads: Mapping[str, Mapping[str, Any]]) -> NextRound | Finished:
    spec = parse_spec(study.spec)
    state = study.driver_state.get("state", {})
    return analysis_for(spec.analysis).step(spec, state, payloads)


def _round_failure(study: Study, tasks: Sequence[Task], ok: int, rules: StudyRules) -> str | None:
    """Why the round's answers cannot go on, or None when enough sites answered."""
    outcomes = [_outcome(t) for t in tasks]
    if not ok:
        return failure_message(study.current_round, outcomes)
    spec = parse_spec(study.spec)
    first = analysis_for(spec.analysis).first_round(spec)
    minimum = site_minimum(rules, spec.analysis, first).sites
    if ok < minimum:
        return too_few_sites_message(spec.analysis, study.current_round, minimum, outcomes)
    return None


def advance_if_complete(
    session: Session, study: Study, *, now: datetime, rules: StudyRules
) -> bool:
    """Move a running study on when its current round has ended; True if it moved."""
    if study.status != StudyStatus.RUNNING.value:
        return False
    tasks: Sequence[Task] = repository.tasks_of_round(session, study.id, study.current_round)
    if not tasks or any(not TaskStatus(t.status).terminal for t in tasks):
        return False
    ok = {t.node_name: dict(t.payload or {}) for t in tasks if t.status == TaskStatus.OK.value}
    try:
        # Below the minimum nothing is combined, so no such result is ever stored.
        error = _round_failure(study, tasks, len(ok), rules)
        if error is not None:
            _finish(session, study, StudyStatus.FAILED, now, error=error)
            return True
        outcome = _step(study, ok)
        # Built or checked here, so a value JSON cannot hold fails the study, not the request.
        if isinstance(outcome, Finished):
            envelope = _envelope(session, study, outcome)
        else:
            json_safe({"state": outcome.state, "params": outcome.params})
    except OncoFedError as exc:
        _finish(session, study, StudyStatus.FAILED, now, error=f"combining results failed: {exc}")
        return True
    except Exception as exc:
        # A site's payload the analysis cannot read must fail this study, not the hub.
        log.exception("study %s: step() raised", study.id)
        error = f"combining results failed: {type(exc).__name__}: {exc}"
        _finish(session, study, StudyStatus.FAILED, now, error=error)
        return True
    if isinstance(outcome, Finished):
        study.dataset_versions = _unchanged_versions(session, study)
        _finish(session, study, StudyStatus.COMPLETED, now, result=envelope)
        return True
    if study.current_round + 1 >= MAX_ROUNDS:
        _finish(
            session, study, StudyStatus.FAILED, now, error=f"no result after {MAX_ROUNDS} rounds"
        )
        return True
    dispatch_round(
        session, study, study.current_round + 1, outcome, sorted(ok), now=now, rules=rules
    )
    audit.append(
        session,
        at=now,
        actor=HUB_ACTOR,
        action="study.round_advanced",
        object_id=study.id,
        details={"round": study.current_round, "sites": sorted(ok)},
    )
    return True
