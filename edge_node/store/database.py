"""Opening and migrating the edge's two databases."""

from __future__ import annotations

from sqlalchemy import Engine

from shared_cdm.db import make_engine, upgrade

SCRIPT_LOCATION = "edge_node:migrations"
VERSION_TABLE = "alembic_version_edge"


def upgrade_state_db(url: str) -> None:
    """Create or upgrade the state database (tasks, dataset registry) to the newest revision."""
    upgrade(url, script_location=SCRIPT_LOCATION, version_table=VERSION_TABLE)


def open_state_db(url: str) -> Engine:
    """The state database, migrated first so the agent never runs on an old schema."""
    upgrade_state_db(url)
    return make_engine(url)


def open_analysis_db(url: str) -> Engine:
    """The analysis database: dataset tables only, created on demand (no migrations)."""
    return make_engine(url)
