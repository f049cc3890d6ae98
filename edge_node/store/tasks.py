"""Tasks received from the hub, their approval, their stored result and its delivery.

The result is written once, before it is submitted: after a crash the agent
finds it here and submits that same result, so the hub receives exactly one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from edge_node.store.models import Delivery, ReceivedTask, TaskDecision
from protocol.messages import ResultStatus, TaskAssignment, TaskResult
from shared_cdm.db import session_factory
from shared_cdm.errors import Conflict, NotFound

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class TaskRecord:
    """A received task as the site sees it."""

    task: TaskAssignment
    decision: TaskDecision
    decided_by: str
    reason: str
    received_at: datetime
    result: TaskResult | None
    delivery: Delivery
    submitted_at: datetime | None
    submit_error: str

    @property
    def state(self) -> str:
        """One word for listings: the delivery once there is a result, else the decision."""
        return self.delivery.value if self.delivery != Delivery.NONE else self.decision.value


def _record(row: ReceivedTask) -> TaskRecord:
    task = TaskAssignment(
        task_id=row.task_id,
        study_id=row.study_id,
        round=row.round,
        analysis=row.analysis,
        dataset=row.dataset,
        spec=dict(row.spec),
        requester=row.requester,
        created_at=row.created_at,
        deadline=row.deadline,
    )
    result = None
    if row.result_status is not None:
        result = TaskResult(
            task_id=row.task_id,
            status=ResultStatus(row.result_status),
            payload=dict(row.result_payload or {}),
            message=row.result_message,
            disclosure=tuple(str(d) for d in row.result_disclosure),
        )
    return TaskRecord(
        task=task,
        decision=TaskDecision(row.decision),
        decided_by=row.decided_by,
        reason=row.reason,
        received_at=row.received_at,
        result=result,
        delivery=Delivery(row.delivery),
        submitted_at=row.submitted_at,
        submit_error=row.submit_error,
    )


class TaskStore:
    def __init__(self, engine: Engine, clock: Clock = utc_now) -> None:
        self._sessions = session_factory(engine)
        self._clock = clock

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    def _row(self, session: Session, task_id: str) -> ReceivedTask:
        row = session.get(ReceivedTask, task_id)
        if row is None:
            raise NotFound(f"no task {task_id!r} at this site", code="task_not_found")
        return row

    def add_if_new(self, task: TaskAssignment, decision: TaskDecision, reason: str = "") -> bool:
        """Keep a task the first time it arrives; False (and no change) when it is known."""
        try:
            with self._transaction() as session:
                if session.get(ReceivedTask, task.task_id) is not None:
                    return False
                session.add(
                    ReceivedTask(
                        task_id=task.task_id,
                        study_id=task.study_id,
                        round=task.round,
                        analysis=task.analysis,
                        dataset=task.dataset,
                        spec=dict(task.spec),
                        requester=task.requester,
                        created_at=task.created_at,
                        deadline=task.deadline,
                        received_at=self._clock(),
                        decision=decision.value,
                        decided_by="policy",
                        reason=reason,
                        result_disclosure=[],
                        delivery=Delivery.NONE.value,
                    )
                )
        except IntegrityError:
            # Another writer stored the same task between our look and our insert.
            return False
        return True

    def get(self, task_id: str) -> TaskRecord:
        with self._sessions() as session:
            return _record(self._row(session, task_id))

    def all(self) -> list[TaskRecord]:
        with self._sessions() as session:
            rows = session.scalars(
                sa.select(ReceivedTask).order_by(ReceivedTask.received_at, ReceivedTask.task_id)
            )
            return [_record(r) for r in rows]

    def approve(self, task_id: str) -> TaskRecord:
        return self._decide(task_id, TaskDecision.APPROVED, "")

    def reject(self, task_id: str, reason: str = "") -> TaskRecord:
        return self._decide(task_id, TaskDecision.REJECTED, reason)

    def _decide(self, task_id: str, decision: TaskDecision, reason: str) -> TaskRecord:
        with self._transaction() as session:
            row = self._row(session, task_id)
            if row.decision != TaskDecision.AWAITING_APPROVAL:
                raise Conflict(
                    f"task {task_id} is {row.decision}, not awaiting approval",
                    code="task_already_decided",
                )
            row.decision, row.decided_by, row.reason = decision.value, "operator", reason
            return _record(row)

    def without_result(self, decision: TaskDecision) -> list[TaskRecord]:
        """Tasks with this decision whose answer has not been computed yet."""
        with self._sessions() as session:
            rows = session.scalars(
                sa.select(ReceivedTask)
                .where(ReceivedTask.decision == decision.value)
                .where(ReceivedTask.delivery == Delivery.NONE.value)
                .order_by(ReceivedTask.received_at, ReceivedTask.task_id)
            )
            return [_record(r) for r in rows]

    def store_result(self, result: TaskResult) -> bool:
        """Keep a task's answer; False if one is already stored (the first one stands)."""
        with self._transaction() as session:
            row = self._row(session, result.task_id)
            if row.delivery != Delivery.NONE:
                return False
            row.result_status = result.status.value
            row.result_payload = dict(result.payload)
            row.result_message = result.message
            row.result_disclosure = list(result.disclosure)
            row.result_stored_at = self._clock()
            row.delivery = Delivery.PENDING.value
            return True

    def pending_submissions(self) -> list[TaskResult]:
        """Stored answers the hub has not yet acknowledged, oldest first."""
        with self._sessions() as session:
            rows = session.scalars(
                sa.select(ReceivedTask)
                .where(ReceivedTask.delivery == Delivery.PENDING.value)
                .order_by(ReceivedTask.result_stored_at, ReceivedTask.task_id)
            )
            return [r for r in (_record(row).result for row in rows) if r is not None]

    def mark_submitted(self, task_id: str, note: str = "") -> None:
        self._deliver(task_id, Delivery.SUBMITTED, note)

    def mark_undeliverable(self, task_id: str, error: str) -> None:
        self._deliver(task_id, Delivery.UNDELIVERABLE, error)

    def _deliver(self, task_id: str, delivery: Delivery, note: str) -> None:
        with self._transaction() as session:
            row = self._row(session, task_id)
            row.delivery = delivery.value
            row.submitted_at = self._clock()
            row.submit_error = note

    def count_waiting(self) -> int:
        """Tasks received but not answered yet (for the heartbeat)."""
        with self._sessions() as session:
            stmt = sa.select(sa.func.count()).where(ReceivedTask.delivery == Delivery.NONE.value)
            return int(session.scalar(stmt.select_from(ReceivedTask)) or 0)
