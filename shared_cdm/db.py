"""Engines, sessions and programmatic Alembic for any OncoFed database.

Several components keep their own tables and their own Alembic environment in
one database (the CDM here, the hub's or the edge's elsewhere). Each has its own
version table, and each environment only looks at its own tables, so they never
see each other's schema as drift. A component's `env.py` is three lines:

    from shared_cdm.db import run_migrations
    from mycomponent.models import Base
    run_migrations(Base.metadata)

and it migrates with `upgrade(url, script_location="mycomponent:migrations",
version_table="alembic_version_mycomponent")`. No alembic.ini is needed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool, StaticPool

from shared_cdm.errors import InvalidInput

CDM_SCRIPT_LOCATION = "shared_cdm:migrations"
CDM_VERSION_TABLE = "alembic_version_cdm"

IncludeName = Callable[[str | None, str, dict[str, str | None]], bool]


def _parse_url(url: str) -> sa.URL:
    try:
        return sa.make_url(url)
    except ArgumentError as exc:
        raise InvalidInput(f"not a database URL: {url!r}", code="invalid_db_url") from exc


def _enable_sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    # SQLite ignores FOREIGN KEY clauses unless this is set on every connection.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for `url`: foreign keys enforced on SQLite, pre-ping on servers."""
    parsed = _parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        in_memory = parsed.database in (None, "", ":memory:")
        engine = sa.create_engine(
            parsed,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 30},
            # One shared connection, or every thread would see its own empty DB.
            poolclass=StaticPool if in_memory else None,
        )
        sa.event.listen(engine, "connect", _enable_sqlite_foreign_keys)
        return engine
    return sa.create_engine(
        parsed,
        echo=echo,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
        pool_recycle=1800,
    )


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (no reload per access)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def alembic_config(
    url: str,
    *,
    script_location: str | None = None,
    version_table: str = CDM_VERSION_TABLE,
) -> Config:
    """An in-memory Alembic config; the URL travels in `attributes`, not in an
    ini file, so passwords with `%` need no escaping and nothing is written."""
    _parse_url(url)
    config = Config()
    config.set_main_option("script_location", script_location or CDM_SCRIPT_LOCATION)
    config.attributes["url"] = url
    config.attributes["version_table"] = version_table
    return config


def upgrade(
    url: str,
    *,
    script_location: str | None = None,
    version_table: str = CDM_VERSION_TABLE,
    revision: str = "head",
) -> None:
    """Migrate the database at `url` to `revision` (the CDM tables by default)."""
    config = alembic_config(url, script_location=script_location, version_table=version_table)
    command.upgrade(config, revision)


def downgrade(
    url: str,
    *,
    script_location: str | None = None,
    version_table: str = CDM_VERSION_TABLE,
    revision: str = "base",
) -> None:
    """Migrate down to `revision` ("base" removes every table of that environment)."""
    config = alembic_config(url, script_location=script_location, version_table=version_table)
    command.downgrade(config, revision)


def current_revision(url: str, *, version_table: str = CDM_VERSION_TABLE) -> str | None:
    """The revision recorded in `version_table`, or None if never migrated."""
    engine = sa.create_engine(_parse_url(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"version_table": version_table})
            return context.get_current_revision()
    finally:
        engine.dispose()


def head_revision(script_location: str | None = None) -> str | None:
    """The newest revision the scripts define (compare with `current_revision`)."""
    config = Config()
    config.set_main_option("script_location", script_location or CDM_SCRIPT_LOCATION)
    return ScriptDirectory.from_config(config).get_current_head()


def only_tables_of(metadata: sa.MetaData) -> IncludeName:
    """An Alembic `include_name` hook that sees only `metadata`'s tables, so
    another component's tables (and version tables) are never reported as drift."""

    def include_name(name: str | None, type_: str, _parents: dict[str, str | None]) -> bool:
        if type_ == "table":
            return name in metadata.tables
        return True

    return include_name


def run_migrations(target_metadata: sa.MetaData) -> None:
    """The body of an `env.py`: reads `url` and `version_table` from
    `config.attributes` (falling back to `sqlalchemy.url` for the alembic CLI)."""
    from alembic import context

    config = context.config
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise InvalidInput("no database URL given to Alembic", code="invalid_db_url")
    options: dict[str, Any] = {
        "target_metadata": target_metadata,
        "version_table": config.attributes.get("version_table", CDM_VERSION_TABLE),
        "include_name": only_tables_of(target_metadata),
        "compare_type": True,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        "render_as_batch": _parse_url(url).get_backend_name() == "sqlite",
    }
    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
        return
    # NullPool and no FK pragma: SQLite batch rebuilds must not trip foreign keys.
    engine = sa.create_engine(_parse_url(url), poolclass=NullPool)
    if options["render_as_batch"]:
        _transactional_sqlite_ddl(engine)
        options["transactional_ddl"] = True
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, **options)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


def _transactional_sqlite_ddl(engine: Engine) -> None:
    """Let SQLite run a migration's DDL and its version row in one transaction.

    pysqlite commits before every DDL statement by itself, so a process killed in
    the middle of a migration would leave tables without a version row; with the
    driver's own transaction handling off and an explicit BEGIN, SQLite's
    transactional DDL makes the migration all or nothing.
    """

    def no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    def begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN")

    sa.event.listen(engine, "connect", no_driver_transactions)
    sa.event.listen(engine, "begin", begin)
