"""value_provenance: per-field provenance of merged facts (OncoFed extension).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "value_provenance",
        sa.Column("table_name", sa.String(length=50), nullable=False),
        sa.Column("row_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("field_name", sa.String(length=50), nullable=False),
        sa.Column("src_system", sa.String(length=100), nullable=False),
        sa.Column("src_table", sa.String(length=100), nullable=True),
        sa.Column("src_row", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint(
            "table_name", "row_id", "field_name", name=op.f("pk_value_provenance")
        ),
    )


def downgrade() -> None:
    op.drop_table("value_provenance")
