"""The hub's result cache: per study a cache key, the sites' dataset versions and
the study a cached result came from.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode: SQLite cannot drop columns in place (downgrade), so alembic copies.
    with op.batch_alter_table("studies") as batch:
        batch.add_column(sa.Column("cache_key", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("dataset_versions", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("cached_from", sa.String(length=36), nullable=True))
        batch.create_index(op.f("ix_studies_cache_key"), ["cache_key"])


def downgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.drop_index(op.f("ix_studies_cache_key"))
        batch.drop_column("cached_from")
        batch.drop_column("dataset_versions")
        batch.drop_column("cache_key")
