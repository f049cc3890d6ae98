"""Alembic environment of the hub's tables (version table `alembic_version_hub`)."""
