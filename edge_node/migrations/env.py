"""Alembic environment of the edge's state database (version table `alembic_version_edge`).

Run it through `edge_node.store.database.upgrade_state_db(url)`; the URL and the version
table come from `config.attributes`, so no alembic.ini exists.
"""

# Imported to register the ledger's, the pipeline's and the security tables on Base.metadata.
import edge_node.ledger.models
import edge_node.pipeline.state
import edge_node.security.models  # noqa: F401
from edge_node.store.models import Base
from shared_cdm.db import run_migrations

run_migrations(Base.metadata)
