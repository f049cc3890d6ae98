"""The link index without identifiers in clear: the sealed re-identification map
and the admissions' sealed IDs.

The link index used to key patients, stays and quarantined rows by the hospital's
own IDs; it now keys them by link hashes under the site secret (see
`edge_node/pipeline/sealed.py`), which SQL cannot compute. The old rows are
therefore dropped, with the watermarks, and every known person is marked dirty:
the next sync re-reads the sources in full and rebuilds the index, and the CDM
comes out the same (its pseudonyms and keys are derived as before).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 02:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CLEARED = (
    "pipeline_patients",
    "pipeline_admissions",
    "pipeline_diagnoses",
    "pipeline_quarantine",
    "pipeline_watermarks",
)


def upgrade() -> None:
    for table in _CLEARED:
        op.execute(sa.text(f"DELETE FROM {table}"))
    persons = sa.table("pipeline_persons", sa.column("dirty", sa.Boolean()))
    op.execute(persons.update().values(dirty=True))
    op.create_table(
        "pipeline_reid_map",
        sa.Column("patient_hash", sa.String(length=64), nullable=False),
        sa.Column("person_key", sa.String(length=64), nullable=False),
        sa.Column("sealed_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("patient_hash", name=op.f("pk_pipeline_reid_map")),
    )
    with op.batch_alter_table("pipeline_reid_map", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pipeline_reid_map_person_key"), ["person_key"], unique=False
        )
    with op.batch_alter_table("pipeline_admissions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sealed_id", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pipeline_admissions", schema=None) as batch_op:
        batch_op.drop_column("sealed_id")
    with op.batch_alter_table("pipeline_reid_map", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pipeline_reid_map_person_key"))
    op.drop_table("pipeline_reid_map")
