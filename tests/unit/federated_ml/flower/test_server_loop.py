"""The ServerApp's round loop on an in-process grid (no Flower processes)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from federated_ml.flower.features import SqliteFeatureSource, needed_columns, split_site_rows
from federated_ml.flower.metrics import (
    MemorySink,
    SqliteMetricsSink,
    read_rounds,
    read_site_metrics,
)
from federated_ml.flower.models import build_model
from federated_ml.flower.server_app import run_training, summarise_evaluations
from federated_ml.flower.spec import MLStudySpec
from federated_ml.flower.training import auc, make_batchable, predict_risk, train_local
from tests.unit.federated_ml.flower.fake_grid import FakeGrid
from tests.unit.federated_ml.flower.synthetic import (
    SHIFTS,
    binary_spec,
    shifted_sites,
)


def spec(**over: Any) -> MLStudySpec:
    return binary_spec("loop test", {"kind": "logistic"}, **{"rounds": 4, **over})


@pytest.fixture
def sites(tmp_path: Path) -> dict[str, Path]:
    return shifted_sites(tmp_path)


def grid_for(sites: dict[str, Path]) -> FakeGrid:
    return FakeGrid({name: SqliteFeatureSource(db) for name, db in sites.items()})


def test_fedavg_reaches_the_pooled_fit(sites: dict[str, Path], tmp_path: Path) -> None:
    s = spec()
    sink = SqliteMetricsSink(tmp_path / "metrics.db")
    result = run_training(grid_for(sites), s, "run-1", sink, tmp_path / "models")
    assert result.status == "completed"
    assert result.sites_participated == sorted(SHIFTS)
    assert result.model_path is not None and Path(result.model_path).exists()
    saved = torch.load(result.model_path, weights_only=False)
    model = build_model(s)
    model.load_state_dict(saved["state_dict"])

    parts = [
        split_site_rows(s, SqliteFeatureSource(db).load(needed_columns(s))) for db in sites.values()
    ]
    train = make_batchable(
        s,
        np.vstack([p.x_train for p in parts]),
        {"died_5y": np.concatenate([p.outcome_train["died_5y"] for p in parts])},
    )
    held = make_batchable(
        s,
        np.vstack([p.x_held_out for p in parts]),
        {"died_5y": np.concatenate([p.outcome_held_out["died_5y"] for p in parts])},
    )
    central = build_model(s, seed=s.training.seed)
    train_local(central, train, s.training, epochs=s.rounds * s.training.local_epochs, seed=1)
    auc_central = auc(predict_risk(central, held.x).numpy(), held.label.numpy())
    auc_fed = auc(predict_risk(model, held.x).numpy(), held.label.numpy())
    assert auc_fed >= 0.98 * auc_central
    assert result.final_auc_pooled == pytest.approx(auc_fed, abs=0.01)

    rounds = read_rounds(tmp_path / "metrics.db", "run-1")
    assert [r["server_round"] for r in rounds] == [1, 2, 3, 4, 5]
    assert rounds[-1]["train_loss"] is None  # the last exchange only evaluates
    assert rounds[0]["eval_model_round"] == 0 and rounds[-1]["eval_model_round"] == 4
    losses = [r["eval_loss"] for r in rounds]
    assert losses[-1] < losses[0]
    per_site = read_site_metrics(tmp_path / "metrics.db", "run-1")
    assert {m["site"] for m in per_site} == set(SHIFTS)
    assert {m["phase"] for m in per_site} == {"train", "eval"}
    assert len(json.loads(rounds[-1]["calibration"])) == 10


def test_a_silent_site_is_dropped_and_named(sites: dict[str, Path], tmp_path: Path) -> None:
    grid = grid_for(sites)
    grid.silent_from["site-c"] = 2
    sink = MemorySink()
    result = run_training(grid, spec(rounds=3), "run-2", sink, tmp_path / "models")
    assert result.status == "completed"
    assert result.sites_participated == sorted(SHIFTS)  # site-c's round 1 update counted
    assert set(result.sites_dropped) == {"site-c"}
    assert "timeout" in result.sites_dropped["site-c"]
    replied = {r.server_round: r.sites_replied for _, r in sink.rounds}
    assert replied[1] == ["site-a", "site-b", "site-c"]
    assert replied[2] == replied[3] == replied[4] == ["site-a", "site-b"]
    # once dropped, a site is not asked again
    assert ("site-c", 3, "train") not in grid.rounds_seen
    assert sink.results == [result]


def test_too_few_sites_abort_with_the_last_good_model(
    sites: dict[str, Path], tmp_path: Path
) -> None:
    grid = grid_for(sites)
    grid.silent_from["site-b"] = 2
    grid.silent_from["site-c"] = 2
    sink = MemorySink()
    result = run_training(grid, spec(rounds=3), "run-3", sink, tmp_path / "models")
    assert result.status == "aborted"
    last = sink.rounds[-1][1]
    assert last.server_round == 2 and set(last.sites_failed) == {"site-b", "site-c"}
    assert result.rounds_completed == 1
    assert "need 2" in result.detail
    assert result.model_version is not None  # round 1's aggregate is kept


def test_a_run_is_reproducible_whatever_the_node_ids(
    sites: dict[str, Path], tmp_path: Path
) -> None:
    first = run_training(grid_for(sites), spec(rounds=2), "r1", MemorySink(), tmp_path / "m1")
    reordered = {name: SqliteFeatureSource(sites[name]) for name in reversed(list(sites))}
    grid = FakeGrid(reordered, first_id=9000)
    second = run_training(grid, spec(rounds=2), "r2", MemorySink(), tmp_path / "m2")
    assert first.model_version is not None
    assert first.model_version == second.model_version


def test_a_site_with_a_broken_feature_table_is_dropped(
    sites: dict[str, Path], tmp_path: Path
) -> None:
    conn = sqlite3.connect(sites["site-b"])
    conn.execute("ALTER TABLE ml_features RENAME COLUMN crp_z TO crp")
    conn.commit()
    conn.close()
    result = run_training(grid_for(sites), spec(rounds=2), "run-4", MemorySink(), tmp_path / "m")
    assert result.status == "completed"
    assert result.sites_participated == ["site-a", "site-c"]
    assert "lacks column" in result.sites_dropped["site-b"]


def test_pooled_summary_weights_sites_by_rows() -> None:
    from flwr.app import ConfigRecord

    def ev(n: int, loss: float, a: float, pos: list[int], neg: list[int]) -> ConfigRecord:
        return ConfigRecord(
            {
                "n": n,
                "n-labelled": n,
                "loss": loss,
                "auc": a,
                "hist-pos": pos + [0] * (100 - len(pos)),
                "hist-neg": neg + [0] * (100 - len(neg)),
                "cal-count": [n] + [0] * 9,
                "cal-sum-predicted": [0.1 * n] + [0.0] * 9,
                "cal-sum-observed": [float(sum(pos))] + [0.0] * 9,
                "skipped-rows": 0,
            }
        )

    loss, auc_w, pooled, cal = summarise_evaluations(
        {"a": ev(30, 0.5, 0.9, [0, 0, 10], [20]), "b": ev(10, 0.9, 0.6, [5], [0, 5])}
    )
    assert loss == pytest.approx((30 * 0.5 + 10 * 0.9) / 40)
    assert auc_w == pytest.approx((30 * 0.9 + 10 * 0.6) / 40)
    # positives: 5 in bin 0, 10 in bin 2; negatives: 20 in bin 0, 5 in bin 1
    expected = (5 * 20 * 0.5 + 10 * 25) / (15 * 25)
    assert pooled == pytest.approx(expected)
    assert cal[0] == (40, pytest.approx(0.1), pytest.approx(15 / 40))
