"""ML studies: the Flower run of each (`ml_runs`) and its per-round metrics (`ml_rounds`).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
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
        "ml_runs",
        sa.Column("study_id", sa.String(length=36), nullable=False),
        sa.Column("flower_run_id", sa.String(length=24), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("model_version", sa.String(length=80), nullable=True),
        sa.Column("model_path", sa.Text(), nullable=True),
        sa.Column("sites", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("submitted_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_ml_runs_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("study_id", name=op.f("pk_ml_runs")),
    )
    op.create_table(
        "ml_rounds",
        sa.Column("study_id", sa.String(length=36), nullable=False),
        sa.Column("server_round", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("train_loss", sa.Float(), nullable=True),
        sa.Column("eval_model_round", sa.Integer(), nullable=True),
        sa.Column("eval_loss", sa.Float(), nullable=True),
        sa.Column("eval_auc_weighted", sa.Float(), nullable=True),
        sa.Column("eval_auc_pooled", sa.Float(), nullable=True),
        sa.Column("sites_asked", sa.JSON(), nullable=False),
        sa.Column("sites_replied", sa.JSON(), nullable=False),
        sa.Column("sites_failed", sa.JSON(), nullable=False),
        sa.Column("calibration", sa.JSON(), nullable=False),
        sa.Column("site_metrics", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_ml_rounds_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("study_id", "server_round", name=op.f("pk_ml_rounds")),
    )


def downgrade() -> None:
    op.drop_table("ml_rounds")
    op.drop_table("ml_runs")
