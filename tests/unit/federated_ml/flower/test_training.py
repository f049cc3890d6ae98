from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from federated_ml.flower.features import SqliteFeatureSource, needed_columns, split_site_rows
from federated_ml.flower.models import build_model, model_version
from federated_ml.flower.spec import MLStudySpec, SurvivalOutcome, parse_ml_spec
from federated_ml.flower.training import (
    auc,
    auc_from_histograms,
    calibration_bins,
    evaluate,
    loss_sum,
    make_batchable,
    score_histogram,
    survival_targets,
    train_local,
)
from tests.unit.federated_ml.flower.synthetic import FEATURES, binary_site, survival_site


def binary_spec(**over: Any) -> MLStudySpec:
    raw: dict[str, Any] = {
        "name": "t",
        "model": {"kind": "logistic"},
        "features": FEATURES,
        "outcome": {"kind": "binary", "column": "died_5y"},
        "training": {"lr": 0.05, "local_epochs": 5, "batch_size": 32, "seed": 3},
    }
    raw.update(over)
    return parse_ml_spec(raw)


def survival_spec() -> MLStudySpec:
    return parse_ml_spec(
        {
            "name": "s",
            "model": {"kind": "discrete_survival"},
            "features": FEATURES,
            "outcome": {
                "kind": "survival",
                "time_column": "followup_days",
                "event_column": "died",
                "horizon": 1825,
                "intervals": 5,
            },
            "training": {"lr": 0.05, "local_epochs": 30, "batch_size": 64, "seed": 1},
        }
    )


def test_auc_matches_pair_counting_with_ties() -> None:
    scores = [0.1, 0.4, 0.35, 0.8, 0.4, 0.2]
    labels = [0, 0, 1, 1, 1, 0]
    pairs = [
        1.0 if s1 > s0 else 0.5 if s1 == s0 else 0.0
        for s1, y1 in zip(scores, labels, strict=True)
        if y1
        for s0, y0 in zip(scores, labels, strict=True)
        if not y0
    ]
    assert auc(scores, labels) == pytest.approx(sum(pairs) / len(pairs))
    assert math.isnan(auc([0.1, 0.2], [1, 1]))


def test_histogram_auc_is_close_to_the_exact_auc() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(2000) < 0.3
    s = 1 / (1 + np.exp(-(rng.normal(size=2000) + 1.5 * y)))
    pos, neg = score_histogram(s, y.astype(float))
    assert sum(pos) == int(y.sum()) and sum(neg) == int((~y).sum())
    assert auc_from_histograms(pos, neg) == pytest.approx(auc(s, y), abs=0.005)


def test_calibration_bins_sum_to_the_rows() -> None:
    s = np.array([0.05, 0.15, 0.16, 0.95])
    y = np.array([0.0, 1.0, 0.0, 1.0])
    cal = calibration_bins(s, y)
    assert cal.count[0] == 1 and cal.count[1] == 2 and cal.count[9] == 1
    n, mean_pred, mean_obs = cal.rows()[1]
    assert (n, mean_obs) == (2, 0.5)
    assert mean_pred == pytest.approx(0.155)


def test_survival_targets_keep_censored_rows_up_to_their_censoring() -> None:
    outcome = SurvivalOutcome(
        kind="survival", time_column="t", event_column="e", horizon=500, intervals=5
    )
    time = np.array([250.0, 250.0, 260.0, 700.0, 120.0])
    event = np.array([1, 0, 0, 1, 0])
    target, at_risk, label, known = survival_targets(time, event, outcome)
    # event in interval 2 (200-300): survived 0 and 1, event in 2
    assert at_risk[0].tolist() == [1, 1, 1, 0, 0] and target[0].tolist() == [0, 0, 1, 0, 0]
    # censored at 250, the middle of interval 2: survived 0 and 1 only
    assert at_risk[1].tolist() == [1, 1, 1, 0, 0]  # 250 >= 2.5 * 100: counts as surviving 2
    assert at_risk[4].tolist() == [1, 0, 0, 0, 0]  # censored at 120 (< 150): survived 0 only
    assert target[1].sum() == 0 and target[2].sum() == 0
    # event after the horizon: survived all five intervals, no event inside
    assert at_risk[3].tolist() == [1] * 5 and target[3].sum() == 0
    # horizon label known for events before it and follow-up past it, not for early censoring
    assert known.tolist() == [1, 0, 0, 1, 0]
    assert label.tolist() == [1, 0, 0, 0, 0]


