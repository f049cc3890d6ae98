"""Alembic environment of the CDM tables (version table `alembic_version_cdm`).

Run it through `shared_cdm.db.upgrade(url)`; the URL and the version table come
from `config.attributes`, so no alembic.ini exists.
"""

from shared_cdm.db import run_migrations
from shared_cdm.models import Base

run_migrations(Base.metadata)
