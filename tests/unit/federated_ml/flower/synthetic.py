"""Small synthetic sites for the unit tests (non-IID: shifted case mix)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

FEATURES = ["age_z", "tumour_size_z", "crp_z"]
COEF = np.array([1.0, 1.2, -0.7])


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
