"""Fixtures shared by every test tier.

`pg_url` gives each test session its own throwaway database on the PostgreSQL
server named by ONCOFED_TEST_PG_URL (`make test` always sets it). When it is not
set the PostgreSQL tests fail rather than skip, unless ONCOFED_ALLOW_NO_PG=1 is
set by a developer running a quick subset by hand.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa


def _admin_url() -> str | None:
    return os.environ.get("ONCOFED_TEST_PG_URL")


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    url = _admin_url()
    if not url:
        if os.environ.get("ONCOFED_ALLOW_NO_PG") == "1":
            pytest.skip("ONCOFED_TEST_PG_URL not set and ONCOFED_ALLOW_NO_PG=1")
        pytest.fail("ONCOFED_TEST_PG_URL is not set: run through `make test`")
    return url


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"oncofed_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base = sa.engine.make_url(pg_server_url)
    url = base.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: os.PathLike[str]) -> str:
    return f"sqlite:///{os.path.join(os.fspath(tmp_path), 'test.db')}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Runs a test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))
