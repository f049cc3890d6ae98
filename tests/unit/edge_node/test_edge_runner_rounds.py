"""The task runner beyond one-round counts: derived fields, deadlines, minimum sites, and
secure aggregation with the site's key pair kept per study; on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from edge_node.datasets import add_dataset
from edge_node.policy import Decision, Policy
from edge_node.runner import TaskRunner
from edge_node.secagg import SiteIdentity
from edge_node.store.secagg_keys import SecaggKeyStore
from federated_ml import secure_agg
from federated_ml.analyses import secure_rounds as sr
from protocol import tls
from protocol.messages import ResultStatus, TaskAssignment, TaskResult
from tests.unit.edge_node.conftest import EdgeDbs

K = 5
N = 30
ANALYSES = {a: Decision.AUTO for a in ("count", "describe", "kaplan_meier", "cox")}
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "age": rng.integers(35, 85, N),
            "weight": rng.integers(50, 100, N),
            "height": rng.integers(150, 195, N),
            "time": rng.integers(1, 900, N),
            "status": rng.integers(0, 2, N),
        }
    )


@pytest.fixture
def site(edge_dbs: EdgeDbs, frame: pd.DataFrame, tmp_path: Path) -> EdgeDbs:
    path = tmp_path / "site.csv"
    frame.to_csv(path, index=False)
    add_dataset("default", path, analysis_engine=edge_dbs.analysis, registry=edge_dbs.registry)
    return edge_dbs


@pytest.fixture(scope="module")
def consortium() -> dict[str, Any]:
    ca = tls.create_ca()
    certs = {s: tls.issue_certificate(ca, s, "edge") for s in ("site-a", "site-b", "site-c")}
    return {"ca": ca, "certs": certs, "hub": tls.issue_certificate(ca, "site-c", "hub")}


def runner(dbs: EdgeDbs, consortium: dict[str, Any] | None = None, **kw: Any) -> TaskRunner:
    clock = kw.pop("clock", lambda: NOW)
    identity = None
    if consortium is not None:
        cert = consortium["certs"]["site-a"]
        identity = SiteIdentity("site-a", cert.cert_pem, cert.key_pem, consortium["ca"].cert_pem)
    policy = Policy(K, ANALYSES, **kw)
    return TaskRunner.create(dbs.analysis, dbs.state, policy, identity, clock)


def task(spec: dict[str, Any], study: str = "s-1", **kw: Any) -> TaskAssignment:
    return TaskAssignment(
        task_id=str(uuid.uuid4()),
        study_id=study,
        round=0,
        analysis=str(spec["analysis"]),
        dataset="default",
        spec=spec,
        requester="alice",
        created_at=NOW - timedelta(minutes=1),
        deadline=kw.get("deadline", NOW + timedelta(hours=1)),
    )


# --- derived fields -------------------------------------------------------------------------

DERIVED = {
    "age_group": {"cut": "age", "breaks": [50, 65], "labels": ["young", "middle", "old"]},
    "bmi": {"expr": "weight / (height / 100) ** 2"},
}


def test_derived_fields_as_cohort_condition_variable_and_covariate(
    site: EdgeDbs, frame: pd.DataFrame
) -> None:
    r = runner(site)
    spec = {
        "analysis": "describe",
        "derived": DERIVED,
        "variables": ["age_group", "bmi"],
        "where": {"field": "age_group", "op": "!=", "value": "young"},
    }
    result = r.run(task(spec))
    assert result.status is ResultStatus.OK, result.message
    cohort = frame[frame["age"] >= 50]
    assert result.payload["n"] == len(cohort)
    bmi = cohort["weight"] / (cohort["height"] / 100) ** 2
    assert result.payload["variables"]["bmi"]["sum"] == pytest.approx(bmi.sum())
    counts = result.payload["variables"]["age_group"]["counts"]
    expected = {"middle": int((cohort["age"] < 65).sum()), "old": int((cohort["age"] >= 65).sum())}
    assert {k: v for k, v in counts.items() if v != "suppressed"} == {
        k: v for k, v in expected.items() if v >= K
    }


def test_a_derived_field_may_not_shadow_a_column(site: EdgeDbs) -> None:
    spec = {"analysis": "count", "derived": {"age": {"expr": "weight * 2"}}}
    result = runner(site).run(task(spec))
    assert result.status is ResultStatus.FAILED and "'age' is already a column" in result.message


def test_a_bad_derived_field_fails_naming_it(site: EdgeDbs) -> None:
    spec = {"analysis": "count", "derived": {"g": {"cut": "shoe_size", "breaks": [40]}}}
    result = runner(site).run(task(spec))
    assert result.status is ResultStatus.FAILED and "shoe_size" in result.message


# --- deadlines and minimum sites --------------------------------------------------------------


def test_a_task_past_its_deadline_is_not_run(site: EdgeDbs) -> None:
    late = task({"analysis": "count"}, deadline=NOW - timedelta(seconds=1))
    result = runner(site).run(late)
    assert result.status is ResultStatus.FAILED and result.message.startswith("deadline passed")
    assert result.payload == {}


def test_fewer_sites_than_the_policy_requires_are_refused(site: EdgeDbs) -> None:
    two = {"analysis": "count", "round_params": {"n_sites": 2}}
    refused = runner(site, min_sites=3).run(task(two))
    assert refused.status is ResultStatus.REFUSED and "min_sites" in refused.message
    assert runner(site, min_sites=2).run(task(two)).payload == {"n": N}
    three = {"analysis": "count", "round_params": {"n_sites": 3}}
    assert runner(site, min_sites=3).run(task(three)).status is ResultStatus.OK


# --- secure aggregation -----------------------------------------------------------------------

KM = {"analysis": "kaplan_meier", "time": "time", "event": "status", "time_grid_days": "exact"}


def keys_round(r: TaskRunner, study: str = "s-1") -> TaskResult:
    params = {"phase": "horizon", **sr.keys_round("secagg-1"), "n_sites": 3}
    return r.run(task({**KM, "round_params": params}, study))


def peer(consortium: dict[str, Any], name: str, study: str, signer: str | None = None) -> dict:
    keys = secure_agg.new_site_keys()
    signing = consortium["certs"][signer or name].key_pem
    signature = secure_agg.sign_public_key(name, f"{study}|secagg-1", keys.public_b64, signing)
    cert = consortium["certs"][name].cert_pem.decode()
    return {"public_key": keys.public_b64, "signature": signature, "cert_pem": cert}


def mask_round(
    r: TaskRunner, own: dict[str, Any], horizon: float, peers: dict[str, Any]
) -> TaskResult:
    params = {
        "phase": "exact",
        "length": round(horizon) + 1,
        "levels": ["all"],
        sr.SECAGG: {"phase": "mask", "context": "secagg-1", "peers": {"site-a": own, **peers}},
    }
    return r.run(task({**KM, "round_params": params}))


def test_keys_round_keeps_the_key_pair_and_the_mask_round_masks(
    site: EdgeDbs, consortium: dict[str, Any]
) -> None:
    r = runner(site, consortium)
    first = keys_round(r)
    assert first.status is ResultStatus.OK, first.message
    own = first.payload[sr.SECAGG_KEYS]
    stored = SecaggKeyStore(site.state).get("s-1")
    assert stored is not None and stored.public_b64 == own["public_key"]
    peers = {s: peer(consortium, s, "s-1") for s in ("site-b", "site-c")}
    masked = mask_round(r, own, first.payload["horizon"], peers)
    assert masked.status is ResultStatus.OK, masked.message
    vectors = masked.payload[sr.SECURE]
    assert set(vectors) == {"d|all", "c|all"}
    assert all(isinstance(v, str) for v in vectors.values())


def test_a_peer_key_not_signed_by_that_peers_certificate_is_refused(
    site: EdgeDbs, consortium: dict[str, Any]
) -> None:
    r = runner(site, consortium)
    first = keys_round(r)
    forged = peer(consortium, "site-c", "s-1", signer="site-b")
    peers = {"site-b": peer(consortium, "site-b", "s-1"), "site-c": forged}
    result = mask_round(r, first.payload[sr.SECAGG_KEYS], first.payload["horizon"], peers)
    assert result.status is ResultStatus.REFUSED and "fails verification" in result.message
    assert result.payload == {}


def test_a_peer_presenting_a_hub_certificate_is_refused(
    site: EdgeDbs, consortium: dict[str, Any]
) -> None:
    r = runner(site, consortium)
    first = keys_round(r)
    hub = consortium["hub"]
    keys = secure_agg.new_site_keys()
    sig = secure_agg.sign_public_key("site-c", "s-1|secagg-1", keys.public_b64, hub.key_pem)
    fake = {"public_key": keys.public_b64, "signature": sig, "cert_pem": hub.cert_pem.decode()}
    peers = {"site-b": peer(consortium, "site-b", "s-1"), "site-c": fake}
    result = mask_round(r, first.payload[sr.SECAGG_KEYS], first.payload["horizon"], peers)
    assert result.status is ResultStatus.REFUSED and "edge certificate" in result.message


def test_vectors_asked_for_in_a_keys_round_are_refused(
    site: EdgeDbs, consortium: dict[str, Any]
) -> None:
    params = {"phase": "exact", "length": 901, "levels": ["all"], **sr.keys_round("secagg-1")}
    result = runner(site, consortium).run(task({**KM, "round_params": params}))
    assert result.status is ResultStatus.REFUSED and result.payload == {}


def test_keys_unused_for_the_ttl_are_deleted(site: EdgeDbs, consortium: dict[str, Any]) -> None:
    assert keys_round(runner(site, consortium)).status is ResultStatus.OK
    # (Reading a key pair counts as using it: read it at the runner's time.)
    assert SecaggKeyStore(site.state, lambda: NOW).get("s-1") is not None
    later = runner(site, consortium, clock=lambda: NOW + timedelta(hours=25))
    late = task({"analysis": "count"}, deadline=NOW + timedelta(days=2))
    assert later.run(late).status is ResultStatus.OK
    assert SecaggKeyStore(site.state).get("s-1") is None


def test_a_mask_round_without_a_kept_key_is_refused(
    site: EdgeDbs, consortium: dict[str, Any]
) -> None:
    r = runner(site, consortium)
    own = peer(consortium, "site-a", "s-1")
    peers = {s: peer(consortium, s, "s-1") for s in ("site-b", "site-c")}
    result = mask_round(r, own, 900.0, peers)
    assert result.status is ResultStatus.REFUSED and "no key" in result.message


def test_a_site_that_does_not_allow_secure_aggregation_refuses_the_keys_round(
    site: EdgeDbs, consortium: dict[str, Any]
) -> None:
    result = keys_round(runner(site, consortium, allow_secure_aggregation=False))
    assert result.status is ResultStatus.REFUSED
    assert "allow_secure_aggregation" in result.message and result.payload == {}
