"""`oncofed-edge vault|users|audit|reidentify`: the security commands.

`register(app)` adds them to the main `oncofed-edge` app. This module does not
import `edge_node.cli` (which calls `register`); both take `_run` from
`edge_node.cli_support`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edge_node.cli_support import run_command as _run
from edge_node.cli_support import settings_or_exit as _settings
from edge_node.pipeline.deid import SiteSecret
from edge_node.security.access import ENV_TOKEN_FILE, acting_token, gate
from edge_node.security.audit import AuditLog
from edge_node.security.broker import reidentify
from edge_node.security.users import (
    ENV_TOKEN,
    add_user,
    disable_user,
    list_users,
    parse_role,
    state_engine,
)
from edge_node.security.vault import init_vault, load_vault, require_vault
from shared_cdm.errors import Conflict

vault_app = typer.Typer(
    help="The vault key that encrypts the site secret at rest.", no_args_is_help=True
)
users_app = typer.Typer(
    help="Edge users and their roles (site_operator, clinician, honest_broker).",
    no_args_is_help=True,
)
audit_app = typer.Typer(help="The edge's hash-chained audit log.", no_args_is_help=True)

HomeOpt = Annotated[
    Path,
    typer.Option(
        "--home",
        envvar="ONCOFED_EDGE_HOME",
        help="The edge's data folder (edge.toml, policy.toml, databases, tls/).",
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar=ENV_TOKEN,
        show_default=False,
        help="Your edge user token (prefer a token file or the environment variable: "
        "they stay out of shell history).",
    ),
]
TokenFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        envvar=ENV_TOKEN_FILE,
        show_default=False,
        help="A file (mode 0600) holding your token, e.g. the one `init --operator` wrote.",
    ),
]
DEFAULT_HOME = Path("edge-data")


# --- vault ---------------------------------------------------------------------------


@vault_app.command("init")
def vault_init(home: HomeOpt = DEFAULT_HOME) -> None:
    """Create the vault key (HOME/vault.key, mode 0600) unless one is configured, and
    encrypt the site secret under it. Safe to re-run; never replaces a key."""
    settings = _settings(home)
    for note in _run(lambda: ensure_vault(settings.home)):
        typer.echo(note, err=True)


def ensure_vault(home: Path) -> list[str]:
    """The vault key (created unless configured) and the site secret under it; notes
    for the operator. Shared by `vault init` and `oncofed-edge init`."""
    result = init_vault(home)
    vault = result.vault
    notes = [
        f"wrote vault key {result.created} (mode 0600, key id {vault.key_id.hex()}): "
        "back it up apart from the edge's data; without it the site secret and the "
        "re-identification map are lost"
        if result.created
        else f"vault key from {vault.source} (key id {vault.key_id.hex()})"
    ]
    secret = SiteSecret.path_in(home)
    if not secret.exists():
        notes.append(f"no site secret yet: {secret} will be created encrypted")
    elif SiteSecret.encrypt_in_place(secret, vault):
        notes.append(f"encrypted the site secret {secret}")
    else:
        notes.append(f"site secret {secret} is encrypted under this key")
    return notes


@vault_app.command("status")
def vault_status(home: HomeOpt = DEFAULT_HOME) -> None:
    """Where the vault key comes from (never the key) and whether the site secret is
    encrypted."""
    settings = _settings(home)

    def body() -> list[str]:
        vault = load_vault(settings.home)
        secret = SiteSecret.path_in(settings.home)
        if secret.exists():
            state = "encrypted" if SiteSecret.is_encrypted(secret) else "in clear"
        else:
            state = "not created yet"
        key = f"{vault.source} (key id {vault.key_id.hex()})" if vault else "none configured"
        return [f"vault key\t{key}", f"site secret\t{secret}\t{state}"]

    for line in _run(body):
        typer.echo(line)


# --- users ---------------------------------------------------------------------------


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="The user's name, e.g. a staff ID.")],
    roles: Annotated[
        list[str],
        typer.Option("--role", help="site_operator, clinician or honest_broker (repeatable)."),
    ],
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Add a user and print their token once (site operators; the first user, a site
    operator, needs no token)."""
    settings = _settings(home)

    def body() -> str:
        wanted = [parse_role(r) for r in roles]
        acting = acting_token(token, token_file)
        with state_engine(settings) as engine:
            user, new_token = add_user(engine, name, wanted, token=acting)
        typer.echo(f"added {user.name} ({user.role_text}); their token, shown only now:", err=True)
        return new_token

    typer.echo(_run(body))


