"""Request and response bodies of the REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hub.audit import ChainReport
from hub.db.models import AuditEntry
from hub.nodes import NodeView
from hub.studies.views import StudyView, TaskView


class StudyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, max_length=300)
    spec: dict[str, Any]
    sites: list[str] | None = None


class StudyDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=2000)


class StudyStatusOut(BaseModel):
    id: str
    status: str


class StudyOut(BaseModel):
    id: str
    status: str
    title: str
    owner: str
    spec: dict[str, Any]
    sites: list[str]
    round: int
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    # The study whose result this one reuses (the hub's result cache), if any.
    cached_from: str | None = None
    # For a sensitivity run: the study it repeats with low-confidence facts left out.
    sensitivity_of: str | None = None

    @classmethod
    def of(cls, v: StudyView) -> StudyOut:
        return cls(
            id=v.id,
            status=v.status.value,
            title=v.title,
            owner=v.owner,
            spec=v.spec,
            sites=list(v.sites),
            round=v.current_round,
            result=v.result,
            error=v.error,
            created_at=v.created_at,
            updated_at=v.updated_at,
            cached_from=v.cached_from,
            sensitivity_of=v.sensitivity_of,
        )


class TaskOut(BaseModel):
    """A task's progress; never its payload (that stays between site and hub)."""

    id: str
    site: str
    round: int
    status: str
    message: str
    created_at: datetime
    delivered_at: datetime | None
    completed_at: datetime | None
    deadline: datetime

    @classmethod
    def of(cls, v: TaskView) -> TaskOut:
        return cls(
            id=v.id,
            site=v.node_name,
            round=v.round,
            status=v.status.value,
            message=v.message,
            created_at=v.created_at,
            delivered_at=v.delivered_at,
            completed_at=v.completed_at,
            deadline=v.deadline,
        )


class DatasetOut(BaseModel):
    name: str
    kind: str
    version: str
    columns: list[str]
    data_quality: dict[str, Any] | None = None


class NodeOut(BaseModel):
    name: str
    status: str
    last_seen: datetime
    first_seen: datetime
    software_version: str
    datasets: list[DatasetOut]

    @classmethod
    def of(cls, v: NodeView) -> NodeOut:
        return cls(
            name=v.name,
            status="online" if v.online else "offline",
            last_seen=v.last_seen,
            first_seen=v.first_seen,
            software_version=v.software_version,
            datasets=[DatasetOut.model_validate(d) for d in v.datasets],
        )


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    object_id: str
    details: dict[str, Any]
    hash: str

    @classmethod
    def of(cls, e: AuditEntry) -> AuditEntryOut:
        return cls(
            id=e.id,
            at=e.at,
            actor=e.actor,
            action=e.action,
            object_id=e.object_id,
            details=e.details,
            hash=e.hash,
        )


class ChainReportOut(BaseModel):
    ok: bool
    entries: int
    first_bad_id: int | None
    reason: str

    @classmethod
    def of(cls, r: ChainReport) -> ChainReportOut:
        return cls(ok=r.ok, entries=r.entries, first_bad_id=r.first_bad_id, reason=r.reason)