def test_training_is_deterministic_under_a_seed(tmp_path: Path) -> None:
    spec = binary_spec()
    db = binary_site(tmp_path / "a.sqlite", 300, [0.0, 0.0, 0.0], -0.5, seed=1)
    data = split_site_rows(spec, SqliteFeatureSource(db).load(needed_columns(spec)))
    batch = make_batchable(spec, data.x_train, data.outcome_train)
    versions = []
    for _ in range(2):
        model = build_model(spec, seed=7)
        train_local(model, batch, spec.training, seed=11)
        versions.append(model_version(model.state_dict()))
    assert versions[0] == versions[1]
    other = build_model(spec, seed=7)
    train_local(other, batch, spec.training, seed=12)
    assert model_version(other.state_dict()) != versions[0]


def test_logistic_training_learns_the_signal(tmp_path: Path) -> None:
    spec = binary_spec()
    db = binary_site(tmp_path / "a.sqlite", 800, [0.0, 0.0, 0.0], -0.5, seed=2)
    data = split_site_rows(spec, SqliteFeatureSource(db).load(needed_columns(spec)))
    train = make_batchable(spec, data.x_train, data.outcome_train)
    held = make_batchable(spec, data.x_held_out, data.outcome_held_out)
    model = build_model(spec, seed=0)
    before = evaluate(model, held)
    train_local(model, train, spec.training, seed=0)
    after = evaluate(model, held)
    assert after.loss < before.loss
    assert after.auc > 0.8
    assert after.n == len(held) and sum(after.hist_pos) + sum(after.hist_neg) == after.n


def test_proximal_term_keeps_weights_near_the_start(tmp_path: Path) -> None:
    spec = binary_spec()
    db = binary_site(tmp_path / "a.sqlite", 400, [0.0, 0.0, 0.0], -0.5, seed=3)
    data = split_site_rows(spec, SqliteFeatureSource(db).load(needed_columns(spec)))
    batch = make_batchable(spec, data.x_train, data.outcome_train)
    drift = {}
    for mu in (0.0, 5.0):
        model = build_model(spec, seed=1)
        start = [p.detach().clone() for p in model.parameters()]
        train_local(model, batch, spec.training, proximal_mu=mu, seed=0)
        drift[mu] = sum(
            float(((p.detach() - s) ** 2).sum())
            for p, s in zip(model.parameters(), start, strict=True)
        )
    assert drift[5.0] < 0.5 * drift[0.0]


def test_mlp_model_shapes() -> None:
    spec = binary_spec(model={"kind": "mlp", "hidden": [8, 4]})
    out = build_model(spec, seed=0)(torch.zeros(5, len(FEATURES)))
    assert out.shape == (5,)


def test_survival_model_uses_censored_rows_and_ranks_risk(tmp_path: Path) -> None:
    spec = survival_spec()
    db = survival_site(tmp_path / "s.sqlite", 1200, seed=4)
    data = split_site_rows(spec, SqliteFeatureSource(db).load(needed_columns(spec)))
    train = make_batchable(spec, data.x_train, data.outcome_train)
    held = make_batchable(spec, data.x_held_out, data.outcome_held_out)
    assert train.at_risk is not None
    censored_early = train.labelled.numpy() == 0
    assert censored_early.any()
    # censored rows still contribute at-risk intervals to the likelihood
    assert train.at_risk.numpy()[censored_early].sum() > 0
    model = build_model(spec, seed=0)
    assert model(train.x).shape == (len(train), 5)
    train_local(model, train, spec.training, seed=0)
    ev = evaluate(model, held)
    assert ev.auc > 0.75
    assert ev.n_labelled < ev.n  # early-censored rows are left out of AUC only
    assert float(loss_sum(model, train).detach()) > 0
