"""Edge fixtures: the state and analysis databases on SQLite and PostgreSQL (one site or
three), a registry."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from edge_node.store.database import open_analysis_db, open_state_db
from edge_node.store.datasets import DatasetRegistry
from edge_node.store.tasks import TaskStore


@dataclass(frozen=True)
class EdgeDbs:
    state: Engine
    analysis: Engine

    @property
    def registry(self) -> DatasetRegistry:
        return DatasetRegistry(self.state)

    @property
    def tasks(self) -> TaskStore:
        return TaskStore(self.state)


@pytest.fixture
def edge_dbs(db_url: str) -> Iterator[EdgeDbs]:
    """Both edge databases in one test database (their tables never overlap)."""
    dbs = EdgeDbs(open_state_db(db_url), open_analysis_db(db_url))
    try:
        yield dbs
    finally:
        dbs.state.dispose()
        dbs.analysis.dispose()


@contextmanager
def fresh_pg_databases(server_url: str, count: int) -> Iterator[list[str]]:
    """`count` empty PostgreSQL databases on the test server, dropped afterwards."""
    names = [f"oncofed_t_{uuid.uuid4().hex[:12]}" for _ in range(count)]
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    base = sa.engine.make_url(server_url)
    try:
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield [base.set(database=n).render_as_string(hide_password=False) for n in names]
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def three_site_urls(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[str]]:
    """One database per site for three sites (state and analysis tables side by side),
    shared by a module's tests, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        folder = tmp_path_factory.mktemp("sites")
        yield [f"sqlite:///{folder / f'site{i}.db'}" for i in range(3)]
        return
    server = str(request.getfixturevalue("pg_server_url"))
    with fresh_pg_databases(server, 3) as urls:
        yield urls
