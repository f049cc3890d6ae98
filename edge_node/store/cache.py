"""Local answers after disclosure control, reused for the same question (F7).

Keyed by dataset name and version, the question (spec and answer-shaping round
parameters) and the policy: a new dataset version or a changed policy never
meets an old answer, and entries of an old version are dropped when the new
one is first asked. The ledger is consulted on every release, cached or not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from edge_node.disclosure_cells import Released
from edge_node.ledger.canonical import sha256
from edge_node.ledger.service import CountRef
from edge_node.store.models import CachedAnswer
from shared_cdm.db import session_factory


def utc_now() -> datetime:
    return datetime.now(UTC)


def cache_key(dataset: str, version: str, question: str, policy_fingerprint: str) -> str:
    return sha256([dataset, version, question, policy_fingerprint])


@dataclass(frozen=True)
class Answer:
    released: Released
    counts: tuple[CountRef, ...]
    epsilon: float


class ResultCache:
    def __init__(self, engine: Engine, clock: Callable[[], datetime] = utc_now) -> None:
        self._sessions = session_factory(engine)
        self._clock = clock

    def get(self, key: str, dataset: str, version: str) -> Answer | None:
        with self._sessions() as session, session.begin():
            # A data update invalidates: older versions' answers go.
            session.execute(
                sa.delete(CachedAnswer)
                .where(CachedAnswer.dataset == dataset)
                .where(CachedAnswer.dataset_version != version)
            )
            row = session.get(CachedAnswer, key)
            if row is None or row.dataset_version != version:
                return None
            levels = None if row.counted_levels is None else tuple(row.counted_levels)
            released = Released(dict(row.payload), tuple(row.notes), levels)
            counts = tuple(CountRef(str(c[0]), int(c[1]), int(c[2])) for c in row.counts)
            return Answer(released, counts, row.epsilon)

    def put(self, key: str, dataset: str, version: str, answer: Answer) -> None:
        released = answer.released
        levels = released.counted_levels
        row = CachedAnswer(
            key=key,
            dataset=dataset,
            dataset_version=version,
            payload=dict(released.payload),
            notes=list(released.notes),
            counted_levels=None if levels is None else list(levels),
            counts=[[c.label, c.value, c.cohort_id] for c in answer.counts],
            epsilon=answer.epsilon,
            created_at=self._clock(),
        )
        try:
            with self._sessions() as session, session.begin():
                session.merge(row)
        except IntegrityError:
            return  # the same answer stored by a concurrent run
