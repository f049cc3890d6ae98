"""The hub's tables. Same schema on SQLite and PostgreSQL (see migrations/)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared_cdm.sqltypes import UtcDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        dict[str, Any]: sa.JSON(),
        list[Any]: sa.JSON(),
    }


class Role(StrEnum):
    RESEARCHER = "researcher"
    COORDINATOR = "coordinator"


class StudyStatus(StrEnum):
    PENDING_APPROVAL = "pending_approval"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    REJECTED = "rejected"


class TaskStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    OK = "ok"
    REFUSED = "refused"
    FAILED = "failed"
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
        return self not in (TaskStatus.PENDING, TaskStatus.DELIVERED)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    role: Mapped[str] = mapped_column(sa.String(20))
    # SHA-256 hex of the API token; the token itself is shown once and never stored.
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime]


class Node(Base):
    __tablename__ = "nodes"

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)  # certificate CN
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    software_version: Mapped[str] = mapped_column(sa.String(100), default="")
    cdm_version: Mapped[str] = mapped_column(sa.String(100), default="")
    protocol_version: Mapped[str] = mapped_column(sa.String(20), default="")
    datasets: Mapped[list[Any]] = mapped_column(default=list)


class Study(Base):
    __tablename__ = "studies"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    owner: Mapped[str] = mapped_column(sa.String(100), index=True)
    title: Mapped[str] = mapped_column(sa.String(300), default="")
    spec: Mapped[dict[str, Any]]
    sites: Mapped[list[Any]]
    status: Mapped[str] = mapped_column(sa.String(20), index=True)
    current_round: Mapped[int] = mapped_column(default=0)
    # The analysis' own state between rounds and the current round's params.
    driver_state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON(none_as_null=True))
    error: Mapped[str | None] = mapped_column(sa.Text)
    # The result cache (F7): a hash of the canonical spec and the target sites, and
    # each site's dataset version when the study started (null: never served again).
    cache_key: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    dataset_versions: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON(none_as_null=True))
    # Set when the result was copied from an earlier study instead of computed.
    cached_from: Mapped[str | None] = mapped_column(sa.String(36))
    # Set on a sensitivity run: the study whose analysis it repeats (hub/studies/sensitivity.py).
    sensitivity_of: Mapped[str | None] = mapped_column(sa.String(36), index=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (sa.UniqueConstraint("study_id", "node_name", "round"),)

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    study_id: Mapped[str] = mapped_column(sa.ForeignKey("studies.id"), index=True)
    node_name: Mapped[str] = mapped_column(sa.String(64), index=True)
    round: Mapped[int]
    analysis: Mapped[str] = mapped_column(sa.String(50))
    dataset: Mapped[str] = mapped_column(sa.String(100))
    spec: Mapped[dict[str, Any]]  # the full study spec plus "round_params"
    requester: Mapped[str] = mapped_column(sa.String(100))
    status: Mapped[str] = mapped_column(sa.String(20), index=True)
    payload: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON(none_as_null=True))
    message: Mapped[str] = mapped_column(sa.Text, default="")
    disclosure: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    deadline: Mapped[datetime]


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(sa.String(100))
    action: Mapped[str] = mapped_column(sa.String(50), index=True)
    object_id: Mapped[str] = mapped_column(sa.String(100), default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Unique: two entries claiming the same predecessor would fork the chain.
    prev_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    hash: Mapped[str] = mapped_column(sa.String(64), unique=True)


class MlRun(Base):
    """The Flower run of an ML study (`analysis: flower`): one per study."""

    __tablename__ = "ml_runs"

    study_id: Mapped[str] = mapped_column(sa.ForeignKey("studies.id"), primary_key=True)
    # Flower's run ids are unsigned 64-bit: text, since SQL integers are signed.
    flower_run_id: Mapped[str] = mapped_column(sa.String(24))
    status: Mapped[str] = mapped_column(sa.String(20))  # running, completed, aborted, failed
    detail: Mapped[str] = mapped_column(sa.Text, default="")
    model_version: Mapped[str | None] = mapped_column(sa.String(80))
    model_path: Mapped[str | None] = mapped_column(sa.Text)
    sites: Mapped[list[Any]] = mapped_column(default=list)  # sites whose SuperNode was registered
    result: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON(none_as_null=True))
    submitted_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class MlRound(Base):
    """One round of an ML study's Flower run as the ServerApp recorded it."""

    __tablename__ = "ml_rounds"

    study_id: Mapped[str] = mapped_column(sa.ForeignKey("studies.id"), primary_key=True)
    server_round: Mapped[int] = mapped_column(primary_key=True)
    seconds: Mapped[float] = mapped_column(sa.Float)
    train_loss: Mapped[float | None] = mapped_column(sa.Float)
    eval_model_round: Mapped[int | None]
    eval_loss: Mapped[float | None] = mapped_column(sa.Float)
    eval_auc_weighted: Mapped[float | None] = mapped_column(sa.Float)
    eval_auc_pooled: Mapped[float | None] = mapped_column(sa.Float)
    sites_asked: Mapped[list[Any]] = mapped_column(default=list)
    sites_replied: Mapped[list[Any]] = mapped_column(default=list)
    sites_failed: Mapped[dict[str, Any]] = mapped_column(default=dict)
    calibration: Mapped[list[Any]] = mapped_column(default=list)
    site_metrics: Mapped[list[Any]] = mapped_column(default=list)
