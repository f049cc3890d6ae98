"""Federated Cox over 3 sites of 10,000 rows against lifelines on the pooled rows.

Run with `make bench`. Prints wall times and the ratio (target: federated at most
3x pooled), for the default stratified model and for the pooled model that goes
through secure aggregation. Both fits are timed in the same run on the same rows.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter

from tests.unit.federated_ml.inprocess import Consortium

ROWS_PER_SITE = 10_000
COVARIATES = ["age", "sex", "stage", "ecog"]
TARGET_RATIO = 3.0

pytestmark = pytest.mark.benchmark


def _site(rng: np.random.Generator, n: int) -> pd.DataFrame:
    age = rng.normal(62, 10, n).round()
    sex = rng.integers(0, 2, n)
    stage = rng.integers(1, 5, n)
    ecog = rng.integers(0, 3, n)
    risk = 0.02 * (age - 62) + 0.3 * sex + 0.5 * stage + 0.2 * ecog
    event_time = rng.exponential(1000 * np.exp(-risk))
    censor_time = rng.uniform(0, 3000, n)
    return pd.DataFrame(
        {
            "time": np.ceil(np.minimum(event_time, censor_time)),
            "status": (event_time <= censor_time).astype(int),
            "age": age,
            "sex": sex,
            "stage": stage,
            "ecog": ecog,
        }
    )


@pytest.mark.parametrize("strata", ["site", None], ids=["stratified", "pooled"])
def test_federated_cox_within_3x_of_pooled_lifelines(strata: str | None) -> None:
    rng = np.random.default_rng(2026)
    sites = {f"site{i}": _site(rng, ROWS_PER_SITE) for i in range(3)}
    pooled = pd.concat([f.assign(site=s) for s, f in sites.items()], ignore_index=True)
    spec = {
        "analysis": "cox",
        "time": "time",
        "event": "status",
        "covariates": COVARIATES,
        "strata": strata,
    }

    started = time.perf_counter()
    fed = Consortium(sites).run(spec)
    federated_s = time.perf_counter() - started

    columns = ["time", "status", *COVARIATES] + (["site"] if strata else [])
    started = time.perf_counter()
    ref = CoxPHFitter().fit(
        pooled[columns],
        "time",
        "status",
        strata=["site"] if strata else None,
        fit_options={"precision": 1e-12},
    )
    pooled_s = time.perf_counter() - started

    ratio = federated_s / pooled_s
    print(
        f"\ncox {strata or 'pooled'}: 3 sites x {ROWS_PER_SITE} rows: "
        f"federated {federated_s:.2f} s, "
        f"pooled lifelines {pooled_s:.2f} s, ratio {ratio:.2f} (target <= {TARGET_RATIO})"
    )
    for c in COVARIATES:
        assert fed.result["coef"][c] == pytest.approx(ref.params_[c], rel=1e-6)
    assert ratio <= TARGET_RATIO
