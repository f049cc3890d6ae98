"""Sensitivity runs: a study that repeats another's analysis with low-confidence facts
left out names that study in `sensitivity_of`.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode: SQLite cannot drop columns in place (downgrade), so alembic copies.
    with op.batch_alter_table("studies") as batch:
        batch.add_column(sa.Column("sensitivity_of", sa.String(length=36), nullable=True))
        batch.create_index(op.f("ix_studies_sensitivity_of"), ["sensitivity_of"])


def downgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.drop_index(op.f("ix_studies_sensitivity_of"))
        batch.drop_column("sensitivity_of")
