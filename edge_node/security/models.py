"""The security tables in the edge's state database (migration 0004)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from edge_node.store.models import Base


class AuditEntry(Base):
    """One entry of the append-only, hash-chained audit log (see `security.audit`)."""

    __tablename__ = "edge_audit_log"

    seq: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(sa.String(100))
    role: Mapped[str] = mapped_column(sa.String(200))
    action: Mapped[str] = mapped_column(sa.String(64), index=True)
    target: Mapped[str] = mapped_column(sa.String(255))
    details: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    hash: Mapped[str] = mapped_column(sa.String(64))


class EdgeUser(Base):
    """A person who may use the edge's commands; only the token's SHA-256 is kept."""

    __tablename__ = "edge_users"

    name: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    roles: Mapped[str] = mapped_column(sa.String(200))  # comma-separated, sorted
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime]
    disabled: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    disabled_at: Mapped[datetime | None]
