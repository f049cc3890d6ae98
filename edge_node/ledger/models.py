"""Ledger tables in the edge's state database (migration 0002)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from edge_node.store.models import Base


class LedgerCohort(Base):
    """A set of rows whose size was released: the sorted 64-bit row keys (person_id
    or whole-row hashes), kept only here, to compare later cohorts against."""

    __tablename__ = "edge_ledger_cohorts"
    __table_args__ = (sa.UniqueConstraint("dataset", "dataset_version", "digest"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    dataset: Mapped[str] = mapped_column(sa.String(48))
    dataset_version: Mapped[str] = mapped_column(sa.String(64))
    digest: Mapped[str] = mapped_column(sa.String(64))
    size: Mapped[int]
    row_keys: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[datetime]


class LedgerRelease(Base):
    """One released task result."""

    __tablename__ = "edge_ledger_releases"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    study_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    round: Mapped[int]
    requester: Mapped[str] = mapped_column(sa.String(100), index=True)
    analysis: Mapped[str] = mapped_column(sa.String(64))
    dataset: Mapped[str] = mapped_column(sa.String(48))
    dataset_version: Mapped[str] = mapped_column(sa.String(64))
    # Hash of the question (spec and round parameters): what "a repeat" means.
    question: Mapped[str] = mapped_column(sa.String(64), index=True)
    # Hash of the cohort's definition (where, derived fields, CDM dataset spec).
    cohort_spec: Mapped[str] = mapped_column(sa.String(64))
    released: Mapped[dict[str, Any]]
    epsilon: Mapped[float] = mapped_column(sa.Float)
    cached: Mapped[bool] = mapped_column(sa.Boolean)
    released_at: Mapped[datetime]


class LedgerCount(Base):
    """A count a release revealed, with the cohort it counts."""

    __tablename__ = "edge_ledger_counts"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    release_id: Mapped[int] = mapped_column(
        sa.ForeignKey("edge_ledger_releases.id", ondelete="CASCADE"), index=True
    )
    cohort_id: Mapped[int] = mapped_column(sa.ForeignKey("edge_ledger_cohorts.id"), index=True)
    label: Mapped[str] = mapped_column(sa.String(32))
    value: Mapped[int]
