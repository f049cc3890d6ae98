"""Edge nodes in-process for the hub's tests: they pull from a `StudyService`, run the
analysis' local step on their own frame, do what an edge's disclosure control does
to time-grid bins, take part in secure aggregation with real certificates, and
send the payload back through JSON as the wire would.

`reference_result` runs the same sites without any hub, for the result a study
must end with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from federated_ml import secure_agg
from federated_ml.analyses import Finished, analysis_for
from federated_ml.analyses import secure_rounds as sr
from federated_ml.analyses.base import parse_spec
from federated_ml.stats.survival import invalid_bins
from hub.db.models import StudyStatus
from hub.studies.envelope import json_safe
from hub.studies.service import StudyService
from protocol import serde, tls
from protocol.messages import ResultStatus, TaskResult

MIN_CELL_SIZE = 5


def synthetic_sites(sizes: Mapping[str, int], seed: int = 11) -> dict[str, pd.DataFrame]:
    """Flat tables with every column the analyses' test specs use; times in whole days."""
    rng = np.random.default_rng(seed)
    frames = {}
    for site, n in sizes.items():
        age = rng.normal(62, 9, n).round(1)
        sex = rng.integers(0, 2, n)
        hazard = np.exp(0.03 * (age - 62) + 0.4 * sex)
        time = np.ceil(rng.exponential(500 / hazard)).clip(1, 1500).astype(int)
        frames[site] = pd.DataFrame(
            {
                "time": time,
                "status": rng.integers(0, 2, n),
                "age": age,
                "sex": sex,
                "arm": rng.choice(["A", "B"], n),
                "stage": rng.choice(["I", "II", "III"], n),
                "response": (rng.random(n) < 1 / (1 + np.exp(-0.05 * (age - 62)))).astype(int),
                "marker": rng.normal(4, 1.5, n).round(2),
            }
        )
    return frames


class FakeSites:
    def __init__(self, frames: Mapping[str, pd.DataFrame]) -> None:
        self.frames = dict(frames)
        self.ca = tls.create_ca()
        self.certs = {s: tls.issue_certificate(self.ca, s, "edge") for s in self.frames}
        # The sites' own state: their secure-aggregation key per study.
        self.keys: dict[tuple[str, str], secure_agg.SiteKeys | None] = {}
        self.silent: set[str] = set()  # sites that pull but never answer

    def payload(
        self, site: str, study_id: str, spec_raw: Mapping[str, Any], params: Mapping[str, Any]
    ) -> dict[str, Any]:
        spec = parse_spec(spec_raw)
        analysis = analysis_for(spec.analysis)
        frame = self.frames[site].dropna(subset=analysis.columns(spec))
        payload = analysis.local(frame, spec, params)
        if params.get("phase") == "grid":  # the edge's cell rule on time-grid bins
            bins = [(np.asarray(b["d"]), np.asarray(b["c"])) for b in payload["bins"].values()]
            bad = invalid_bins(bins, MIN_CELL_SIZE)
            if bad:
                payload = {"n": payload["n"], "edges": payload["edges"], "invalid_bins": bad}
        cert = self.certs[site]
        payload, self.keys[site, study_id] = sr.site_side(
            payload,
            params,
            site=site,
            study_id=study_id,
            keys=self.keys.get((site, study_id)),
            cert_pem=cert.cert_pem,
            cert_key_pem=cert.key_pem,
            ca_pem=self.ca.cert_pem,
        )
        # Through JSON, as over the wire.
        return serde.json_from_bytes(serde.json_to_bytes(json_safe(payload)), "payload")

    def answer(self, service: StudyService, site: str) -> int:
        """Answer every open task of `site`; returns how many."""
        tasks = service.pull(site)
        if site in self.silent:
            return 0
        for task in tasks:
            raw = dict(task.spec)
            params = raw.pop("round_params")
            payload = self.payload(site, task.study_id, raw, params)
            service.submit_result(site, TaskResult(task.task_id, ResultStatus.OK, payload))
        return len(tasks)

    def drive(
        self,
        study_id: str,
        service: Callable[[], StudyService],
        user: Any,
        max_rounds: int = 300,
    ) -> int:
        """Answer round after round until the study ends; `service()` is asked anew each
        round, so a test can hand out a restarted hub. Returns the rounds answered."""
        for rounds in range(max_rounds):
            current = service()
            if current.get(user, study_id).status is not StudyStatus.RUNNING:
                return rounds
            if not sum(self.answer(current, site) for site in self.frames):
                return rounds  # nothing to answer: waiting on a deadline
        raise AssertionError(f"study {study_id} still running after {max_rounds} rounds")


def reference_result(frames: Mapping[str, pd.DataFrame], spec_raw: Mapping[str, Any]) -> Any:
    """The analysis run on the same sites with no hub in between (JSON-safe result)."""
    sites = FakeSites(frames)
    spec = parse_spec(spec_raw)
    analysis = analysis_for(spec.analysis)
    step = analysis.first_round(spec)
    for _ in range(300):
        payloads = {s: sites.payload(s, "reference", spec_raw, step.params) for s in frames}
        out = analysis.step(spec, step.state, payloads)
        if isinstance(out, Finished):
            return json_safe(out.result)
        step = out
    raise AssertionError("the analysis did not finish")
