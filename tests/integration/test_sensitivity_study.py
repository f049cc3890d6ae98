"""A study with a sensitivity run, through a real hub and real edges (processes, gRPC,
mutual TLS): each edge holds a CDM with pathology pT facts extracted from notes at
different confidences; the study runs as given and again with facts below 0.9
left out, and its result shows both with their difference."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from ops.federation import LocalFederation
from ops.local_federation import hub_settings_for_local_run
from shared_cdm.errors import InvalidInput
from shared_cdm.models import Base

pytestmark = pytest.mark.slow

SITES = ("A", "B")
TIMEOUT = 120.0
NLP, REGISTRY = 32858, 32879
POLICY = """\
min_cell_size = 5
min_sites = 2

[analyses]
count = "auto"
"""
LUNG = {"event": "diagnosis", "field": "code", "op": "starts_with", "value": "C34"}


def _facts(code: str, values: list[str]) -> dict[str, Any]:
    where = {
        "all": [
            {"field": "code", "op": "=", "value": code},
            {"field": "value_source_value", "op": "in", "value": values},
        ]
    }
    return {"event": "measurement", "where": where}


def _study(facts: dict[str, Any]) -> dict[str, Any]:
    return {
        "analysis": "count",
        "dataset": "cdm",
        "cdm_dataset": {"index": LUNG, "cohort": facts, "outcome": {"event": "death"}},
        "sensitivity": {"min_confidence": 0.9},
    }


@dataclass(frozen=True)
class SiteData:
    """Per site: patients with a confident pT3/4, with only a doubtful one, and with a pN1
    that is always confident (or structured)."""

    confident_pt: int
    doubtful_pt: int
    pn: int


DATA = {"A": SiteData(20, 6, 14), "B": SiteData(18, 7, 15)}


def _cdm_rows(data: SiteData) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = {"person": [], "condition_occurrence": []}
    rows["measurement"] = []
    groups = (
        [("pT", "T3", 0.95 if i % 2 else None) for i in range(data.confident_pt)]
        + [("pT", "T4", 0.6) for _ in range(data.doubtful_pt)]
        + [("pN", "N1", 0.97 if i % 3 else None) for i in range(data.pn)]
    )
    for pid, (code, value, confidence) in enumerate(groups, start=1):
        rows["person"].append(
            {
                "person_id": pid,
                "gender_concept_id": 8507,
                "year_of_birth": 1955,
                "race_concept_id": 0,
                "ethnicity_concept_id": 0,
            }
        )
        rows["condition_occurrence"].append(
            {
                "condition_occurrence_id": pid,
                "person_id": pid,
                "condition_concept_id": 0,
                "condition_start_date": date(2023, 3, 1),
                "condition_type_concept_id": REGISTRY,
                "condition_source_value": "C34.1",
            }
        )
        rows["measurement"].append(
            {
                "measurement_id": pid,
                "person_id": pid,
                "measurement_concept_id": 0,
                "measurement_date": date(2023, 3, 9),
                "measurement_type_concept_id": REGISTRY if confidence is None else NLP,
                "measurement_source_value": code,
                "value_source_value": value,
                "measurement_event_id": pid,
                "meas_event_field_concept_id": 1147127,
                "confidence": confidence,
            }
        )
    return rows


@dataclass
class Run:
    fed: LocalFederation
    hub_db: str

    def study(self, study_id: str) -> dict[str, Any]:
        with self.fed.client() as hub:
            return dict(hub.study(study_id))

    def submit(self, spec: dict[str, Any]) -> dict[str, Any]:
        """The primary study once it and its sensitivity run have both ended."""
        with self.fed.client() as hub:
            study_id = str(hub.submit_study(spec, sites=list(SITES))["id"])
            hub.wait_for_study(study_id, timeout=TIMEOUT, watch=lambda: self.fed.check_alive(SITES))
        deadline = time.monotonic() + TIMEOUT
        while True:
            study = self.study(study_id)
            status = (study.get("result") or {}).get("sensitivity", {}).get("status")
            if status in ("completed", "failed", "identical"):
                return study
            if time.monotonic() > deadline:
                pytest.fail(f"the sensitivity run of {study_id} did not end: {status}")
            self.fed.check_alive(SITES)
            time.sleep(0.3)

    def releases(self, site: str) -> list[sa.Row[Any]]:
        engine = sa.create_engine(f"sqlite:///{self.fed.layout.edge_home(site) / 'edge.db'}")
        try:
            with engine.connect() as conn:
                query = "SELECT study_id, released FROM edge_ledger_releases ORDER BY id"
                return list(conn.execute(sa.text(query)))
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    root = tmp_path_factory.mktemp("sensitivity")
    (root / "data").mkdir()
    flat = root / "data" / "flat.csv"
    pd.DataFrame({"age": [60, 70]}).to_csv(flat, index=False)
    policy = root / "data" / "policy.toml"
    policy.write_text(POLICY, encoding="utf-8")
    hub_db = f"sqlite:///{root / 'hub.db'}"
    with LocalFederation(root / "fed", ready_timeout=90, grace=10) as fed:
        fed.init_ca()
        fed.start_hub(auto_approve=True, db_url=hub_db, settings=hub_settings_for_local_run())
        fed.add_edges(dict.fromkeys(SITES, flat), policy=policy)
        for site in SITES:
            # `init` made the CDM tables; the edge reads them when a task comes.
            engine = sa.create_engine(f"sqlite:///{fed.layout.edge_home(site) / 'analysis.db'}")
            with engine.begin() as conn:
                for table, rows in _cdm_rows(DATA[site]).items():
                    conn.execute(Base.metadata.tables[table].insert(), rows)
            engine.dispose()
        fed.wait_for_sites(SITES, timeout=60)
        yield Run(fed, hub_db)


def _site_counts(envelope: dict[str, Any]) -> dict[str, Any]:
    return dict(envelope["by_site"])


def test_low_confidence_facts_make_the_two_results_differ(run: Run) -> None:
    study = run.submit(_study(_facts("pT", ["T3", "T4"])))
    assert study["status"] == "completed", study.get("error")
    result = study["result"]
    sensitivity = result["sensitivity"]
    assert sensitivity["status"] == "completed", sensitivity.get("error")
    assert sensitivity["min_confidence"] == 0.9

    primary_n = sum(d.confident_pt + d.doubtful_pt for d in DATA.values())
    strict_n = sum(d.confident_pt for d in DATA.values())
    assert result["result"]["count"] == primary_n
    assert sensitivity["result"]["count"] == strict_n
    assert _site_counts(result["result"]) == {
        s: d.confident_pt + d.doubtful_pt for s, d in DATA.items()
    }
    assert _site_counts(sensitivity["result"]) == {s: d.confident_pt for s, d in DATA.items()}
    change = sensitivity["comparison"]["result"]["count"]
    assert change == {"primary": primary_n, "sensitivity": strict_n, "change": strict_n - primary_n}
    assert sensitivity["comparison"]["n"]["change"] == strict_n - primary_n

    # The run is a study of its own, with the restricted spec, that each site released
    # separately: one more release in each site's ledger.
    run_study = run.study(sensitivity["study_id"])
    facts = run_study["spec"]["cdm_dataset"]["cohort"]
    assert facts["min_confidence"] == 0.9
    assert run_study["spec"]["cdm_dataset"]["index"]["min_confidence"] == 0.9
    assert "sensitivity" not in run_study["spec"]
    assert run_study["sensitivity_of"] == study["id"]
    for site in SITES:
        released = {row.study_id: json.loads(row.released) for row in run.releases(site)}
        assert released[study["id"]]["n"] == DATA[site].confident_pt + DATA[site].doubtful_pt
        assert released[sensitivity["study_id"]]["n"] == DATA[site].confident_pt


def test_without_low_confidence_facts_the_two_results_agree(run: Run) -> None:
    study = run.submit(_study(_facts("pN", ["N1"])))
    assert study["status"] == "completed", study.get("error")
    sensitivity = study["result"]["sensitivity"]
    assert sensitivity["status"] == "completed", sensitivity.get("error")
    expected = sum(d.pn for d in DATA.values())
    assert study["result"]["result"]["count"] == expected
    assert sensitivity["result"]["count"] == expected
    assert sensitivity["comparison"]["result"]["count"]["change"] == 0
    assert _site_counts(sensitivity["result"]) == _site_counts(study["result"]["result"])


def test_a_study_whose_events_carry_no_confidence_runs_once(run: Run) -> None:
    spec = _study({"event": "death", "negate": True})
    spec["cdm_dataset"]["index"] = {**LUNG, "min_confidence": 0.95}  # stricter already
    study = run.submit(spec)
    assert study["status"] == "completed", study.get("error")
    sensitivity = study["result"]["sensitivity"]
    assert sensitivity["status"] == "identical"
    assert "study_id" not in sensitivity
    n_persons = sum(d.confident_pt + d.doubtful_pt + d.pn for d in DATA.values())
    assert study["result"]["result"]["count"] == n_persons


def test_a_malformed_sensitivity_option_is_refused_at_submission(run: Run) -> None:
    spec = {**_study(_facts("pT", ["T3"])), "sensitivity": {"min_confidence": 1.5}}
    with run.fed.client() as hub, pytest.raises(InvalidInput, match="from 0 to 1"):
        hub.submit_study(spec, sites=list(SITES))
