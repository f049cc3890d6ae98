"""The ledger's checks and records, over the state database.

Before a result leaves: `check_repeats`, `check_budget` and `check_differencing`
(each raises Refused); after: `record`. Recording is idempotent by task ID, so a
task recomputed after a crash is not counted twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from edge_node.ledger import fingerprint
from edge_node.ledger.models import LedgerCohort, LedgerCount, LedgerRelease
from edge_node.policy import Policy
from protocol.messages import TaskAssignment
from shared_cdm.db import session_factory
from shared_cdm.errors import Refused

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class CountRelease:
    """A count about to be released and the keys of the rows it counts."""

    label: str
    value: int
    keys: np.ndarray


@dataclass(frozen=True)
class CountRef:
    """A released count and the stored cohort it counts."""

    label: str
    value: int
    cohort_id: int


@dataclass(frozen=True)
class Release:
    """Everything the ledger keeps about one released result."""

    task: TaskAssignment
    analysis: str
    dataset: str
    dataset_version: str
    question: str
    cohort_spec: str
    released: dict[str, Any]
    counts: tuple[CountRef, ...]
    epsilon: float
    cached: bool


@dataclass(frozen=True)
class ReleaseView:
    released_at: datetime
    requester: str
    study_id: str
    task_id: str
    analysis: str
    dataset: str
    dataset_version: str
    counts: dict[str, int]
    epsilon: float
    cached: bool


@dataclass(frozen=True)
class Budget:
    per_requester: dict[str, float]
    total: float
    requester_limit: float
    total_limit: float


class Ledger:
    def __init__(self, engine: Engine, policy: Policy, clock: Clock = utc_now) -> None:
        self._sessions = session_factory(engine)
        self._policy = policy
        self._clock = clock

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    # --- checks ---------------------------------------------------------------------------

    def check_repeats(self, requester: str, question: str, task_id: str) -> None:
        with self._sessions() as session:
            asked = session.scalar(
                sa.select(sa.func.count())
                .select_from(LedgerRelease)
                .where(LedgerRelease.requester == requester)
                .where(LedgerRelease.question == question)
                .where(LedgerRelease.task_id != task_id)
            )
        if int(asked or 0) >= self._policy.max_repeats:
            raise Refused(
                f"this question was already answered {self._policy.max_repeats} times for "
                f"{requester}; the site's policy allows no more repeats",
                code="too_many_repeats",
            )

    def spent(self, requester: str | None = None, *, excluding_task: str = "") -> float:
        stmt = sa.select(sa.func.coalesce(sa.func.sum(LedgerRelease.epsilon), 0.0)).where(
            LedgerRelease.task_id != excluding_task
        )
        if requester is not None:
            stmt = stmt.where(LedgerRelease.requester == requester)
        with self._sessions() as session:
            return float(session.scalar(stmt) or 0.0)

    def check_budget(self, requester: str, epsilon: float, task_id: str) -> None:
        """Refuse an epsilon that would take the requester or the site over its budget."""
        slack = 1e-9  # float sums: 0.1 * 30 must fit a budget of 3.0
        mine = self.spent(requester, excluding_task=task_id)
        if mine + epsilon > self._policy.epsilon_budget_per_requester + slack:
            raise Refused(
                f"differential privacy: {requester} has spent epsilon {mine:g} of "
                f"{self._policy.epsilon_budget_per_requester:g} at this site; "
                f"{epsilon:g} more is over budget",
                code="epsilon_budget_exceeded",
            )
        total = self.spent(excluding_task=task_id)
        if total + epsilon > self._policy.epsilon_budget_total + slack:
            raise Refused(
                f"differential privacy: this site's total epsilon budget "
                f"({self._policy.epsilon_budget_total:g}) would be exceeded",
                code="epsilon_budget_exceeded",
            )

    def store_cohorts(
        self, dataset: str, version: str, counts: Sequence[CountRelease]
    ) -> tuple[CountRef, ...]:
        """Keep each count's cohort fingerprint (once per distinct row set)."""
        return tuple(
            CountRef(c.label, c.value, self._cohort_id(dataset, version, c.keys)) for c in counts
        )

    def _cohort_id(self, dataset: str, version: str, keys: np.ndarray) -> int:
        digest = fingerprint.digest(keys)
        where = (
            (LedgerCohort.dataset == dataset)
            & (LedgerCohort.dataset_version == version)
            & (LedgerCohort.digest == digest)
        )
        with self._sessions() as session:
            known = session.scalar(sa.select(LedgerCohort.id).where(where))
        if known is not None:
            return int(known)
        row = LedgerCohort(
            dataset=dataset,
            dataset_version=version,
            digest=digest,
            size=int(keys.size),
            row_keys=fingerprint.pack(keys),
            created_at=self._clock(),
        )
        try:
            with self._transaction() as session:
                session.add(row)
        except IntegrityError:
            # Another task stored the same cohort between our look and our insert.
            with self._sessions() as session:
                return int(session.scalars(sa.select(LedgerCohort.id).where(where)).one())
        return int(row.id)

    def check_differencing(
        self, requester: str, dataset: str, version: str, counts: Sequence[CountRef], task_id: str
    ) -> None:
        """Refuse a count whose cohort contains, or is contained in, an already released
        cohort of the same dataset version, the two differing by 1..k-1 rows."""
        k = self._policy.min_cell_size
        stmt = (
            sa.select(LedgerCohort)
            .join(LedgerCount, LedgerCount.cohort_id == LedgerCohort.id)
            .join(LedgerRelease, LedgerRelease.id == LedgerCount.release_id)
            .where(LedgerCohort.dataset == dataset, LedgerCohort.dataset_version == version)
            .where(LedgerRelease.task_id != task_id)
            .distinct()
        )
        if self._policy.differencing_scope == "requester":
            stmt = stmt.where(LedgerRelease.requester == requester)
        with self._sessions() as session:
            for count in counts:
                new = session.get(LedgerCohort, count.cohort_id)
                if new is None:
                    continue
                near = stmt.where(
                    LedgerCohort.id != new.id,
                    LedgerCohort.size > new.size - k,
                    LedgerCohort.size < new.size + k,
                )
                keys = fingerprint.unpack(new.row_keys)
                for old in session.scalars(near):
                    if fingerprint.differs_by_few(fingerprint.unpack(old.row_keys), keys, k):
                        mine = self._policy.differencing_scope == "requester"
                        who = "this requester" if mine else "some requester"
                        raise Refused(
                            f"differencing: this cohort and one already released to {who} "
                            f"differ by fewer than {k} rows; nothing is released",
                            code="differencing",
                        )

    # --- records --------------------------------------------------------------------------

    def record(self, release: Release) -> None:
        task = release.task
        try:
            with self._transaction() as session:
                if session.scalar(
                    sa.select(LedgerRelease.id).where(LedgerRelease.task_id == task.task_id)
                ):
                    return
                row = LedgerRelease(
                    task_id=task.task_id,
                    study_id=task.study_id,
                    round=task.round,
                    requester=task.requester,
                    analysis=release.analysis,
                    dataset=release.dataset,
                    dataset_version=release.dataset_version,
                    question=release.question,
                    cohort_spec=release.cohort_spec,
                    released=release.released,
                    epsilon=release.epsilon,
                    cached=release.cached,
                    released_at=self._clock(),
                )
                session.add(row)
                session.flush()
                session.add_all(
                    LedgerCount(
                        release_id=row.id, cohort_id=c.cohort_id, label=c.label, value=c.value
                    )
                    for c in release.counts
                )
        except IntegrityError:
            return  # recorded by a concurrent run of the same task

    def releases(self, requester: str | None = None) -> list[ReleaseView]:
        stmt = sa.select(LedgerRelease).order_by(LedgerRelease.released_at, LedgerRelease.id)
        if requester is not None:
            stmt = stmt.where(LedgerRelease.requester == requester)
        with self._sessions() as session:
            rows = list(session.scalars(stmt))
            counts: dict[int, dict[str, int]] = {}
            for c in session.scalars(sa.select(LedgerCount)):
                counts.setdefault(c.release_id, {})[c.label] = c.value
        return [
            ReleaseView(
                released_at=r.released_at,
                requester=r.requester,
                study_id=r.study_id,
                task_id=r.task_id,
                analysis=r.analysis,
                dataset=r.dataset,
                dataset_version=r.dataset_version,
                counts=counts.get(r.id, {}),
                epsilon=r.epsilon,
                cached=r.cached,
            )
            for r in rows
        ]

    def budget(self) -> Budget:
        stmt = sa.select(LedgerRelease.requester, sa.func.sum(LedgerRelease.epsilon)).group_by(
            LedgerRelease.requester
        )
        with self._sessions() as session:
            per = {str(r): float(e or 0.0) for r, e in session.execute(stmt)}
        return Budget(
            per_requester=dict(sorted(per.items())),
            total=sum(per.values()),
            requester_limit=self._policy.epsilon_budget_per_requester,
            total_limit=self._policy.epsilon_budget_total,
        )
