"""Runs one task: policy, deadline, round checks, ledger, cache, dataset, cohort, the
analysis, DP noise, disclosure control, secure aggregation, the ledger's record.

`TaskRunner.run` never raises: whatever goes wrong becomes a FAILED (or REFUSED)
`TaskResult` whose message says what to fix. Messages leave the site, so an
unexpected error is reported by its type only; the details stay in the edge log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from edge_node.cdm import CDM_DATASET, refresh_cdm, study_dataset_spec
from edge_node.datasets import load_table
from edge_node.disclosure import check_round, control
from edge_node.disclosure_cells import Released, is_count
from edge_node.dp import DpRequest, add_noise, dp_request
from edge_node.ledger.canonical import cohort_spec_hash, question_hash, release_summary
from edge_node.ledger.service import CountRelease, Ledger, Release
from edge_node.policy import Decision, Policy
from edge_node.secagg import SiteIdentity, secure_step
from edge_node.selection import Selection, select_cdm_rows, select_rows
from edge_node.store.cache import Answer, ResultCache, cache_key
from edge_node.store.datasets import DatasetRegistry
from edge_node.store.models import TaskDecision
from edge_node.store.secagg_keys import SecaggKeyStore
from federated_ml.analyses import analysis_for
from federated_ml.analyses import secure_rounds as sr
from federated_ml.analyses.base import Analysis, StudySpec, parse_spec
from protocol.messages import ResultStatus, TaskAssignment, TaskResult
from shared_cdm.errors import ErrorKind, InvalidInput, NotFound, OncoFedError

if TYPE_CHECKING:
    from edge_node.ml.tasks import MlTasks

_LOG = logging.getLogger(__name__)
FLOWER = "flower"  # ML studies (edge_node/ml/tasks.py)

_DECISIONS = {
    Decision.AUTO: TaskDecision.APPROVED,
    Decision.MANUAL: TaskDecision.AWAITING_APPROVAL,
    Decision.DENY: TaskDecision.REJECTED,
}
CACHED_NOTE = "answer reused from this site's result cache (same data, question and policy)"


def utc_now() -> datetime:
    return datetime.now(UTC)


def refused(task: TaskAssignment, message: str) -> TaskResult:
    return TaskResult(task.task_id, ResultStatus.REFUSED, {}, message)


def failed(task: TaskAssignment, message: str) -> TaskResult:
    return TaskResult(task.task_id, ResultStatus.FAILED, {}, message)


def split_spec(task: TaskAssignment) -> tuple[StudySpec, dict[str, Any]]:
    """The study spec and this round's parameters; the task's analysis and dataset
    must agree with the spec's, so the policy decision is about what actually runs."""
    raw = dict(task.spec)
    params = raw.pop("round_params", None) or {}
    if not isinstance(params, dict):
        raise InvalidInput("round_params must be a JSON object")
    for key, value in (("analysis", task.analysis), ("dataset", task.dataset)):
        if not value:
            continue
        if raw.setdefault(key, value) != value:
            raise InvalidInput(f"the task says {key} {value!r} but its spec says {raw[key]!r}")
    return parse_spec(raw), params


def _past(deadline: datetime | None, now: datetime) -> bool:
    if deadline is None:
        return False
    # A deadline without a zone is UTC, as everything on the wire is.
    return now >= (deadline if deadline.tzinfo else deadline.replace(tzinfo=UTC))


@dataclass(frozen=True)
class Source:
    """A dataset as a study sees it: its name, its version, and how to select its rows."""

    name: str
    version: str
    select: Callable[[StudySpec, list[str]], Selection]


