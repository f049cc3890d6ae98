from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from hub.db.models import Base
from hub.db.session import SCRIPT_LOCATION, VERSION_TABLE, upgrade_database
from shared_cdm.db import current_revision, downgrade, head_revision, only_tables_of


def test_migrations_build_exactly_the_models_and_come_down_again(db_url: str) -> None:
    upgrade_database(db_url)
    upgrade_database(db_url)  # idempotent
    assert current_revision(db_url, version_table=VERSION_TABLE) == head_revision(SCRIPT_LOCATION)
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={"compare_type": True, "include_name": only_tables_of(Base.metadata)},
            )
            assert compare_metadata(context, Base.metadata) == []
            tables = set(sa.inspect(conn).get_table_names())
        assert {"users", "nodes", "studies", "tasks", "audit_log", VERSION_TABLE} <= tables

        downgrade(db_url, script_location=SCRIPT_LOCATION, version_table=VERSION_TABLE)
        with engine.connect() as conn:
            left = set(sa.inspect(conn).get_table_names())
        assert not {"users", "nodes", "studies", "tasks", "audit_log"} & left
    finally:
        engine.dispose()
