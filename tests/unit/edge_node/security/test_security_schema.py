"""Migration 0004 builds exactly the security models' tables, and `register` adds
commands that all have help."""

from __future__ import annotations

import click
import sqlalchemy as sa
import typer
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from edge_node.security.models import AuditEntry, EdgeUser
from edge_node.store.database import SCRIPT_LOCATION, VERSION_TABLE, upgrade_state_db
from shared_cdm.db import current_revision, downgrade, head_revision

TABLES = {AuditEntry.__tablename__, EdgeUser.__tablename__}


def _diff(url: str) -> list[object]:
    metadata = sa.MetaData()
    for name in TABLES:
        AuditEntry.metadata.tables[name].to_metadata(metadata)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "include_name": lambda n, t, _p: t != "table" or n in TABLES,
                    "compare_type": True,
                },
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_0004_creates_the_models_schema_and_downgrades(db_url: str) -> None:
    assert head_revision(SCRIPT_LOCATION) == "0005"  # 0005: the sealed link index
    upgrade_state_db(db_url)
    assert current_revision(db_url, version_table=VERSION_TABLE) == "0005"
    assert _diff(db_url) == []
    downgrade(db_url, script_location=SCRIPT_LOCATION, version_table=VERSION_TABLE, revision="0003")
    assert not TABLES & _tables(db_url)
    assert "pipeline_patients" in _tables(db_url)
    upgrade_state_db(db_url)
    assert _tables(db_url) >= TABLES


def _commands(group: click.Command, prefix: str = "") -> list[tuple[str, click.Command]]:
    if not isinstance(group, click.Group):
        return [(prefix.strip(), group)]
    found: list[tuple[str, click.Command]] = []
    for name, command in group.commands.items():
        found += _commands(command, f"{prefix}{name} ")
    return found


def test_registered_commands_all_have_help(cli: typer.Typer) -> None:
    commands = dict(_commands(typer.main.get_command(cli)))
    assert set(commands) == {
        "vault init",
        "vault status",
        "users add",
        "users list",
        "users disable",
        "audit verify",
        "audit list",
        "reidentify",
    }
    for name, command in commands.items():
        assert command.help, name
        for param in command.params:
            if isinstance(param, click.Option):
                assert getattr(param, "help", None), f"{name} {param.name}"
