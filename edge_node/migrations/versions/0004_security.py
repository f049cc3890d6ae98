"""The edge's security tables: the hash-chained audit log and users with roles.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "edge_audit_log",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=False),
        sa.Column("details", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_edge_audit_log")),
    )
    with op.batch_alter_table("edge_audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_edge_audit_log_action"), ["action"], unique=False)

    op.create_table(
        "edge_users",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("roles", sa.String(length=200), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_edge_users")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_edge_users_token_hash")),
    )


def downgrade() -> None:
    op.drop_table("edge_users")
    with op.batch_alter_table("edge_audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_edge_audit_log_action"))

    op.drop_table("edge_audit_log")
