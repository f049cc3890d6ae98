"""Coordinator endpoints over the node registry and the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from hub import audit
from hub.api.deps import HubDep
from hub.api.schemas import AuditEntryOut, ChainReportOut, NodeOut
from hub.auth import CoordinatorUser, SessionDep

router = APIRouter(prefix="/api/v1", tags=["coordination"])


@router.get("/nodes")
def list_nodes(user: CoordinatorUser, hub: HubDep) -> list[NodeOut]:
    return [NodeOut.of(v) for v in hub.nodes.list_nodes()]


@router.get("/audit")
def list_audit(
    user: CoordinatorUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[int | None, Query(ge=1)] = None,
) -> list[AuditEntryOut]:
    """Newest first; page back with `before_id`."""
    return [AuditEntryOut.of(e) for e in audit.recent(session, limit=limit, before_id=before_id)]


@router.get("/audit/verify")
def verify_audit(user: CoordinatorUser, session: SessionDep) -> ChainReportOut:
    return ChainReportOut.of(audit.verify(session))
