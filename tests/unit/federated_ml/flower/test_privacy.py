"""DP on the client update: OpenDP calibration against the run's budget, clipping, the
noise actually added, and a site that set no noise sending nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from federated_ml.flower.features import SqliteFeatureSource
from federated_ml.flower.metrics import MemorySink
from federated_ml.flower.privacy import Noise, calibrate, privatise, rho_for, spent_rho
from federated_ml.flower.server_app import run_training
from federated_ml.flower.spec import PrivacySpec, parse_ml_spec
from shared_cdm.errors import InvalidInput
from tests.unit.federated_ml.flower.fake_grid import FakeGrid
from tests.unit.federated_ml.flower.synthetic import FEATURES, binary_site


def test_calibration_spends_the_budget_over_the_rounds() -> None:
    privacy = PrivacySpec(epsilon=1.0, delta=1e-5, clip_norm=2.0)
    rho = rho_for(1.0, 1e-5)
    # The (epsilon, delta) bound of the total rho is the budget itself.
    assert rho + 2 * np.sqrt(rho * np.log(1e5)) == pytest.approx(1.0)
    scale4 = calibrate(privacy, rounds=4)
    scale1 = calibrate(privacy, rounds=1)
    assert 4 * spent_rho(2.0, scale4) <= rho * (1 + 1e-6)
    assert 4 * spent_rho(2.0, scale4) == pytest.approx(rho, rel=1e-3)
    assert scale4 == pytest.approx(2 * scale1, rel=1e-3)  # rho splits: the scale doubles


def test_privatise_clips_the_update_and_adds_noise() -> None:
    before = {"w": np.zeros((1, 3), np.float32), "b": np.zeros(1, np.float32)}
    after = {"w": np.array([[3.0, 0.0, 4.0]], np.float32), "b": np.array([0.0], np.float32)}
    quiet, norm = privatise(before, after, Noise(clip=1.0, scale=1e-9))
    assert norm == pytest.approx(5.0)
    np.testing.assert_allclose(quiet["w"], [[0.6, 0.0, 0.8]], atol=1e-6)
    assert list(quiet) == ["w", "b"] and quiet["w"].dtype == np.float32
    draws = np.stack([privatise(before, before, Noise(1.0, 0.5))[0]["w"][0] for _ in range(400)])
    assert draws.std() == pytest.approx(0.5, rel=0.15)
    assert abs(draws.mean()) < 0.1


def test_node_config_noise() -> None:
    assert Noise.from_node_config({"feature-db": "x"}) is None
    assert Noise.from_node_config({"dp-clip": 1, "dp-scale": "2.5"}) == Noise(1.0, 2.5)
    with pytest.raises(InvalidInput, match="both"):
        Noise.from_node_config({"dp-clip": 1})


def spec(**over: Any) -> Any:
    raw: dict[str, Any] = {
        "name": "dp",
        "model": {"kind": "logistic"},
        "features": FEATURES,
        "outcome": {"kind": "binary", "column": "died_5y"},
        "training": {"lr": 0.05, "local_epochs": 2, "seed": 4},
        "rounds": 2,
        "min_nodes": 2,
        "round_timeout_s": 0.5,
        "start_timeout_s": 1,
        "privacy": {"epsilon": 2.0, "clip_norm": 1.0},
    }
    raw.update(over)
    return parse_ml_spec(raw)


def sites(tmp_path: Path) -> dict[str, SqliteFeatureSource]:
    return {
        s: SqliteFeatureSource(binary_site(tmp_path / f"{s}.sqlite", 200, [0, 0, 0], -0.2, i))
        for i, s in enumerate(("A", "B"))
    }


def test_sites_train_with_their_noise_and_without_it_send_nothing(tmp_path: Path) -> None:
    s = spec()
    assert s.privacy is not None
    noise = Noise(1.0, calibrate(s.privacy, s.rounds))
    sources = sites(tmp_path)
    grid = FakeGrid(sources, noise={"A": noise, "B": noise})
    done = run_training(grid, s, "r1", MemorySink(), tmp_path / "m1")
    assert done.status == "completed" and done.sites_participated == ["A", "B"]

    silent = FakeGrid(sources, noise={"A": noise})  # B set no noise
    sink = MemorySink()
    aborted = run_training(silent, s, "r2", sink, tmp_path / "m2")
    assert aborted.status == "aborted"
    assert "set no DP noise" in aborted.sites_dropped["B"]