def released_counts(released: Released, rows: Selection, spec: StudySpec) -> list[CountRelease]:
    """The counts a release reveals, each with the keys of the rows it counts."""
    mask = None
    if released.counted_levels is not None and spec.group:
        mask = rows.frame[spec.group].astype(str).isin(released.counted_levels).to_numpy()
    n = released.payload.get("n")
    if not is_count(n):
        return []
    out = [CountRelease("n", n, rows.analysed(mask))]
    excluded = released.payload.get("n_excluded_missing")
    if is_count(excluded) and excluded > 0:
        # n + n_excluded_missing is the cohort's size before missing values.
        out.append(CountRelease("n_selected", n + excluded, rows.selected(mask)))
    return out


@dataclass(frozen=True)
class TaskRunner:
    analysis_engine: Engine
    datasets: DatasetRegistry
    policy: Policy
    ledger: Ledger
    cache: ResultCache
    keys: SecaggKeyStore
    identity: SiteIdentity | None = None
    clock: Callable[[], datetime] = utc_now
    log: logging.Logger = field(default=_LOG)
    ml: MlTasks | None = None

    @classmethod
    def create(
        cls,
        analysis_engine: Engine,
        state_engine: Engine,
        policy: Policy,
        identity: SiteIdentity | None = None,
        clock: Callable[[], datetime] = utc_now,
        ml: MlTasks | None = None,
    ) -> TaskRunner:
        """A runner whose registry, ledger, cache and keys live in `state_engine`."""
        return cls(
            analysis_engine=analysis_engine,
            datasets=DatasetRegistry(state_engine),
            policy=policy,
            ledger=Ledger(state_engine, policy, clock),
            cache=ResultCache(state_engine, clock),
            keys=SecaggKeyStore(state_engine, clock),
            identity=identity,
            clock=clock,
            ml=ml,
        )

    def decide(self, task: TaskAssignment) -> TaskDecision:
        """What the site's policy says about a task as it arrives."""
        decision = _DECISIONS[self.policy.decision_for(task.analysis)]
        if decision is TaskDecision.AWAITING_APPROVAL and self._ml_followup(task):
            # The operator approved this ML study when it joined; later rounds follow.
            return TaskDecision.APPROVED
        return decision

    def _ml_followup(self, task: TaskAssignment) -> bool:
        if task.analysis != FLOWER or self.ml is None:
            return False
        try:
            return self.ml.phase(task) != "join" and self.ml.joined(task.study_id)
        except OncoFedError:
            return False

    def housekeeping(self) -> None:
        """Stop ML SuperNodes whose study ran out of time."""
        if self.ml is not None:
            self.ml.reap()

    def close(self) -> None:
        if self.ml is not None:
            self.ml.close()

    def run(self, task: TaskAssignment, *, approved: bool = False) -> TaskResult:
        """The task's answer, after disclosure control; never raises."""
        decision = self.policy.decision_for(task.analysis)
        if decision is Decision.DENY:
            return refused(task, f"this site's policy denies analysis {task.analysis!r}")
        if decision is Decision.MANUAL and not (approved or self._ml_followup(task)):
            return refused(task, f"analysis {task.analysis!r} needs the site operator's approval")
        if _past(task.deadline, self.clock()):
            return failed(task, "deadline passed: the task was not run")
        try:
            if task.analysis == FLOWER:
                if self.ml is None:
                    return refused(task, "this edge does not take part in ML studies")
                # The site's own rules on rounds (its min_sites) hold for ML studies too.
                params = task.spec.get("round_params") or {}
                check_round(task.analysis, params if isinstance(params, dict) else {}, self.policy)
                return self.ml.run(task)
            return self._compute(task)
        except OncoFedError as exc:
            if exc.kind is ErrorKind.REFUSED:
                return refused(task, exc.message)
            return failed(task, exc.message)
        except SQLAlchemyError as exc:
            self.log.exception("task %s: database error", task.task_id)
            reason = str(getattr(exc, "orig", None) or type(exc).__name__).splitlines()[0]
            return failed(task, f"the site's database could not run the query: {reason}")
        except Exception as exc:
            # A bug, not a bad request: keep the details (which may hold data) in the log.
            self.log.exception("task %s: unexpected error", task.task_id)
            return failed(task, f"internal error at the site ({type(exc).__name__}); see its log")

    def _compute(self, task: TaskAssignment) -> TaskResult:
        spec, params = split_spec(task)
        analysis: Analysis = analysis_for(spec.analysis)
        analysis.validate(spec)
        check_round(spec.analysis, params, self.policy)
        dp = dp_request(spec)
        self.keys.purge(timedelta(hours=self.policy.secagg_key_ttl_hours))
        source = self._source(spec)
        question = question_hash(spec.model_dump(mode="json"), params)
        self.ledger.check_repeats(task.requester, question, task.task_id)
        key = cache_key(source.name, source.version, question, self.policy.fingerprint())
        answer = self.cache.get(key, source.name, source.version)
        cached = answer is not None
        if answer is None:
            answer = self._answer(task, spec, params, analysis, source, dp)
        self.ledger.check_differencing(
            task.requester, source.name, source.version, answer.counts, task.task_id
        )
        payload = secure_step(
            dict(answer.released.payload),
            params,
            identity=self.identity,
            study_id=task.study_id,
            keys=self.keys,
        )
        self.ledger.record(
            Release(
                task=task,
                analysis=spec.analysis,
                dataset=source.name,
                dataset_version=source.version,
                question=question,
                cohort_spec=cohort_spec_hash(spec, list(analysis.columns(spec))),
                released=release_summary(payload),
                counts=answer.counts,
                # A cached answer was charged when it first left; repeating it reveals nothing new.
                epsilon=0.0 if cached else answer.epsilon,
                cached=cached,
            )
        )
        # Cached only once released, so every cached answer's epsilon is on the ledger; vectors
        # for secure aggregation are not: they leave masked once, and should not rest unmasked.
        if not cached and sr.SECURE not in answer.released.payload:
            self.cache.put(key, source.name, source.version, answer)
        notes = answer.released.notes + ((CACHED_NOTE,) if cached else ())
        return TaskResult(task.task_id, ResultStatus.OK, payload, "", notes)

    def _answer(
        self,
        task: TaskAssignment,
        spec: StudySpec,
        params: dict[str, Any],
        analysis: Analysis,
        source: Source,
        dp: DpRequest | None,
    ) -> Answer:
        if dp is not None:
            self.ledger.check_budget(task.requester, dp.epsilon, task.task_id)
        columns = list(analysis.columns(spec))
        rows = source.select(spec, columns)
        payload = analysis.local(rows.frame, spec, params)
        if columns:
            # An analysis that reads no column (count) leaves nothing out by construction.
            payload["n_excluded_missing"] = rows.n_excluded_missing
        epsilon, dp_notes = 0.0, tuple[str, ...]()
        if dp is not None:
            noised = add_noise(spec.analysis, payload, dp)
            payload, epsilon, dp_notes = noised.payload, noised.epsilon, noised.notes
        released = control(spec.analysis, payload, self.policy, params)
        released = Released(released.payload, dp_notes + released.notes, released.counted_levels)
        counts = self.ledger.store_cohorts(
            source.name, source.version, released_counts(released, rows, spec)
        )
        return Answer(released, counts, epsilon)

    def _source(self, spec: StudySpec) -> Source:
        engine = self.analysis_engine
        if spec.dataset == CDM_DATASET:
            record = refresh_cdm(engine, self.datasets, self.clock)
            if record is None:
                raise NotFound(
                    "this site has no CDM tables; run `oncofed-edge init` and load the CDM",
                    code="cdm_missing",
                )
            dataset = study_dataset_spec(spec)
            return Source(
                record.name, record.version, lambda s, c: select_cdm_rows(engine, dataset, s, c)
            )
        record = self.datasets.get(spec.dataset)
        table = load_table(engine, record)
        return Source(record.name, record.version, lambda s, c: select_rows(engine, table, s, c))
