"""Alembic scripts of the edge's state database (a package only so that installs ship them)."""
