"""Engine, sessions and the one way the hub writes: `Database.transaction()`.

Write transactions are serialised inside the process: the audit chain and round
advancement need a consistent view, and SQLite allows one writer anyway. Reads
use plain sessions and never wait.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from shared_cdm.db import make_engine, session_factory, upgrade

SCRIPT_LOCATION = "hub:migrations"
VERSION_TABLE = "alembic_version_hub"


def upgrade_database(url: str) -> None:
    """Create or upgrade the hub database to the newest migration."""
    upgrade(url, script_location=SCRIPT_LOCATION, version_table=VERSION_TABLE)


class Database:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions: sessionmaker[Session] = session_factory(engine)
        self._write_lock = threading.RLock()

    @classmethod
    def from_url(cls, url: str) -> Database:
        return cls(make_engine(url))

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A read session; anything it writes is rolled back."""
        with self._sessions() as session:
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write session, committed on success and rolled back on any error."""
        with self._write_lock, self._sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
