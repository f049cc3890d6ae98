"""`oncofed-hub`: the coordinating hub's command line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from hub import audit
from hub.auth import add_user, list_users, parse_role
from hub.db.session import Database, upgrade_database
from hub.server import serve
from hub.settings import HubSettings, load_settings
from hub.studies.ml_page import figures_page
from hub.studies.service import utc_now
from shared_cdm.errors import EXIT_CODES, ErrorKind, InvalidInput, OncoFedError

app = typer.Typer(help="OncoFed coordinating hub.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="The hub database.", no_args_is_help=True)
users_app = typer.Typer(help="People who use the REST API.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
study_app = typer.Typer(help="Studies, as the hub's operator sees them.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(audit_app, name="audit")
app.add_typer(study_app, name="study")

HomeOpt = Annotated[
    Path,
    typer.Option(
        "--home",
        envvar="ONCOFED_HUB_HOME",
        help="The hub's data folder (hub.toml, database, tls/).",
    ),
]
T = TypeVar("T")


def _run(action: Callable[[], T]) -> T:
    """Run a command body; a typed error becomes a one-line message and its exit code."""
    try:
        return action()
    except OncoFedError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(EXIT_CODES.get(exc.kind, 1)) from exc


def _settings(home: Path) -> HubSettings:
    settings = _run(lambda: load_settings(home))
    settings.home.mkdir(parents=True, exist_ok=True)  # the default SQLite file lives here
    return settings


def _database(settings: HubSettings) -> Database:
    upgrade_database(settings.db_url)
    return Database.from_url(settings.db_url)


@db_app.command("upgrade")
def db_upgrade(home: HomeOpt = Path("hub-data")) -> None:
    """Create the hub database or upgrade it to the newest schema."""
    settings = _settings(home)
    _run(lambda: upgrade_database(settings.db_url))
    typer.echo(f"hub database at {settings.db_url} is up to date", err=True)


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="The user's login name.")],
    role: Annotated[str, typer.Option("--role", help="researcher or coordinator.")],
    home: HomeOpt = Path("hub-data"),
) -> None:
    """Add a user and print their API token (shown only this once) on stdout."""
    settings = _settings(home)

    def body() -> str:
        db = _database(settings)
        try:
            with db.transaction() as session:
                now = utc_now()
                user, token = add_user(session, name, parse_role(role), now=now)
                audit.append(
                    session,
                    at=now,
                    actor="cli",
                    action="user.added",
                    object_id=user.name,
                    details={"role": user.role.value},
                )
            return token
        finally:
            db.dispose()

    typer.echo(_run(body))


@users_app.command("list")
def users_list(home: HomeOpt = Path("hub-data")) -> None:
    """List users and their roles (tokens are never shown again)."""
    settings = _settings(home)

    def body() -> None:
        db = _database(settings)
        try:
            with db.session() as session:
                for user in list_users(session):
                    typer.echo(f"{user.name}\t{user.role.value}\t{user.created_at.isoformat()}")
        finally:
            db.dispose()

    _run(body)


@audit_app.command("verify")
def audit_verify(home: HomeOpt = Path("hub-data")) -> None:
    """Check the audit log's hash chain; exits non-zero at the first broken entry."""
    settings = _settings(home)

    def body() -> audit.ChainReport:
        db = _database(settings)
        try:
            with db.session() as session:
                return audit.verify(session)
        finally:
            db.dispose()

    report = _run(body)
    if report.ok:
        typer.echo(f"audit log ok: {report.entries} entries")
        return
    typer.echo(f"audit log broken at entry {report.first_bad_id}: {report.reason}", err=True)
    raise typer.Exit(EXIT_CODES[ErrorKind.CONFLICT])


@study_app.command("figures")
def study_figures(
    study_id: Annotated[str, typer.Argument(help="The ML study's id.")],
    out: Annotated[Path, typer.Option("--out", help="The HTML file to write.")],
    home: HomeOpt = Path("hub-data"),
) -> None:
    """Write an ML study's figures as one self-contained HTML page (no internet needed)."""
    settings = _settings(home)

    def body() -> None:
        db = _database(settings)
        try:
            page = figures_page(db, study_id)
        finally:
            db.dispose()
        try:
            out.write_text(page, encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"cannot write {out}: {exc.strerror}", code="bad_out") from exc

    _run(body)
    typer.echo(f"figures of study {study_id} written to {out}", err=True)


@app.command("serve")
def serve_command(home: HomeOpt = Path("hub-data")) -> None:
    """Run the gRPC service and the REST API until SIGTERM or SIGINT."""
    settings = _settings(home)
    _run(lambda: serve(settings))


def main() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    app()


if __name__ == "__main__":
    main()
