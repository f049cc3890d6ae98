"""Read-only values handed out of a transaction (ORM rows never leave the session)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.db.models import Study, StudyStatus, Task, TaskStatus


@dataclass(frozen=True)
class StudyView:
    id: str
    status: StudyStatus
    title: str
    owner: str
    spec: dict[str, Any]
    sites: tuple[str, ...]
    current_round: int
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    cached_from: str | None = None
    sensitivity_of: str | None = None  # set on a sensitivity run

    @classmethod
    def of(cls, study: Study) -> StudyView:
        return cls(
            id=study.id,
            status=StudyStatus(study.status),
            title=study.title,
            owner=study.owner,
            spec=dict(study.spec),
            sites=tuple(study.sites),
            current_round=study.current_round,
            result=None if study.result is None else dict(study.result),
            error=study.error,
            created_at=study.created_at,
            updated_at=study.updated_at,
            cached_from=study.cached_from,
            sensitivity_of=study.sensitivity_of,
        )


@dataclass(frozen=True)
class TaskView:
    id: str
    study_id: str
    node_name: str
    round: int
    status: TaskStatus
    message: str
    deadline: datetime
    created_at: datetime
    delivered_at: datetime | None
    completed_at: datetime | None

    @classmethod
    def of(cls, task: Task) -> TaskView:
        return cls(
            id=task.id,
            study_id=task.study_id,
            node_name=task.node_name,
            round=task.round,
            status=TaskStatus(task.status),
            message=task.message,
            deadline=task.deadline,
            created_at=task.created_at,
            delivered_at=task.delivered_at,
            completed_at=task.completed_at,
        )
