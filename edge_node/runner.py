"""Runs one task: policy, dataset, spec, cohort, missing values, the analysis, disclosure.

`TaskRunner.run` never raises: whatever goes wrong becomes a FAILED (or REFUSED)
`TaskResult` whose message says what to fix. Messages leave the site, so an
unexpected error is reported by its type only; the details stay in the edge log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from edge_node.datasets import load_table
from edge_node.disclosure import control
from edge_node.policy import Decision, Policy
from edge_node.store.datasets import DatasetRegistry
from edge_node.store.models import TaskDecision
from federated_ml.analyses import analysis_for
from federated_ml.analyses.base import Analysis, StudySpec, parse_spec
from protocol.messages import ResultStatus, TaskAssignment, TaskResult
from shared_cdm.cohort import FlatSchema, compile_where, parse_tree
from shared_cdm.errors import ErrorKind, InvalidInput, OncoFedError

_LOG = logging.getLogger(__name__)

_DECISIONS = {
    Decision.AUTO: TaskDecision.APPROVED,
    Decision.MANUAL: TaskDecision.AWAITING_APPROVAL,
    Decision.DENY: TaskDecision.REJECTED,
}


@dataclass(frozen=True)
class Selection:
    """The rows an analysis gets, and how many were left out for missing values."""

    frame: pd.DataFrame
    n_excluded_missing: int


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


def select_rows(engine: Engine, table: sa.Table, spec: StudySpec, columns: list[str]) -> Selection:
    """Rows matching `where`, only the columns the analysis reads, complete cases only."""
    unknown = [c for c in columns if c not in table.c]
    if unknown:
        raise InvalidInput(
            f"dataset {spec.dataset!r} has no column {', '.join(repr(c) for c in unknown)} "
            f"(columns: {', '.join(table.c.keys())})",
            code="unknown_column",
        )
    # A count reads no column; one constant per row keeps the row count.
    selected: list[sa.ColumnElement[Any]] = [table.c[c] for c in columns]
    selected = selected or [sa.literal(1).label("_row")]
    statement = sa.select(*selected).select_from(table)
    if spec.where is not None:
        statement = statement.where(compile_where(parse_tree(spec.where), FlatSchema(table)))
    with engine.connect() as conn:
        frame = pd.read_sql(statement, conn)
    complete = frame.dropna(subset=columns) if columns else frame
    return Selection(complete.reset_index(drop=True), len(frame) - len(complete))


@dataclass(frozen=True)
class TaskRunner:
    analysis_engine: Engine
    datasets: DatasetRegistry
    policy: Policy
    log: logging.Logger = field(default=_LOG)

    def decide(self, task: TaskAssignment) -> TaskDecision:
        """What the site's policy says about a task as it arrives."""
        return _DECISIONS[self.policy.decision_for(task.analysis)]

    def run(self, task: TaskAssignment, *, approved: bool = False) -> TaskResult:
        """The task's answer, after disclosure control; never raises."""
        decision = self.policy.decision_for(task.analysis)
        if decision is Decision.DENY:
            return refused(task, f"this site's policy denies analysis {task.analysis!r}")
        if decision is Decision.MANUAL and not approved:
            return refused(task, f"analysis {task.analysis!r} needs the site operator's approval")
        try:
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
        record = self.datasets.get(spec.dataset)
        table = load_table(self.analysis_engine, record)
        columns = list(analysis.columns(spec))
        rows = select_rows(self.analysis_engine, table, spec, columns)
        payload = analysis.local(rows.frame, spec, params)
        if columns:
            # An analysis that reads no column (count) leaves nothing out by construction.
            payload["n_excluded_missing"] = rows.n_excluded_missing
        released = control(spec.analysis, payload, self.policy)
        return TaskResult(
            task.task_id, ResultStatus.OK, released.payload, "", tuple(released.notes)
        )
