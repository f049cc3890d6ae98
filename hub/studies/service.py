"""Study lifecycle for people (submit, approve, reject, read) and for nodes (pull, submit).

Every change runs in one write transaction and is written to the audit log in
that same transaction, so the log and the state never disagree.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from federated_ml.analyses import StudySpec, analysis_for
from federated_ml.analyses.base import parse_spec
from hub import audit
from hub.auth import UserView, require_coordinator
from hub.db.models import Study, StudyStatus, Task, TaskStatus
from hub.db.session import Database
from hub.studies import repository, sensitivity
from hub.studies.cache import bypasses_cache, cache_key, find_cached
from hub.studies.ml import FlowerCoordinator, holds
from hub.studies.provenance import dataset_versions, site_provenance, study_dataset
from hub.studies.rounds import HUB_ACTOR, advance_if_complete, dispatch_round
from hub.studies.rules import DEFAULT_MIN_SITES, StudyRules, site_minimum
from hub.studies.views import StudyView, TaskView
from protocol.messages import ResultStatus, SubmitAck, TaskAssignment, TaskResult
from protocol.serde import json_to_bytes
from shared_cdm.errors import Conflict, Forbidden, InvalidInput, NotFound

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def validate_spec(raw: Mapping[str, Any]) -> StudySpec:
    """Parse and check a study spec; raises InvalidInput with the reason."""
    json_to_bytes(raw)  # stored and sent as JSON: refuse NaN and non-JSON values now
    spec = parse_spec(raw)
    analysis_for(spec.analysis).validate(spec)
    bypasses_cache(raw)
    sensitivity.validate(raw)  # the optional sensitivity run (hub/studies/sensitivity.py)
    return spec


def _user_actor(user: UserView) -> str:
    return f"user:{user.name}"


def _node_actor(node: str) -> str:
    return f"node:{node}"


def _assignment(task: Task) -> TaskAssignment:
    return TaskAssignment(
        task_id=task.id,
        study_id=task.study_id,
        round=task.round,
        analysis=task.analysis,
        dataset=task.dataset,
        spec=task.spec,
        requester=task.requester,
        created_at=task.created_at,
        deadline=task.deadline,
    )


class StudyService:
    def __init__(
        self,
        db: Database,
        *,
        auto_approve: bool = False,
        task_deadline_s: float = 3600,
        min_sites: Mapping[str, int] = DEFAULT_MIN_SITES,
        clock: Clock = utc_now,
        ml: FlowerCoordinator | None = None,
    ) -> None:
        self._db = db
        self._ml = ml
        self._auto_approve = auto_approve
        self._rules = StudyRules(timedelta(seconds=task_deadline_s), dict(min_sites))
        self._clock = clock

    # --- people ---

    def submit(
        self,
        user: UserView,
        spec: Mapping[str, Any],
        *,
        title: str | None = None,
        sites: Sequence[str] | None = None,
    ) -> StudyView:
        parsed = validate_spec(spec)
        if parsed.analysis == "flower" and self._ml is None:
            raise InvalidInput(
                "this hub runs no Flower SuperLink, so it cannot train an ML study "
                "(set flower_enabled = true in hub.toml)",
                code="flower_disabled",
            )
        now = self._clock()
        with self._db.transaction() as session:
            targets = self._target_sites(session, sites)
            minimum = self._check_enough_sites(parsed, targets)
            study = Study(
                id=str(uuid.uuid4()),
                owner=user.name,
                title=title or "",
                spec=dict(spec),
                sites=targets,
                status=StudyStatus.PENDING_APPROVAL.value,
                current_round=0,
                driver_state={},
                cache_key=cache_key(spec, targets),
                created_at=now,
                updated_at=now,
            )
            session.add(study)
            session.flush()
            audit.append(
                session,
                at=now,
                actor=_user_actor(user),
                action="study.submitted",
                object_id=study.id,
                details={"analysis": parsed.analysis, "sites": targets},
            )
            # A study with a sensitivity run is always computed: a cached copy would not
            # follow the run's later result.
            cacheable = not bypasses_cache(spec) and not sensitivity.wants_sensitivity(spec)
            if cacheable and self._serve_from_cache(session, study, minimum, now):
                return StudyView.of(study)
            if self._auto_approve:
                self._start(session, study, "hub:auto_approve", now)
            return StudyView.of(study)

    def _check_enough_sites(self, spec: StudySpec, targets: Sequence[str]) -> int:
        """The study's minimum number of sites; InvalidInput when it targets fewer."""
        first = analysis_for(spec.analysis).first_round(spec)
        minimum = site_minimum(self._rules, spec.analysis, first)
        if len(targets) < minimum.sites:
            raise InvalidInput(
                f"{spec.analysis} needs at least {minimum.sites} sites ({minimum.reason}); "
                f"this study targets {len(targets)}: {', '.join(targets)}",
                code="too_few_sites",
            )
        return minimum.sites

    def _serve_from_cache(
        self, session: Session, study: Study, min_sites: int, now: datetime
    ) -> bool:
        """Complete `study` with an earlier identical study's result; False on a miss."""
        source = find_cached(
            session,
            key=str(study.cache_key),
            owner=study.owner,
            versions=self._dataset_versions(session, study),
            min_sites=min_sites,
        )
        if source is None:
            return False
        study.status = StudyStatus.COMPLETED.value
        study.result = dict(source.result or {})
        study.cached_from = source.id
        study.updated_at = now
        audit.append(
            session,
            at=now,
            actor=HUB_ACTOR,
            action="study.served_from_cache",
            object_id=study.id,
            details={"cached_from": source.id},
        )
        return True

    @staticmethod
    def _dataset_versions(session: Session, study: Study) -> dict[str, str] | None:
        return dataset_versions(site_provenance(session, study.sites, study_dataset(study.spec)))

    def approve(self, user: UserView, study_id: str) -> StudyView:
        require_coordinator(user)
        now = self._clock()
        with self._db.transaction() as session:
            study = self._pending(session, study_id)
            self._start(session, study, _user_actor(user), now)
            return StudyView.of(study)

    def reject(self, user: UserView, study_id: str, reason: str = "") -> StudyView:
        require_coordinator(user)
        now = self._clock()
        with self._db.transaction() as session:
            study = self._pending(session, study_id)
            study.status = StudyStatus.REJECTED.value
            study.error = f"rejected by {user.name}" + (f": {reason}" if reason else "")
            study.updated_at = now
            audit.append(
                session,
                at=now,
                actor=_user_actor(user),
                action="study.rejected",
                object_id=study.id,
                details={"reason": reason},
            )
            return StudyView.of(study)

    def get(self, user: UserView, study_id: str) -> StudyView:
        with self._db.session() as session:
            return StudyView.of(self._visible(session, user, study_id))

    @staticmethod
    def _visible(session: Session, user: UserView, study_id: str) -> Study:
        study = repository.get_study(session, study_id)
        if not user.is_coordinator and study.owner != user.name:
            # 404, not 403: a researcher cannot learn that someone else's study exists.
            raise NotFound(f"no study {study_id!r}", code="study_not_found")
        return study

    def list_visible(self, user: UserView) -> list[StudyView]:
        owner = None if user.is_coordinator else user.name
        with self._db.session() as session:
            return [StudyView.of(s) for s in repository.list_studies(session, owner)]

    def tasks(self, study_id: str) -> list[TaskView]:
        with self._db.session() as session:
            return [TaskView.of(t) for t in repository.tasks_of_study(session, study_id)]

    def tasks_visible(self, user: UserView, study_id: str) -> list[TaskView]:
        """A study's tasks for its owner or a coordinator; 404 to anyone else."""
        with self._db.session() as session:
            self._visible(session, user, study_id)
            return [TaskView.of(t) for t in repository.tasks_of_study(session, study_id)]

    def _target_sites(self, session: Session, sites: Sequence[str] | None) -> list[str]:
        known = repository.node_names(session)
        if sites is None:
            if not known:
                raise InvalidInput("no nodes are registered with the hub, so a study has no sites")
            return known
        targets = list(dict.fromkeys(sites))
        if not targets:
            raise InvalidInput("`sites` is empty; leave it out to use every registered node")
        unknown = [s for s in targets if s not in known]
        if unknown:
            raise InvalidInput(
                f"unknown site(s): {', '.join(unknown)}; registered: {', '.join(known) or 'none'}",
                code="unknown_site",
            )
        return targets

    def _pending(self, session: Session, study_id: str) -> Study:
        study = repository.get_study(session, study_id, for_update=True)
        if study.status != StudyStatus.PENDING_APPROVAL.value:
            raise Conflict(
                f"study {study_id} is {study.status}, not pending_approval", code="not_pending"
            )
        return study

    def _start(self, session: Session, study: Study, actor: str, now: datetime) -> None:
        spec = validate_spec(study.spec)
        first = analysis_for(spec.analysis).first_round(spec)
        study.status = StudyStatus.RUNNING.value
        # The data the result will describe; checked again when the study completes.
        study.dataset_versions = self._dataset_versions(session, study)
        audit.append(session, at=now, actor=actor, action="study.approved", object_id=study.id)
        dispatch_round(session, study, 0, first, study.sites, now=now, rules=self._rules)
        self._start_sensitivity_run(session, study, now)

    def _start_sensitivity_run(self, session: Session, study: Study, now: datetime) -> None:
        """Start the study's sensitivity run, if it asks for one that changes anything."""
        run = sensitivity.run_for(study, now)
        if run is None:
            return
        session.add(run)
        session.flush()
        run.dataset_versions = self._dataset_versions(session, run)
        audit.append(
            session,
            at=now,
            actor=HUB_ACTOR,
            action="study.sensitivity_started",
            object_id=run.id,
            details={"primary": study.id, "sensitivity": study.spec["sensitivity"]},
        )
        first = analysis_for(str(run.spec["analysis"])).first_round(validate_spec(run.spec))
        dispatch_round(session, run, 0, first, run.sites, now=now, rules=self._rules)

    # --- nodes ---

    def pull(self, node: str, max_tasks: int = 0) -> list[TaskAssignment]:
        """The node's open tasks; delivered ones come again so a restarted edge can finish."""
        now = self._clock()
        with self._db.transaction() as session:
            tasks = repository.deliverable_tasks(session, node, now, max_tasks)
            for task in tasks:
                if task.status == TaskStatus.PENDING.value:
                    task.status = TaskStatus.DELIVERED.value
                    task.delivered_at = now
                    audit.append(
                        session,
                        at=now,
                        actor=_node_actor(node),
                        action="task.delivered",
                        object_id=task.id,
                        details={"study": task.study_id, "round": task.round},
                    )
            return [_assignment(t) for t in tasks]

    def submit_result(self, node: str, result: TaskResult) -> SubmitAck:
        """Store a task's result; the first one wins and a repeat changes nothing."""
        now = self._clock()
        with self._db.transaction() as session:
            task = repository.get_task(session, result.task_id)
            if task.node_name != node:
                raise Forbidden(
                    f"task {result.task_id} belongs to another node", code="not_your_task"
                )
            study = repository.get_study(session, task.study_id, for_update=True)
            status = TaskStatus(task.status)
            if status.terminal and status is not TaskStatus.EXPIRED:
                self._audit_result(session, node, task, "result.duplicate", now, result)
                return SubmitAck(accepted=True, duplicate=True)
            if status is TaskStatus.EXPIRED or task.deadline <= now:
                self._expire(session, task, now)
                self._audit_result(session, node, task, "result.late", now, result)
                self._advance(session, study, now)
                return SubmitAck(accepted=False, duplicate=False)
            task.status = TaskStatus(result.status.value).value
            task.payload = dict(result.payload) if result.status is ResultStatus.OK else None
            task.message = result.message
            task.disclosure = list(result.disclosure)
            task.completed_at = now
            self._audit_result(session, node, task, "result.accepted", now, result)
            self._advance(session, study, now)
            return SubmitAck(accepted=True, duplicate=False)

    def _advance(self, session: Session, study: Study, now: datetime) -> bool:
        """Move the study on, unless an ML study waits for the hub's Flower work."""
        if holds(study):
            return False
        return advance_if_complete(session, study, now=now, rules=self._rules)

    def _audit_result(
        self, session: Session, node: str, task: Task, action: str, now: datetime, r: TaskResult
    ) -> None:
        # Identifiers and status only: a result's payload never enters the log.
        audit.append(
            session,
            at=now,
            actor=_node_actor(node),
            action=action,
            object_id=task.id,
            details={"study": task.study_id, "round": task.round, "status": r.status.value},
        )

    @staticmethod
    def _expire(session: Session, task: Task, now: datetime) -> None:
        if TaskStatus(task.status).terminal:
            return
        task.status = TaskStatus.EXPIRED.value
        task.completed_at = now
        audit.append(
            session,
            at=now,
            actor=HUB_ACTOR,
            action="task.expired",
            object_id=task.id,
            details={"study": task.study_id, "node": task.node_name, "round": task.round},
        )

    # --- housekeeping ---

    def sweep(self) -> int:
        """Expire overdue tasks and move on every study whose round has ended.

        Run periodically and once at start-up, so a restarted hub finishes the
        studies its database says are due. Returns how many studies moved.
        """
        now = self._clock()
        with self._db.transaction() as session:
            for task in repository.overdue_tasks(session, now):
                self._expire(session, task, now)
            moved = 0
            for study_id in repository.running_study_ids(session):
                study = repository.get_study(session, study_id, for_update=True)
                moved += self._advance(session, study, now)
        if self._ml is not None:
            # Outside the transaction above: starting a Flower run takes seconds.
            moved += self._ml.tick(
                lambda session, study: advance_if_complete(
                    session, study, now=self._clock(), rules=self._rules
                )
            )
        return moved
