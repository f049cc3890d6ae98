"""Users, API tokens and roles, and the FastAPI dependencies that check them; and the
nodes' certificate revocation list, checked on every gRPC call.

A token is 32 random bytes shown once; the database keeps only its SHA-256, so a
leaked database does not hand out working tokens.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import grpc
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from hub.db.models import Role, User
from hub.db.session import Database
from shared_cdm.errors import Conflict, Forbidden, InvalidInput, Unauthenticated

log = logging.getLogger(__name__)


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
    db: Annotated[Database, Depends(get_database)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> UserView:
    if credentials is None or not credentials.credentials:
        raise Unauthenticated("send `Authorization: Bearer TOKEN`", code="no_token")
    # A session of its own, closed before the handler runs: a request-long one would
    # hold a pooled connection while the handler's transaction waits for another,
    # and enough concurrent requests then exhaust the pool (each waiting 30 s).
    with db.session() as session:
        return authenticate(session, credentials.credentials)


CurrentUser = Annotated[UserView, Depends(current_user)]


def current_coordinator(user: CurrentUser) -> UserView:
    return require_coordinator(user)


CoordinatorUser = Annotated[UserView, Depends(current_coordinator)]


# --- revoked node certificates ---

CRL_FILE_NAME = "crl.pem"


class RevocationList:
    """The serial numbers the consortium CA has revoked (`crl.pem`, a signed X.509 CRL
    beside the CA certificate the hub trusts).

    Re-read whenever the file changes, so a revocation takes effect without a
    restart. A CRL that is unreadable, not signed by the CA, or past its next
    update fails closed: every node is refused until it is fixed, rather than a
    revoked one let in (a stale list may lack a newer revocation). No file at all
    means nothing is revoked.
    """

    def __init__(
        self,
        crl_path: Path,
        ca_cert_path: Path,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.path = crl_path
        self._ca_cert_path = ca_cert_path
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: tuple[int, int] | None = None
        self._serials: frozenset[int] = frozenset()
        self._next_update: datetime | None = None
        self._error: str | None = None
        self._stale_logged = False

    def _refresh(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._seen, self._serials, self._error = None, frozenset(), None
            self._next_update = None
            return
        key = (stat.st_mtime_ns, stat.st_size)
        if key == self._seen:
            return
        self._seen, self._next_update, self._stale_logged = key, None, False
        try:
            crl = x509.load_pem_x509_crl(self.path.read_bytes())
            ca = x509.load_pem_x509_certificate(self._ca_cert_path.read_bytes())
            public_key = ca.public_key()
            if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
                raise ValueError("the CA key type cannot sign a CRL")
            if crl.issuer != ca.subject or not crl.is_signature_valid(public_key):
                raise ValueError("it is not signed by the consortium CA")
            if crl.next_update_utc is None:
                raise ValueError("it has no next-update time")
        except (OSError, ValueError) as exc:
            self._serials, self._error = frozenset(), f"{self.path} is not usable: {exc}"
            log.error("certificate revocation list %s", self._error)
            return
        self._serials = frozenset(entry.serial_number for entry in crl)
        self._next_update = crl.next_update_utc
        self._error = None

    def _stale(self) -> str | None:
        """Why the list is too old to trust, or None; checked per call, as time passes
        without the file changing."""
        if self._next_update is None or self._clock() < self._next_update:
            return None
        reason = (
            f"{self.path} is not usable: its next update was due "
            f"{self._next_update:%Y-%m-%d %H:%M:%SZ}, so a later revocation may be missing "
            "(renew it at the CA: `oncofed-ops ca renew-crl`, then copy it in)"
        )
        if not self._stale_logged:
            log.error("certificate revocation list %s", reason)
            self._stale_logged = True
        return reason

    def check(self, cert_pem: bytes) -> None:
        """Raise Unauthenticated for a revoked certificate (or an unusable list)."""
        with self._lock:
            self._refresh()
            serials, error = self._serials, self._error or self._stale()
        if error is not None:
            raise Unauthenticated(
                f"the hub cannot check revocations ({error})", code="revocation_list_unusable"
            )
        cert = x509.load_pem_x509_certificate(cert_pem)
        if cert.serial_number in serials:
            names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            who = str(names[0].value) if names else "?"
            raise Unauthenticated(
                f"the certificate of {who} (serial {cert.serial_number:x}) is revoked by "
                "the consortium CA",
                code="certificate_revoked",
            )


class RevocationCheck(grpc.ServerInterceptor):
    """Refuses, before any handler runs, a call whose client certificate is revoked."""

    def __init__(self, revocations: RevocationList) -> None:
        self._revocations = revocations

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler  # the node protocol is unary only
        behaviour = handler.unary_unary
        revocations = self._revocations

        def checked(request: Any, context: grpc.ServicerContext) -> Any:
            pems = context.auth_context().get("x509_pem_cert")
            if pems:
                try:
                    revocations.check(pems[0])
                except Unauthenticated as exc:
                    log.warning("%s refused: %s", handler_call_details.method, exc.message)
                    context.abort(grpc.StatusCode.UNAUTHENTICATED, f"{exc.code}: {exc.message}")
            return behaviour(request, context)

        return grpc.unary_unary_rpc_method_handler(
            checked,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def revocation_check(ca_cert_path: Path) -> RevocationCheck:
    """The hub's check against `crl.pem` in the folder of its CA certificate."""
    return RevocationCheck(RevocationList(ca_cert_path.parent / CRL_FILE_NAME, ca_cert_path))
