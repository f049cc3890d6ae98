"""Users, API tokens and roles, and the FastAPI dependencies that check them.

A token is 32 random bytes shown once; the database keeps only its SHA-256, so a
leaked database does not hand out working tokens.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from hub.db.models import Role, User
from hub.db.session import Database
from shared_cdm.errors import Conflict, Forbidden, InvalidInput, Unauthenticated


@dataclass(frozen=True)
class UserView:
    name: str
    role: Role
    created_at: datetime

    @property
    def is_coordinator(self) -> bool:
        return self.role is Role.COORDINATOR


_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise InvalidInput(f"unknown role {value!r}; choose one of: {known}") from None


def _view(user: User) -> UserView:
    return UserView(user.name, Role(user.role), user.created_at)


def add_user(session: Session, name: str, role: Role, *, now: datetime) -> tuple[UserView, str]:
    """Create a user; returns the user and its token (the only time the token exists)."""
    if not _USER_NAME.fullmatch(name):
        raise InvalidInput(
            f"user name {name!r} must be 1-100 letters, digits, '.', '_', '@' or '-'"
        )
    if session.scalar(sa.select(User.id).where(User.name == name)) is not None:
        raise Conflict(f"user {name!r} already exists", code="user_exists")
    token = new_token()
    user = User(name=name, role=role.value, token_hash=hash_token(token), created_at=now)
    session.add(user)
    session.flush()
    return _view(user), token


def list_users(session: Session) -> list[UserView]:
    return [_view(u) for u in session.scalars(sa.select(User).order_by(User.name))]


def authenticate(session: Session, token: str) -> UserView:
    user = session.scalar(sa.select(User).where(User.token_hash == hash_token(token)))
    if user is None:
        raise Unauthenticated("the API token is not valid", code="bad_token")
    return _view(user)


def require_coordinator(user: UserView) -> UserView:
    if not user.is_coordinator:
        raise Forbidden("only a coordinator may do this", code="coordinator_only")
    return user


# --- FastAPI dependencies ---

_bearer = HTTPBearer(auto_error=False)


def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_session(db: Annotated[Database, Depends(get_database)]) -> Iterator[Session]:
    with db.session() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def current_user(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> UserView:
    if credentials is None or not credentials.credentials:
        raise Unauthenticated("send `Authorization: Bearer TOKEN`", code="no_token")
    return authenticate(session, credentials.credentials)


CurrentUser = Annotated[UserView, Depends(current_user)]


def current_coordinator(user: CurrentUser) -> UserView:
    return require_coordinator(user)


CoordinatorUser = Annotated[UserView, Depends(current_coordinator)]
