"""Edge fixtures: the state and analysis databases on SQLite and PostgreSQL, a registry."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
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
