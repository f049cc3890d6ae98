"""Flower Deployment Engine end to end: real processes on loopback
(`flower_federation`). Checks: a SuperNode whose key was never registered is
refused; a secure-aggregation run completes with every site and gives the
plain FedAvg model; a SuperNode killed in round 2 does not hang the run and the
result names who took part. The federated-vs-central AUC is a benchmark:
tests/benchmarks/test_flower_auc.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from federated_ml.flower.features import SqliteFeatureSource
from federated_ml.flower.metrics import MemorySink, read_rounds
from federated_ml.flower.server_app import run_training
from tests.integration.federated_ml.flower_federation import (
    SITES,
    Federation,
    federation,
    run_study,
    study,
)
from tests.unit.federated_ml.flower.fake_grid import FakeGrid

pytestmark = pytest.mark.slow
__all__ = ["federation"]  # the module fixture, shared with the benchmark


def test_unregistered_supernode_is_refused(federation: Federation) -> None:
    proc = federation.dep.processes["stranger"]
    deadline = time.monotonic() + 60
    while proc.alive() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not proc.alive(), "a SuperNode with an unregistered key kept running"
    assert proc.popen.returncode != 0
    assert (
        "No SuperNode found with the given public key"
        in federation.dep.processes["superlink"].log_text()
    )
    nodes = federation.dep.list_supernodes()
    assert len(nodes) == len(SITES)


def test_secure_aggregation_run_gives_the_plain_model(
    federation: Federation, tmp_path: Path
) -> None:
    # Runs before the kill test below, which stops site-c for the rest of the module.
    spec = study("lung-5y-secagg", rounds=2, secure_aggregation=True)
    started = time.monotonic()
    run_id, out = run_study(federation, spec, "secagg")
    result = federation.dep.wait_for_result(run_id, out, timeout=240)
    wall = time.monotonic() - started
    print(f"\nsecure aggregation run: {wall:.1f} s, rounds {result['seconds_per_round']}")
    assert result["status"] == "completed", result
    assert result["rounds_completed"] == 2
    assert result["sites_participated"] == sorted(SITES)
    assert result["sites_dropped"] == {}
    rounds = read_rounds(out / "metrics.db", result["run_key"])
    assert all(set(replied(r)) == set(SITES) for r in rounds)  # no round needed a second try
    # The same spec without secure aggregation, on the same rows: its round loop in process
    # (training is seeded by round and site rows, not by node ids or processes).
    plain = study("lung-5y-secagg", rounds=2)
    grid = FakeGrid({site: SqliteFeatureSource(db) for site, db in federation.site_dbs.items()})
    reference = run_training(grid, plain, "plain", MemorySink(), tmp_path)
    assert reference.model_path is not None
    want = torch.load(reference.model_path, weights_only=False)["state_dict"]
    got = torch.load(result["model_path"], weights_only=False)["state_dict"]
    assert want.keys() == got.keys()
    for key in want:
        np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), atol=1e-5, rtol=0)
    assert result["final_auc_pooled"] == pytest.approx(reference.final_auc_pooled, abs=1e-6)


def test_supernode_killed_in_round_two_does_not_hang(federation: Federation) -> None:
    spec = study(
        "lung-5y-fedprox",
        strategy="fedprox",
        training={"lr": 0.05, "local_epochs": 1, "batch_size": 64, "seed": 5, "proximal_mu": 0.1},
        rounds=2,
    )
    started = time.monotonic()
    run_id, out = run_study(federation, spec, "fedprox-kill")
    db = out / "metrics.db"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if db.exists() and read_rounds(db, f"run-{run_id}"):
            break
        time.sleep(0.2)
    federation.dep.kill("site-c")  # round 1 is recorded, round 2 is under way
    result = federation.dep.wait_for_result(run_id, out, timeout=300)
    wall = time.monotonic() - started
    print(f"\nrun with a dead site: {wall:.1f} s, result {result}")
    assert result["status"] == "completed", result
    assert result["rounds_completed"] == spec.rounds
    assert "site-c" in result["sites_dropped"]
    assert result["sites_participated"] == sorted(SITES)  # site-c's round-1 update counted
    rounds = read_rounds(db, result["run_key"])
    assert "site-c" in replied(rounds[0])
    later = [r for r in rounds if r["server_round"] >= 2]
    assert later and all(set(replied(r)) == {"site-a", "site-b"} for r in later)
    # Not hung: bounded by the start wait plus one timeout per exchange.
    assert wall < spec.start_timeout_s + (spec.rounds + 1) * spec.round_timeout_s


def replied(row: dict[str, Any]) -> list[str]:
    return list(json.loads(row["sites_replied"]))
