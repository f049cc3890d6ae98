"""Small synthetic sites for the unit tests (non-IID: shifted case mix)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from federated_ml.flower.spec import MLStudySpec, parse_ml_spec

FEATURES = ["age_z", "tumour_size_z", "crp_z"]
COEF = np.array([1.0, 1.2, -0.7])
# Three sites of different size and case mix: (rows, feature shift, intercept).
SHIFTS = {
    "site-a": (400, [0.8, 0.0, 0.0], -0.8),
    "site-b": (300, [-0.5, 0.6, 0.3], -0.2),
    "site-c": (200, [0.0, -0.7, -0.5], 0.4),
}


def shifted_sites(folder: Path) -> dict[str, Path]:
    """The three SHIFTS sites as SQLite feature tables in `folder`."""
    return {
        name: binary_site(folder / f"{name}.sqlite", n, shift, b, seed=i)
        for i, (name, (n, shift, b)) in enumerate(SHIFTS.items())
    }


def binary_spec(name: str, model: dict[str, Any], **over: Any) -> MLStudySpec:
    """A binary-outcome study over FEATURES with short in-process timeouts."""
    raw: dict[str, Any] = {
        "name": name,
        "model": model,
        "features": FEATURES,
        "outcome": {"kind": "binary", "column": "died_5y"},
        "training": {"lr": 0.05, "local_epochs": 2, "batch_size": 32, "seed": 4},
        "rounds": 3,
        "min_nodes": 2,
        "round_timeout_s": 0.5,
        "start_timeout_s": 1,
    }
    raw.update(over)
    return parse_ml_spec(raw)


def binary_site(path: Path, n: int, shift: list[float], intercept: float, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES))) + np.asarray(shift)
    y = (rng.random(n) < 1 / (1 + np.exp(-(intercept + x @ COEF)))).astype(int)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE ml_features (row_key TEXT, age_z, tumour_size_z, crp_z, died_5y)")
    conn.executemany(
        "INSERT INTO ml_features VALUES (?,?,?,?,?)",
        [(f"{path.stem}-{i}", *map(float, x[i]), int(y[i])) for i in range(n)],
    )
    conn.commit()
    conn.close()
    return path


def survival_site(path: Path, n: int, seed: int) -> Path:
    """Exponential event times with a covariate effect and uniform censoring (days)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES)))
    rate = np.exp(-7.5 + x @ COEF)
    event_time = rng.exponential(1 / rate)
    censor_time = rng.uniform(200, 3000, size=n)
    time = np.minimum(event_time, censor_time)
    event = (event_time <= censor_time).astype(int)
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE ml_features (row_key TEXT, age_z, tumour_size_z, crp_z, followup_days, died)"
    )
    conn.executemany(
        "INSERT INTO ml_features VALUES (?,?,?,?,?,?)",
        [(f"{path.stem}-{i}", *map(float, x[i]), float(time[i]), int(event[i])) for i in range(n)],
    )
    conn.commit()
    conn.close()
    return path
