"""Edge users, their roles and tokens, and the checks every data-reading command makes.

Roles (a user may hold several; no role implies another):

- `site_operator` runs the edge: syncs the hospital's sources into the CDM, reads
  source samples (`mapping suggest`) and quarantined rows (which are identified
  data), exports the CDM, registers datasets, approves or rejects tasks, runs the
  agent, manages users and reads the audit log;
- `clinician` reads the site's own read-only views: which datasets it serves
  (`dataset list`), which tasks the hub sent (`tasks list`), what was released to
  whom (`ledger list`, `ledger budget`) and the release rules (`policy show`);
  never source rows, identified data, or anything that changes the edge;
- `honest_broker` is the only role that maps a pseudonym back to the hospital's
  patient ID (`reidentify`).

`edge_node.security.access.COMMAND_ROLES` is the table the CLI enforces, command by
command (docs/edge-security.md). The edge serves no endpoint: its agent dials out
to the hub and pulls tasks, so the CLI is the only way in.

A token is 32 random bytes (URL-safe base64, prefixed `oet_`) shown once when the
user is added; the database keeps only its SHA-256, so a copy of the state
database hands out no working token. The acting user's token comes from `--token`,
`--token-file`, `ONCOFED_EDGE_TOKEN` or `ONCOFED_EDGE_TOKEN_FILE` (see
`access.acting_token`).

Every authorization decision, granted or refused, is written to the audit log.
The first user must be a site operator and may be added without a token (whoever
can run the CLI on the edge's home bootstraps it: `oncofed-edge init --operator
NAME --token-file PATH`, or `users add NAME --role site_operator`); from then on
only a site operator adds or disables users.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import re
import secrets
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from edge_node.security.audit import append_in, run_audited
from edge_node.security.models import EdgeUser
from edge_node.settings import EdgeSettings
from edge_node.store.database import open_state_db
from shared_cdm.db import session_factory
from shared_cdm.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated

TOKEN_PREFIX = "oet_"
ENV_TOKEN = "ONCOFED_EDGE_TOKEN"
_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")


class Role(StrEnum):
    SITE_OPERATOR = "site_operator"
    CLINICIAN = "clinician"
    HONEST_BROKER = "honest_broker"


@dataclass(frozen=True)
class User:
    name: str
    roles: frozenset[Role]
    created_at: datetime
    disabled: bool = False

    def has(self, role: Role) -> bool:
        return role in self.roles

    @property
    def role_text(self) -> str:
        return ",".join(sorted(self.roles))


def parse_role(value: str) -> Role:
    try:
        return Role(value.strip().lower().replace("-", "_"))
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise InvalidInput(f"unknown role {value!r}; choose from: {known}") from None


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def local_actor() -> str:
    """Who ran a command without a token: the operating-system user."""
    try:
        return f"local:{getpass.getuser()}"
    except (KeyError, OSError):
        return "local:unknown"


def _user(row: EdgeUser) -> User:
    roles = frozenset(Role(r) for r in row.roles.split(",") if r)
    return User(row.name, roles, row.created_at, row.disabled)


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def _has_active_operator(session: Session) -> bool:
    for row in session.scalars(sa.select(EdgeUser).where(EdgeUser.disabled.is_(False))):
        if Role.SITE_OPERATOR in _user(row).roles:
            return True
    return False


def has_site_operator(engine: Engine) -> bool:
    """Whether the edge has an active site operator (else the first may bootstrap)."""
    with session_factory(engine)() as session:
        return _has_active_operator(session)


def authenticate(session: Session, token: str | None) -> User:
    """The user holding `token`; `Unauthenticated` for none, an unknown or a disabled one."""
    if not token:
        raise Unauthenticated(
            f"no token: pass --token or --token-file, or set {ENV_TOKEN} or {ENV_TOKEN}_FILE",
            code="no_token",
        )
    digest = hash_token(token.strip())
    row = session.scalar(sa.select(EdgeUser).where(EdgeUser.token_hash == digest))
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        raise Unauthenticated("the token is not valid", code="bad_token")
    user = _user(row)
    if user.disabled:
        raise Unauthenticated(f"user {user.name!r} is disabled", code="user_disabled")
    return user


def authorize(session: Session, token: str | None, needed: Role | Collection[Role]) -> User:
    """The token's user if they hold `needed` (or any of several); raises
    `Unauthenticated` or `Forbidden`. Not audited: see `check_role`."""
    user = authenticate(session, token)
    wanted = {needed} if isinstance(needed, Role) else set(needed)
    if not wanted & user.roles:
        names = " or ".join(sorted(wanted))
        raise Forbidden(
            f"user {user.name!r} ({user.role_text or 'no role'}) may not do this: "
            f"it needs the {names} role",
            code="role_required",
        )
    return user


def identify_actor(session: Session, token: str | None) -> tuple[str, str]:
    """(actor, role) for an audit entry of a refused attempt: whoever the token names."""
    if not token:
        return local_actor(), ""
    digest = hash_token(token.strip())
    row = session.scalar(sa.select(EdgeUser).where(EdgeUser.token_hash == digest))
    if row is None:
        return "unknown-token", ""
    return row.name, _user(row).role_text


def check_role(
    engine: Engine,
    token: str | None,
    needed: Role | Collection[Role],
    *,
    action: str,
    target: str = "",
    now: datetime | None = None,
) -> User:
    """`authorize`, with the decision (granted or refused) written to the audit log."""

    def body(session: Session) -> User | Exception:
        try:
            user = authorize(session, token, needed)
        except (Unauthenticated, Forbidden) as exc:
            actor, role = identify_actor(session, token)
            append_in(
                session,
                actor=actor,
                role=role,
                action=action,
                target=target,
                details={"outcome": "refused", "code": exc.code},
                at=_now(now),
            )
            return exc
        append_in(
            session,
            actor=user.name,
            role=user.role_text,
            action=action,
            target=target,
            details={"outcome": "granted"},
            at=_now(now),
        )
        return user

    # The refusal is committed before it is raised.
    result = run_audited(engine, body)
    if isinstance(result, Exception):
        raise result
    return result


@contextmanager
def state_engine(settings: EdgeSettings) -> Iterator[Engine]:
    """The (migrated) state database, disposed on the way out."""
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = open_state_db(settings.state_db_url)
    try:
        yield engine
    finally:
        engine.dispose()


def require_role(
    settings: EdgeSettings,
    token: str | None,
    role: Role | Collection[Role],
    *,
    action: str = "access",
    target: str = "",
) -> User:
    """For a command that reads data: the acting user, if they hold `role`; audited."""
    with state_engine(settings) as engine:
        return check_role(engine, token, role, action=action, target=target)


def add_user(
    engine: Engine,
    name: str,
    roles: Collection[Role],
    *,
    token: str | None,
    now: datetime | None = None,
) -> tuple[User, str]:
    """Create a user; returns it and its token (the only time the token exists).

    `token` is the acting site operator's; it may be None only for the first site
    operator."""
    if not _USER_NAME.fullmatch(name):
        raise InvalidInput(
            f"user name {name!r} must be 1-100 letters, digits, '.', '_', '@' or '-'"
        )
    if not roles:
        raise InvalidInput("give the user at least one --role")
    new = _new_token_pair()

    def body(session: Session) -> User | Exception:
        bootstrap = not _has_active_operator(session)
        if bootstrap and token is None:
            if Role.SITE_OPERATOR not in roles:
                return _refuse(
                    session,
                    Forbidden(
                        "the edge has no site operator yet: the first user must have the "
                        "site_operator role",
                        code="first_user_operator",
                    ),
                    action="users.add",
                    target=name,
                    now=now,
                )
            actor, actor_role = local_actor(), ""
        else:
            try:
                operator = authorize(session, token, Role.SITE_OPERATOR)
            except (Unauthenticated, Forbidden) as exc:
                return _refuse(session, exc, action="users.add", target=name, now=now, token=token)
            actor, actor_role = operator.name, operator.role_text
        if session.get(EdgeUser, name) is not None:
            return Conflict(f"user {name!r} already exists", code="user_exists")
        row = EdgeUser(
            name=name,
            roles=",".join(sorted(set(roles))),
            token_hash=new[1],
            created_at=_now(now),
            disabled=False,
        )
        session.add(row)
        session.flush()
        append_in(
            session,
            actor=actor,
            role=actor_role,
            action="users.add",
            target=name,
            details={"outcome": "granted", "roles": sorted(set(roles)), "bootstrap": bootstrap},
            at=_now(now),
        )
        return _user(row)

    result = run_audited(engine, body)
    if isinstance(result, Exception):
        raise result
    return result, new[0]


def _new_token_pair() -> tuple[str, str]:
    token = new_token()
    return token, hash_token(token)


def _refuse(
    session: Session,
    exc: Unauthenticated | Forbidden,
    *,
    action: str,
    target: str,
    now: datetime | None,
    token: str | None = None,
) -> Exception:
    actor, role = identify_actor(session, token)
    append_in(
        session,
        actor=actor,
        role=role,
        action=action,
        target=target,
        details={"outcome": "refused", "code": exc.code},
        at=_now(now),
    )
    return exc


def disable_user(
    engine: Engine, name: str, *, token: str | None, now: datetime | None = None
) -> User:
    """Disable a user (their token stops working at once); site operators only."""

    def body(session: Session) -> User | Exception:
        try:
            operator = authorize(session, token, Role.SITE_OPERATOR)
        except (Unauthenticated, Forbidden) as exc:
            return _refuse(session, exc, action="users.disable", target=name, now=now, token=token)
        row = session.get(EdgeUser, name)
        if row is None:
            return NotFound(f"no user {name!r}", code="user_not_found")
        if not row.disabled:
            row.disabled, row.disabled_at = True, _now(now)
        session.flush()
        append_in(
            session,
            actor=operator.name,
            role=operator.role_text,
            action="users.disable",
            target=name,
            details={"outcome": "granted"},
            at=_now(now),
        )
        return _user(row)

    result = run_audited(engine, body)
    if isinstance(result, Exception):
        raise result
    return result


def list_users(engine: Engine) -> list[User]:
    with session_factory(engine)() as session:
        return [_user(r) for r in session.scalars(sa.select(EdgeUser).order_by(EdgeUser.name))]
