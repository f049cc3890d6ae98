"""The CDM migration builds exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from shared_cdm.db import (
    CDM_VERSION_TABLE,
    current_revision,
    downgrade,
    head_revision,
    only_tables_of,
    upgrade,
)
from shared_cdm.errors import InvalidInput
from shared_cdm.models import Base

CDM_TABLES = {
    "person",
    "observation_period",
    "visit_occurrence",
    "condition_occurrence",
    "procedure_occurrence",
    "drug_exposure",
    "measurement",
    "specimen",
    "note",
    "note_nlp",
    "death",
    "episode",
    "episode_event",
    "care_site",
    "cdm_source",
    "concept",
    "lung_cancer_dataset",
    "value_provenance",
}
CDM_HEAD = "0002"


def _schema_diff(url: str, metadata: sa.MetaData) -> list[object]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={"include_name": only_tables_of(metadata), "compare_type": True},
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def _table_names(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_models_declare_every_cdm_table() -> None:
    assert set(Base.metadata.tables) == CDM_TABLES


def test_constraint_names_are_explicit_and_fit_postgresql() -> None:
    for table in Base.metadata.tables.values():
        names = [c.name for c in table.constraints] + [i.name for i in table.indexes]
        for name in names:
            assert isinstance(name, str), f"unnamed constraint on {table.name}"
            assert len(name) <= 63, name


def test_upgrade_creates_the_models_schema_without_drift(db_url: str) -> None:
    upgrade(db_url)

    assert _table_names(db_url) == CDM_TABLES | {CDM_VERSION_TABLE}
    assert _schema_diff(db_url, Base.metadata) == []
    assert current_revision(db_url) == head_revision() == CDM_HEAD


def test_check_constraints_are_named_alike_on_both_backends(db_url: str) -> None:
    upgrade(db_url)
    engine = sa.create_engine(db_url)
    try:
        inspector = sa.inspect(engine)
        for table in Base.metadata.tables.values():
            declared = {c.name for c in table.constraints if isinstance(c, sa.CheckConstraint)}
            reflected = {c["name"] for c in inspector.get_check_constraints(table.name)}
            assert reflected == declared, table.name
    finally:
        engine.dispose()


def test_schema_comparison_notices_a_missing_column(db_url: str) -> None:
    # Guards the no-drift test above: the comparison must be able to fail.
    upgrade(db_url)
    drifted = sa.MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(drifted)
    drifted.tables["person"].append_column(sa.Column("hospital_id", sa.String(20)))

    diff = _schema_diff(db_url, drifted)

    assert [d[0] for d in diff if isinstance(d, tuple)] == ["add_column"]


def test_downgrade_to_base_removes_every_cdm_table(db_url: str) -> None:
    upgrade(db_url)

    downgrade(db_url, revision="base")

    assert _table_names(db_url) & CDM_TABLES == set()
    assert current_revision(db_url) is None


def _write_other_environment(root: Path) -> Path:
    """A second component's Alembic environment, written the way the CDM's is."""
    (root / "versions").mkdir(parents=True)
    (root / "env.py").write_text(
        textwrap.dedent(
            """
            import sqlalchemy as sa
            from shared_cdm.db import run_migrations

            metadata = sa.MetaData()
            sa.Table("hub_study", metadata, sa.Column("id", sa.Integer, primary_key=True))
            run_migrations(metadata)
            """
        )
    )
    (root / "versions" / "0001_hub_study.py").write_text(
        textwrap.dedent(
            """
            import sqlalchemy as sa
            from alembic import op

            revision = "0001"  # the same id as the CDM's first revision, on purpose
            down_revision = None
            branch_labels = None
            depends_on = None

            def upgrade():
                op.create_table("hub_study", sa.Column("id", sa.Integer, primary_key=True))

            def downgrade():
                op.drop_table("hub_study")
            """
        )
    )
    return root


def test_two_environments_share_a_database_with_their_own_version_tables(
    db_url: str, tmp_path: Path
) -> None:
    other = str(_write_other_environment(tmp_path / "hub_migrations"))

    upgrade(db_url)
    upgrade(db_url, script_location=other, version_table="alembic_version_hub")

    assert current_revision(db_url) == CDM_HEAD
    assert current_revision(db_url, version_table="alembic_version_hub") == "0001"
    assert "hub_study" in _table_names(db_url)
    # Neither environment reports the other's tables as drift.
    assert _schema_diff(db_url, Base.metadata) == []

    downgrade(db_url, script_location=other, version_table="alembic_version_hub")

    assert "hub_study" not in _table_names(db_url)
    assert _table_names(db_url) >= CDM_TABLES
    assert current_revision(db_url) == CDM_HEAD


def test_upgrade_refuses_a_malformed_url() -> None:
    with pytest.raises(InvalidInput, match="not a database URL"):
        upgrade("no-such-scheme-and-no-colon")
