"""The append-only, hash-chained audit log.

Each entry's hash is sha256(prev_hash + canonical JSON of the entry), the entry
including its sequence number, so editing, removing or reordering any entry
breaks the chain from that entry on. Details hold identifiers and statuses,
never a result's payload.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hub.db.models import AuditEntry

GENESIS_HASH = "0" * 64
# Any constant: serialises appends across hub processes on PostgreSQL.
_PG_AUDIT_LOCK_KEY = 0x0AC0FED


def entry_hash(
    prev_hash: str,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    object_id: str,
    details: Mapping[str, Any],
) -> str:
    body = {
        "seq": seq,
        "at": at.isoformat(),
        "actor": actor,
        "action": action,
        "object_id": object_id,
        "details": details,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


def append(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    object_id: str = "",
    details: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Add an entry to the chain inside the caller's transaction.

    Appends must be serialised; the hub's `Database.transaction()` does so within
    a process and the advisory lock across processes on PostgreSQL.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_AUDIT_LOCK_KEY})
    last = session.execute(
        sa.select(AuditEntry.id, AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)
    ).first()
    seq, prev = (last.id + 1, last.hash) if last is not None else (1, GENESIS_HASH)
    clean = dict(details or {})
    entry = AuditEntry(
        id=seq,
        at=at,
        actor=actor,
        action=action,
        object_id=object_id,
        details=clean,
        prev_hash=prev,
        hash=entry_hash(prev, seq, at, actor, action, object_id, clean),
    )
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    entries: int
    first_bad_id: int | None = None
    reason: str = ""


def verify(session: Session) -> ChainReport:
    """Walk the chain in order; report the first entry that does not fit."""
    prev = GENESIS_HASH
    expected_seq = 1
    count = 0
    for entry in session.scalars(sa.select(AuditEntry).order_by(AuditEntry.id)):
        count += 1
        if entry.id != expected_seq:
            return ChainReport(False, count, entry.id, f"expected entry {expected_seq} next")
        if entry.prev_hash != prev:
            return ChainReport(False, count, entry.id, "does not follow the entry before it")
        recomputed = entry_hash(
            prev, entry.id, entry.at, entry.actor, entry.action, entry.object_id, entry.details
        )
        if recomputed != entry.hash:
            return ChainReport(False, count, entry.id, "content does not match its hash")
        prev = entry.hash
        expected_seq += 1
    return ChainReport(True, count)


def recent(session: Session, *, limit: int = 100, before_id: int | None = None) -> list[AuditEntry]:
    query = sa.select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    return list(session.scalars(query))
