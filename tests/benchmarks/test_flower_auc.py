"""Federated logistic regression against the same model fitted centrally on the
pooled rows, on three non-IID sites through a real Flower deployment (SuperLink
+ SuperNodes with TLS and node authentication, `flower_federation`). Prints both
AUCs, the ratio (target >= 0.98) and the seconds per round.

    .venv/bin/python -m pytest tests/benchmarks/test_flower_auc.py -s -p no:cacheprovider
"""

from __future__ import annotations

import time

import pytest
import torch

from federated_ml.flower.metrics import read_rounds
from federated_ml.flower.models import build_model
from federated_ml.flower.training import auc, predict_risk, train_local
from tests.integration.federated_ml.flower_federation import (
    SITES,
    Federation,
    federation,
    pooled,
    run_study,
    study,
)

pytestmark = pytest.mark.benchmark
__all__ = ["federation"]


def test_federated_auc_reaches_central(federation: Federation) -> None:
    spec = study("lung-5y-logistic")
    started = time.monotonic()
    run_id, out = run_study(federation, spec, "fedavg")
    result = federation.dep.wait_for_result(run_id, out, timeout=300)
    wall = time.monotonic() - started
    assert result["status"] == "completed", result
    assert result["sites_participated"] == sorted(SITES)
    assert result["rounds_completed"] == spec.rounds

    saved = torch.load(result["model_path"], weights_only=False)
    assert saved["version"] == result["model_version"]
    fed_model = build_model(spec)
    fed_model.load_state_dict(saved["state_dict"])

    train, held = pooled(spec, federation.site_dbs)
    central = build_model(spec, seed=spec.training.seed)
    train_local(
        central,
        train,
        spec.training,
        epochs=spec.rounds * spec.training.local_epochs,
        seed=spec.training.seed,
    )
    auc_central = auc(predict_risk(central, held.x).numpy(), held.label.numpy())
    auc_fed = auc(predict_risk(fed_model, held.x).numpy(), held.label.numpy())
    ratio = auc_fed / auc_central
    rounds = read_rounds(out / "metrics.db", result["run_key"])
    print(
        f"\nAUC federated {auc_fed:.4f} central {auc_central:.4f} ratio {ratio:.4f}; "
        f"pooled AUC reported by the sites {result['final_auc_pooled']:.4f}; "
        f"seconds per round {[round(s, 1) for s in result['seconds_per_round']]}; "
        f"wall {wall:.1f} s"
    )
    assert ratio >= 0.98
    # The sites' binned pooled AUC agrees with the exact one on the same rows.
    assert result["final_auc_pooled"] == pytest.approx(auc_fed, abs=0.01)
    assert [r["server_round"] for r in rounds] == list(range(1, spec.rounds + 2))
    assert all(r["eval_auc_weighted"] is not None for r in rounds)
