"""Migration 0005: the sealed re-identification map and the stays' sealed IDs match
the models, an index with identifiers in clear is dropped for a full re-read, and
it downgrades."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from edge_node.pipeline.state import AdmissionLink, ReidEntry
from edge_node.store.database import SCRIPT_LOCATION, VERSION_TABLE, upgrade_state_db
from shared_cdm.db import current_revision, downgrade, upgrade

TABLES = {ReidEntry.__tablename__, AdmissionLink.__tablename__}


def _diff(url: str) -> list[object]:
    metadata = sa.MetaData()
    for name in TABLES:
        ReidEntry.metadata.tables[name].to_metadata(metadata)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "include_name": lambda n, t, _p: t != "table" or n in TABLES,
                    "compare_type": True,
                },
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def _scalar(url: str, sql: str) -> object:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar()
    finally:
        engine.dispose()


def _columns(url: str, table: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return {c["name"] for c in sa.inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def test_0005_matches_the_models_drops_a_clear_index_and_downgrades(db_url: str) -> None:
    upgrade(db_url, script_location=SCRIPT_LOCATION, version_table=VERSION_TABLE, revision="0004")
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:  # an index as 0004 kept it: hospital IDs in clear
            conn.execute(
                sa.text(
                    "INSERT INTO pipeline_patients (patient_id, person_key, completeness, source,"
                    " source_table, row_key, run_id, first_run) VALUES"
                    " ('P000123', 'k1', 3, 'emr', 'patients', 'P000123', 1, 1)"
                )
            )
            conn.execute(
                sa.text(
                    "INSERT INTO pipeline_persons (person_key, is_cancer, dirty, needs_backfill,"
                    " in_cdm) VALUES ('k1', :t, :f, :f, :t)"
                ),
                {"t": True, "f": False},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO pipeline_watermarks (source, source_table, watermark,"
                    " updated_at) VALUES ('emr', 'patients', 'P000123', '2026-01-01 00:00:00')"
                )
            )
    finally:
        engine.dispose()
    upgrade_state_db(db_url)
    assert current_revision(db_url, version_table=VERSION_TABLE) == "0005"
    assert _diff(db_url) == []
    assert _scalar(db_url, "SELECT count(*) FROM pipeline_patients") == 0
    assert _scalar(db_url, "SELECT count(*) FROM pipeline_watermarks") == 0  # a full re-read
    # the person (a pseudonym, no ID) stays, to be rebuilt or removed by the next sync
    assert _scalar(db_url, "SELECT count(*) FROM pipeline_persons WHERE dirty") == 1

    downgrade(db_url, script_location=SCRIPT_LOCATION, version_table=VERSION_TABLE, revision="0004")
    assert _scalar(db_url, "SELECT count(*) FROM pipeline_persons") == 1
    engine = sa.create_engine(db_url)
    try:
        assert "pipeline_reid_map" not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
    assert "sealed_id" not in _columns(db_url, "pipeline_admissions")
    upgrade_state_db(db_url)
    assert "sealed_id" in _columns(db_url, "pipeline_admissions")
