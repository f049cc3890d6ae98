"""Alembic scripts of the CDM (a package only so that installs ship them)."""
