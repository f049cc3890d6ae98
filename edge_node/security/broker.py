"""The honest broker: a pseudonym back to the hospital's patient ID(s).

The pseudonym is the CDM's `person_source_value`, which is the pipeline's
`person_key`; the state database's re-identification map (`pipeline_reid_map`)
holds each hospital patient ID sealed under the vault key and bound to its
pseudonym, so one pseudonym gives several IDs when duplicate master records were
merged. A wrong vault key or an altered or moved entry fails loudly, never
giving a wrong ID. Only a user with the honest_broker role may
ask, and every attempt, granted or refused, is written to the audit log with the
actor, their roles and the pseudonym (never the patient IDs it revealed).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from edge_node.pipeline.deid import PSEUDONYM_HEX_CHARS
from edge_node.pipeline.sealed import REID_AAD, aad, open_with
from edge_node.pipeline.state import ReidEntry
from edge_node.security.audit import append_in, run_audited
from edge_node.security.users import Role, authorize, identify_actor
from edge_node.security.vault import Vault
from shared_cdm.errors import Forbidden, InvalidInput, NotFound, OncoFedError, Unauthenticated

ACTION = "reidentify"
_PSEUDONYM = re.compile(rf"[0-9a-f]{{{PSEUDONYM_HEX_CHARS}}}")


def reidentify(
    engine: Engine,
    token: str | None,
    pseudonym: str,
    *,
    vault: Vault | Callable[[], Vault],
    reason: str = "",
    now: datetime | None = None,
) -> list[str]:
    """The hospital patient IDs behind `pseudonym`, sorted; honest brokers only.

    `vault` may be a loader: it is then called only after the role check, so a
    refused user is audited as refused even where no vault key is configured."""
    at = now or datetime.now(UTC)
    target = pseudonym.strip().lower()

    def body(session: Session) -> list[str] | OncoFedError:
        details: dict[str, object] = {"reason": reason} if reason else {}
        try:
            user = authorize(session, token, Role.HONEST_BROKER)
        except (Unauthenticated, Forbidden) as exc:
            actor, role = identify_actor(session, token)
            append_in(
                session,
                actor=actor,
                role=role,
                action=ACTION,
                target=target,
                details={**details, "outcome": "refused", "code": exc.code},
                at=at,
            )
            return exc
        outcome: list[str] | OncoFedError
        if not _PSEUDONYM.fullmatch(target):
            outcome = InvalidInput(
                f"a pseudonym is {PSEUDONYM_HEX_CHARS} hex digits (the CDM's person_source_value)",
                code="bad_pseudonym",
            )
            details |= {"outcome": "invalid"}
        else:
            entries = session.scalars(sa.select(ReidEntry).where(ReidEntry.person_key == target))
            try:
                key = vault() if callable(vault) else vault
                ids = sorted(
                    open_with(
                        key,
                        e.sealed_id,
                        aad(REID_AAD, target, e.patient_hash),
                        what=f"the re-identification entry of {target}",
                    )
                    for e in entries
                )
            except OncoFedError as exc:
                # a wrong key or an altered entry: audited, and never an answer
                outcome = exc
                details |= {"outcome": "failed", "code": exc.code}
            else:
                if ids:
                    outcome = ids
                    details |= {"outcome": "granted", "patients": len(ids)}
                else:
                    outcome = NotFound(
                        f"no patient has the pseudonym {target} at this site "
                        "(another site's, or from before the site secret changed)",
                        code="unknown_pseudonym",
                    )
                    details |= {"outcome": "not_found"}
        append_in(
            session,
            actor=user.name,
            role=user.role_text,
            action=ACTION,
            target=target,
            details=details,
            at=at,
        )
        return outcome

    result = run_audited(engine, body)
    if isinstance(result, OncoFedError):
        raise result
    return result
