"""Three real edges, in process: each site its own databases, its own CA-issued
certificate and a real `TaskRunner`; the hub's side is `analysis.step`, round by
round, exactly like tests/unit/federated_ml/inprocess.py but through
`TaskRunner.run`, so policy, disclosure control, the ledger, the cache, secure
aggregation and key persistence all take part. Payloads and round parameters go
through JSON as they would on the wire.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from edge_node.datasets import add_dataset
from edge_node.policy import Decision, Policy
from edge_node.runner import TaskRunner
from edge_node.secagg import SiteIdentity
from edge_node.store.database import open_analysis_db, open_state_db
from edge_node.store.datasets import DatasetRegistry
from federated_ml.analyses import Finished, analysis_for
from federated_ml.analyses.base import parse_spec
from protocol import tls
from protocol.messages import ResultStatus, TaskAssignment, TaskResult

ALL_AUTO = {
    a: Decision.AUTO
    for a in (
        "count",
        "describe",
        "crosstab",
        "ttest",
        "kaplan_meier",
        "logrank",
        "cox",
        "logistic",
    )
}


@dataclass
class EdgeSite:
    name: str
    state: Engine
    analysis: Engine
    runner: TaskRunner


@dataclass
class EdgeConsortium:
    sites: dict[str, EdgeSite]
    ca: tls.KeyPair
    certs: dict[str, tls.KeyPair]
    results: list[dict[str, TaskResult]] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        urls: Mapping[str, str],
        tables: Mapping[str, pd.DataFrame],
        folder: Path,
        policy: Policy | None = None,
    ) -> EdgeConsortium:
        ca = tls.create_ca()
        certs = {s: tls.issue_certificate(ca, s, "edge") for s in urls}
        policy = policy or Policy(analyses=ALL_AUTO)
        sites = {}
        for name, url in urls.items():
            state, analysis = open_state_db(url), open_analysis_db(url)
            path = folder / f"{name}.csv"
            tables[name].to_csv(path, index=False)
            add_dataset("default", path, analysis_engine=analysis, registry=DatasetRegistry(state))
            identity = SiteIdentity(name, certs[name].cert_pem, certs[name].key_pem, ca.cert_pem)
            runner = TaskRunner.create(analysis, state, policy, identity)
            sites[name] = EdgeSite(name, state, analysis, runner)
        return cls(sites, ca, certs)

    def close(self) -> None:
        for site in self.sites.values():
            site.state.dispose()
            site.analysis.dispose()

    def with_policy(self, policy: Policy) -> None:
        for site in self.sites.values():
            site.runner = TaskRunner.create(site.analysis, site.state, policy, site.runner.identity)

    def round(
        self, spec: Mapping[str, Any], params: Mapping[str, Any], study_id: str, round_no: int
    ) -> dict[str, TaskResult]:
        wire_params = json.loads(json.dumps({**params, "n_sites": len(self.sites)}))
        now = datetime.now(UTC)
        out = {}
        for name, site in self.sites.items():
            task = TaskAssignment(
                task_id=str(uuid.uuid4()),
                study_id=study_id,
                round=round_no,
                analysis=str(spec["analysis"]),
                dataset=str(spec.get("dataset", "default")),
                spec={**spec, "round_params": wire_params},
                requester="alice",
                created_at=now,
                deadline=now + timedelta(hours=1),
            )
            result = site.runner.run(task, approved=True)
            payload = json.loads(json.dumps(dict(result.payload)))
            out[name] = TaskResult(
                result.task_id, result.status, payload, result.message, result.disclosure
            )
        self.results.append(out)
        return out

    def run(self, spec: Mapping[str, Any], max_rounds: int = 300) -> Finished:
        """The analysis to its end; every site must answer OK in every round."""
        parsed = parse_spec(spec)
        analysis = analysis_for(parsed.analysis)
        analysis.validate(parsed)
        study_id = f"study-{uuid.uuid4().hex[:8]}"
        nxt = analysis.first_round(parsed)
        for round_no in range(max_rounds):
            results = self.round(spec, nxt.params, study_id, round_no)
            bad = {s: r.message for s, r in results.items() if r.status is not ResultStatus.OK}
            if bad:
                raise AssertionError(f"round {round_no}: {bad}")
            out = analysis.step(parsed, nxt.state, {s: r.payload for s, r in results.items()})
            if isinstance(out, Finished):
                return out
            nxt = out
        raise AssertionError("analysis did not finish")
