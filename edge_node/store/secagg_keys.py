"""This site's secure-aggregation key pair per study, kept between the keys round and
the mask round. A pair unused for the policy's TTL is deleted: the study's tasks
stopped coming, and a later round starts again with a keys round."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import Engine

from edge_node.store.models import SecaggKey
from federated_ml.secure_agg import SiteKeys
from shared_cdm.db import session_factory


def utc_now() -> datetime:
    return datetime.now(UTC)


class SecaggKeyStore:
    def __init__(self, engine: Engine, clock: Callable[[], datetime] = utc_now) -> None:
        self._sessions = session_factory(engine)
        self._clock = clock

    def get(self, study_id: str) -> SiteKeys | None:
        with self._sessions() as session, session.begin():
            row = session.get(SecaggKey, study_id)
            if row is None:
                return None
            row.last_used_at = self._clock()
            return SiteKeys(bytes(row.private_key), row.public_key)

    def put(self, study_id: str, keys: SiteKeys) -> None:
        """Keep (or replace, after a restarted keys round) the study's key pair."""
        now = self._clock()
        with self._sessions() as session, session.begin():
            row = session.get(SecaggKey, study_id) or SecaggKey(study_id=study_id, created_at=now)
            row.public_key, row.private_key = keys.public_b64, keys.private_raw
            row.last_used_at = now
            session.add(row)

    def delete(self, study_id: str) -> bool:
        with self._sessions() as session, session.begin():
            row = session.get(SecaggKey, study_id)
            if row is not None:
                session.delete(row)
            return row is not None

    def purge(self, ttl: timedelta) -> int:
        """Delete key pairs unused for `ttl`; the number deleted."""
        cutoff = self._clock() - ttl
        with self._sessions() as session, session.begin():
            result = session.execute(sa.delete(SecaggKey).where(SecaggKey.last_used_at < cutoff))
            return int(getattr(result, "rowcount", 0) or 0)