@users_app.command("list")
def users_list(
    token: TokenOpt = None, token_file: TokenFileOpt = None, home: HomeOpt = DEFAULT_HOME
) -> None:
    """List users: name, roles, created, active or disabled (site operators)."""
    settings = _settings(home)

    def body() -> list[str]:
        gate(settings, "users list", token, token_file)
        with state_engine(settings) as engine:
            return [
                "\t".join(
                    [
                        u.name,
                        u.role_text,
                        u.created_at.isoformat(timespec="seconds"),
                        "disabled" if u.disabled else "active",
                    ]
                )
                for u in list_users(engine)
            ]

    lines = _run(body)
    typer.echo("name\troles\tcreated\tstatus")
    for line in lines:
        typer.echo(line)


@users_app.command("disable")
def users_disable(
    name: Annotated[str, typer.Argument(help="The user to disable.")],
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Disable a user: their token stops working at once (site operators)."""
    settings = _settings(home)

    def body() -> None:
        acting = acting_token(token, token_file)
        with state_engine(settings) as engine:
            disable_user(engine, name, token=acting)

    _run(body)
    typer.echo(f"disabled user {name}", err=True)


# --- audit ---------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify(
    token: TokenOpt = None, token_file: TokenFileOpt = None, home: HomeOpt = DEFAULT_HOME
) -> None:
    """Check the whole hash chain; exits non-zero naming the first entry that was edited,
    removed or reordered (site operators)."""
    settings = _settings(home)

    def body() -> str:
        gate(settings, "audit verify", token, token_file)
        with state_engine(settings) as engine:
            report = AuditLog(engine).verify()
        if not report.ok:
            for problem in report.problems:
                typer.echo(f"  {problem}", err=True)
            raise Conflict(
                f"the audit log is broken at entry {report.problems[0].seq}: "
                f"{report.problems[0].problem} ({len(report.problems)} problem(s) in all)",
                code="audit_chain_broken",
            )
        return (
            f"audit log intact: {report.entries} entries; head entry {report.head_seq} "
            f"hash {report.head_hash}"
        )

    typer.echo(_run(body))


@audit_app.command("list")
def audit_list(
    limit: Annotated[int, typer.Option("--limit", min=1, help="The newest N entries.")] = 50,
    action: Annotated[
        str | None, typer.Option("--action", help="Only this action, e.g. reidentify.")
    ] = None,
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Show audit entries, oldest first: seq, time, actor, roles, action, target, details
    (site operators)."""
    settings = _settings(home)

    def body() -> list[str]:
        gate(settings, "audit list", token, token_file)
        with state_engine(settings) as engine:
            return [
                "\t".join(
                    [
                        str(e.seq),
                        e.at.isoformat(timespec="seconds"),
                        e.actor,
                        e.role,
                        e.action,
                        e.target,
                        json.dumps(e.details, sort_keys=True, ensure_ascii=False),
                    ]
                )
                for e in AuditLog(engine).entries(limit=limit, action=action)
            ]

    lines = _run(body)
    typer.echo("seq\tat\tactor\troles\taction\ttarget\tdetails")
    for line in lines:
        typer.echo(line)


# --- the honest broker ---------------------------------------------------------------


def reidentify_command(
    pseudonym: Annotated[
        str, typer.Argument(help="The CDM's person_source_value (32 hex digits).")
    ],
    reason: Annotated[
        str, typer.Option("--reason", help="Why (e.g. a ticket); kept in the audit log.")
    ] = "",
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Print the hospital patient ID(s) behind a pseudonym (honest brokers only; every
    attempt is audited)."""
    settings = _settings(home)

    def body() -> list[str]:
        acting = acting_token(token, token_file)
        with state_engine(settings) as engine:
            return reidentify(
                engine, acting, pseudonym, vault=lambda: require_vault(settings.home), reason=reason
            )

    ids = _run(body)
    if len(ids) > 1:
        typer.echo(f"{len(ids)} patient IDs (merged duplicate records)", err=True)
    for patient_id in ids:
        typer.echo(patient_id)


def register(app: typer.Typer) -> None:
    """Add `vault`, `users`, `audit` and `reidentify` to the `oncofed-edge` app."""
    app.add_typer(vault_app, name="vault")
    app.add_typer(users_app, name="users")
    app.add_typer(audit_app, name="audit")
    app.command("reidentify")(reidentify_command)
