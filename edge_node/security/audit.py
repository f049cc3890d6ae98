"""The edge's append-only, hash-chained audit log (table `edge_audit_log`).

Entry `seq` stores `hash = sha256(canonical JSON of {seq, at, actor, role, action,
target, details, prev_hash})`, `prev_hash` being the hash of entry `seq - 1` (64 zeros
for the first). Editing an entry breaks its own hash; removing one leaves a gap in
`seq` and breaks the next entry's `prev_hash`; swapping two breaks both (`seq` is
hashed). What the chain cannot show on its own is the newest entries cut off the end:
`verify` reports the head (count and last hash) for the operator to compare with one
noted earlier.

Details hold identifiers of what was done and outcomes, never patient data.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from edge_node.security.models import AuditEntry
from shared_cdm.db import session_factory
from shared_cdm.errors import Conflict

GENESIS_HASH = "0" * 64
# Any constant: serialises appends across processes on PostgreSQL.
_PG_AUDIT_LOCK_KEY = 0x0EDA0D17
_APPEND_ATTEMPTS = 5
_LIMITS = {"actor": 100, "role": 200, "action": 64, "target": 255}
T = TypeVar("T")


def _utc_text(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(
    *,
    seq: int,
    at: datetime,
    actor: str,
    role: str,
    action: str,
    target: str,
    details: Mapping[str, Any],
    prev_hash: str,
) -> str:
    """SHA-256 of the entry's canonical JSON (sorted keys, no spaces, UTF-8)."""
    body = {
        "seq": seq,
        "at": _utc_text(at),
        "actor": actor,
        "role": role,
        "action": action,
        "target": target,
        "details": details,
        "prev_hash": prev_hash,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _clip(field: str, value: str) -> str:
    return value[: _LIMITS[field]]


def append_in(
    session: Session,
    *,
    actor: str,
    role: str,
    action: str,
    target: str = "",
    details: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Add an entry inside the caller's transaction (see `run_audited` for retries)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_AUDIT_LOCK_KEY})
    last = session.execute(
        sa.select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
    ).first()
    seq, prev = (last.seq + 1, last.hash) if last is not None else (1, GENESIS_HASH)
    # Round-trip through JSON so the hash covers exactly what the database will return.
    clean: dict[str, Any] = json.loads(json.dumps(dict(details or {}), default=str))
    when = (at or datetime.now(UTC)).astimezone(UTC)
    fields = {
        "actor": _clip("actor", actor),
        "role": _clip("role", role),
        "action": _clip("action", action),
        "target": _clip("target", target),
    }
    entry = AuditEntry(
        seq=seq,
        at=when,
        details=clean,
        prev_hash=prev,
        hash=entry_hash(seq=seq, at=when, details=clean, prev_hash=prev, **fields),
        **fields,
    )
    session.add(entry)
    session.flush()
    return entry


def run_audited(engine: Engine, body: Callable[[Session], T]) -> T:
    """Run `body` in one transaction, again if a concurrent append took its `seq`
    (SQLite has no advisory lock; the primary key refuses the second entry)."""
    sessions = session_factory(engine)
    for attempt in range(_APPEND_ATTEMPTS):
        try:
            with sessions() as session, session.begin():
                return body(session)
        except IntegrityError:
            if attempt == _APPEND_ATTEMPTS - 1:
                raise
    raise Conflict("the audit log is busy; try again", code="audit_busy")  # pragma: no cover


class AuditLog:
    """The audit log of one state database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sessions = session_factory(engine)

    def append(
        self,
        *,
        actor: str,
        role: str,
        action: str,
        target: str = "",
        details: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> AuditEntry:
        """Append one entry in its own transaction."""
        return run_audited(
            self._engine,
            lambda session: append_in(
                session,
                actor=actor,
                role=role,
                action=action,
                target=target,
                details=details,
                at=at,
            ),
        )

    def entries(self, *, limit: int | None = None, action: str | None = None) -> list[AuditEntry]:
        """Entries oldest first; with `limit`, the newest `limit` of them."""
        query = sa.select(AuditEntry).order_by(AuditEntry.seq.desc())
        if action is not None:
            query = query.where(AuditEntry.action == action)
        if limit is not None:
            query = query.limit(limit)
        with self._sessions() as session:
            return list(reversed(session.scalars(query).all()))

    def verify(self) -> AuditReport:
        with self._sessions() as session:
            return verify(session)


@dataclass(frozen=True)
class AuditProblem:
    seq: int
    problem: str

    def __str__(self) -> str:
        return f"entry {self.seq}: {self.problem}"


@dataclass(frozen=True)
class AuditReport:
    entries: int
    head_seq: int
    head_hash: str
    problems: tuple[AuditProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(session: Session) -> AuditReport:
    """Walk the chain in `seq` order and list every entry that does not fit.

    Each entry is checked against the stored hash of the one before it, so an edited
    entry is named once, and a removed or moved one where the chain breaks.
    """
    problems: list[AuditProblem] = []
    prev = GENESIS_HASH
    expected = 1
    count = 0
    last_seq = 0
    for entry in session.scalars(sa.select(AuditEntry).order_by(AuditEntry.seq)):
        count += 1
        if entry.seq != expected:
            missing = (
                f"entry {expected} is missing"
                if entry.seq == expected + 1
                else f"entries {expected}-{entry.seq - 1} are missing"
            )
            problems.append(AuditProblem(entry.seq, f"{missing} (removed)"))
        if entry.prev_hash != prev:
            problems.append(
                AuditProblem(
                    entry.seq,
                    "does not follow the entry before it "
                    "(an entry was removed, inserted or reordered)",
                )
            )
        recomputed = entry_hash(
            seq=entry.seq,
            at=entry.at,
            actor=entry.actor,
            role=entry.role,
            action=entry.action,
            target=entry.target,
            details=entry.details,
            prev_hash=entry.prev_hash,
        )
        if recomputed != entry.hash:
            problems.append(
                AuditProblem(entry.seq, "content does not match its hash (edited or moved)")
            )
        prev = entry.hash
        expected = entry.seq + 1
        last_seq = entry.seq
    return AuditReport(count, last_seq, prev, tuple(problems))
