"""State-database tables. Same schema on SQLite and PostgreSQL (see edge_node/migrations)."""

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
        dict[str, Any]: sa.JSON(none_as_null=True),
        list[Any]: sa.JSON(),
    }


class TaskDecision(StrEnum):
    """Whether a task may run: by the site's policy, or later by its operator."""

    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    REJECTED = "rejected"


class Delivery(StrEnum):
    """Where the task's answer is: none yet, stored but not at the hub, or delivered."""

    NONE = "none"
    PENDING = "pending"
    SUBMITTED = "submitted"
    # The hub answered for good that it will not take it (e.g. not this node's task).
    UNDELIVERABLE = "undeliverable"


class ReceivedTask(Base):
    __tablename__ = "edge_tasks"

    task_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    study_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    round: Mapped[int]
    analysis: Mapped[str] = mapped_column(sa.String(64))
    dataset: Mapped[str] = mapped_column(sa.String(64))
    spec: Mapped[dict[str, Any]]
    requester: Mapped[str] = mapped_column(sa.String(100))
    created_at: Mapped[datetime]
    deadline: Mapped[datetime | None]
    received_at: Mapped[datetime]
    decision: Mapped[str] = mapped_column(sa.String(20), index=True)
    decided_by: Mapped[str] = mapped_column(sa.String(20))  # "policy" or "operator"
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    result_status: Mapped[str | None] = mapped_column(sa.String(20))
    result_payload: Mapped[dict[str, Any] | None]
    result_message: Mapped[str] = mapped_column(sa.Text, default="")
    result_disclosure: Mapped[list[Any]] = mapped_column(default=list)
    result_stored_at: Mapped[datetime | None]
    delivery: Mapped[str] = mapped_column(sa.String(20), index=True)
    submitted_at: Mapped[datetime | None]
    submit_error: Mapped[str] = mapped_column(sa.Text, default="")


class RegisteredDataset(Base):
    __tablename__ = "edge_datasets"

    name: Mapped[str] = mapped_column(sa.String(48), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    # SHA-256 of the source file's bytes: changes whenever the data change.
    version: Mapped[str] = mapped_column(sa.String(64))
    columns: Mapped[list[Any]]
    row_count: Mapped[int]
    table_name: Mapped[str] = mapped_column(sa.String(63))
    source_file: Mapped[str] = mapped_column(sa.Text, default="")
    registered_at: Mapped[datetime]


class SecaggKey(Base):
    """A site's X25519 key pair for one study's secure aggregation (the keys round
    makes it, the mask round uses it); deleted once unused for the policy's TTL."""

    __tablename__ = "edge_secagg_keys"

    study_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    public_key: Mapped[str] = mapped_column(sa.String(64))
    private_key: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime] = mapped_column(index=True)


class CachedAnswer(Base):
    """A local answer after disclosure control (before secure aggregation), keyed by
    dataset version, question and policy; a new dataset version makes it unreachable."""

    __tablename__ = "edge_result_cache"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    dataset: Mapped[str] = mapped_column(sa.String(48), index=True)
    dataset_version: Mapped[str] = mapped_column(sa.String(64))
    payload: Mapped[dict[str, Any]]
    notes: Mapped[list[Any]]
    counted_levels: Mapped[list[Any] | None] = mapped_column(sa.JSON)
    counts: Mapped[list[Any]]
    epsilon: Mapped[float] = mapped_column(sa.Float)
    created_at: Mapped[datetime]
