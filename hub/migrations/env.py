"""Alembic environment of the hub's tables (version table `alembic_version_hub`).

Run it through `hub.db.session.upgrade_database(url)`; the URL and the version
table come from `config.attributes`, so no alembic.ini exists.
"""

from hub.db.models import Base
from shared_cdm.db import run_migrations

run_migrations(Base.metadata)
