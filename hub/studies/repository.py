"""Queries over studies and tasks; the service decides, this module only fetches."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hub.db.models import Node, Study, StudyStatus, Task, TaskStatus
from shared_cdm.errors import NotFound

OPEN_TASK = (TaskStatus.PENDING.value, TaskStatus.DELIVERED.value)


def get_study(session: Session, study_id: str, *, for_update: bool = False) -> Study:
    query = sa.select(Study).where(Study.id == study_id)
    if for_update:
        # Row lock on PostgreSQL; SQLite ignores it and relies on the hub's write lock.
        query = query.with_for_update()
    study = session.scalar(query)
    if study is None:
        raise NotFound(f"no study {study_id!r}", code="study_not_found")
    return study


def list_studies(session: Session, owner: str | None = None) -> Sequence[Study]:
    query = sa.select(Study).order_by(Study.created_at.desc(), Study.id)
    if owner is not None:
        query = query.where(Study.owner == owner)
    return session.scalars(query).all()


def running_study_ids(session: Session) -> Sequence[str]:
    return session.scalars(
        sa.select(Study.id).where(Study.status == StudyStatus.RUNNING.value).order_by(Study.id)
    ).all()


def get_task(session: Session, task_id: str) -> Task:
    task = session.get(Task, task_id)
    if task is None:
        raise NotFound(f"no task {task_id!r}", code="task_not_found")
    return task


def tasks_of_round(session: Session, study_id: str, round_no: int) -> Sequence[Task]:
    return session.scalars(
        sa.select(Task)
        .where(Task.study_id == study_id, Task.round == round_no)
        .order_by(Task.node_name)
    ).all()


def tasks_of_study(session: Session, study_id: str) -> Sequence[Task]:
    return session.scalars(
        sa.select(Task).where(Task.study_id == study_id).order_by(Task.round, Task.node_name)
    ).all()


def deliverable_tasks(session: Session, node: str, now: datetime, limit: int) -> Sequence[Task]:
    query = (
        sa.select(Task)
        .join(Study, Study.id == Task.study_id)
        .where(
            Task.node_name == node,
            Task.status.in_(OPEN_TASK),
            Task.deadline > now,
            Study.status == StudyStatus.RUNNING.value,
        )
        .order_by(Task.created_at, Task.id)
    )
    if limit > 0:
        query = query.limit(limit)
    return session.scalars(query).all()


def overdue_tasks(session: Session, now: datetime) -> Sequence[Task]:
    return session.scalars(
        sa.select(Task)
        .where(Task.status.in_(OPEN_TASK), Task.deadline <= now)
        .order_by(Task.study_id, Task.node_name)
    ).all()


def node_names(session: Session) -> list[str]:
    return list(session.scalars(sa.select(Node.name).order_by(Node.name)))


def nodes_named(session: Session, names: Sequence[str]) -> Sequence[Node]:
    return session.scalars(sa.select(Node).where(Node.name.in_(names)).order_by(Node.name)).all()


def completed_studies_with_key(session: Session, cache_key: str, owner: str) -> Sequence[Study]:
    """Computed (not themselves cached) completed studies of `owner`, newest first."""
    return session.scalars(
        sa.select(Study)
        .where(
            Study.cache_key == cache_key,
            Study.owner == owner,
            Study.status == StudyStatus.COMPLETED.value,
            Study.cached_from.is_(None),
        )
        .order_by(Study.updated_at.desc(), Study.id)
    ).all()
