"""Federated standardisation (`ml.standardise`): each site's n, sum and sum of squares
over its training rows pool at the hub into exactly the mean and SD (n - 1) of the
concatenated training rows; the held-out rows stay out; a feature with SD 0 fails
the study by name (and the hub submits no Flower run for it); the constants go out
with the train and release rounds, are in the Flower run's spec and are recorded in
the result."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from federated_ml.analyses import Finished, NextRound, analysis_for
from federated_ml.analyses.base import parse_spec
from federated_ml.flower.features import (
    FeatureRows,
    SiteData,
    held_out_mask,
    needed_columns,
    split_site_rows,
    training_moments,
)
from federated_ml.flower.server_app import RUN_SPEC
from federated_ml.flower.spec import parse_ml_spec, resolve_standardisation, spec_from_json
from federated_ml.flower.study import (
    MODEL,
    MOMENTS,
    PHASE,
    PUBLIC_KEY,
    RESULT_STATE,
    RUN_ID,
    SCALING,
    STANDARDISATION,
    SUPERLINK,
    pooled_standardisation,
    scaling_params,
)
from hub.auth import UserView
from hub.bootstrap import Hub
from protocol.messages import ResultStatus
from shared_cdm.errors import InvalidInput
from tests.unit.hub import conftest as hub_conftest
from tests.unit.hub import test_hub_ml as hub_ml
from tests.unit.hub.test_hub_ml import answer, fake_run, tasks_for, users

KEY = "ecdsa-sha2-nistp384 AAAA"
# The hub's fixtures, for the tests at the end (they live beside the hub's tests).
clock, hub_db, flower_hub = hub_conftest.clock, hub_conftest.hub_db, hub_ml.ml_hub


def ml_block(**over: Any) -> dict[str, Any]:
    return {
        "name": "s",
        "model": {"kind": "logistic"},
        "features": ["age", "crp", "ecog"],
        "scaling": {"ecog": [1, 2]},
        "standardise": ["age", "crp"],
        "outcome": {"kind": "binary", "column": "died"},
        "training": {"seed": 11, "held_out_fraction": 0.3},
        "min_nodes": 2,
        **over,
    }


def site_rows(seed: int, n: int, age_mean: float, *, crp: float | None = None) -> FeatureRows:
    rng = np.random.default_rng(seed)
    columns = {
        "age": rng.normal(age_mean, 9.0, n).round(),
        "crp": np.full(n, crp) if crp is not None else rng.gamma(2.0, 8.0, n).round(1),
        "ecog": rng.integers(0, 4, n).astype(float),
        "died": rng.integers(0, 2, n).astype(float),
    }
    return FeatureRows([f"S{seed}-{i}" for i in range(n)], columns, 0)


def join_payloads(ml_raw: dict[str, Any], rows: dict[str, FeatureRows]) -> dict[str, Any]:
    """What each site answers at join, through JSON as over the wire."""
    ml = parse_ml_spec(ml_raw)
    out = {}
    for site, r in rows.items():
        sums = training_moments(ml, split_site_rows(ml, r))
        out[site] = json.loads(json.dumps({PUBLIC_KEY: KEY + site, MOMENTS: sums}))
    return out


def joined_state() -> dict[str, Any]:
    return {PHASE: "join", RESULT_STATE: {SUPERLINK: "10.0.0.1:9093", RUN_ID: 5}}


def test_the_spec_names_standardise_problems() -> None:
    assert parse_ml_spec(ml_block()).standardise == ("age", "crp")
    cases = {
        "standardise names weight, which are not features": ["age", "weight"],
        "standardise lists a feature more than once": ["age", "age"],
        "ecog has fixed constants in scaling and is also in standardise": ["ecog"],
    }
    for message, names in cases.items():
        with pytest.raises(InvalidInput, match=message):
            parse_ml_spec(ml_block(standardise=names))
    with pytest.raises(InvalidInput, match="standardise names stage, which is categorical"):
        parse_ml_spec(
            ml_block(
                features=["age", "stage"],
                categorical={"stage": ["I", "II"]},
                scaling={},
                standardise=["stage"],
            )
        )
    with pytest.raises(InvalidInput, match=r"standardise\.0: String should match"):
        parse_ml_spec(ml_block(standardise=["not a column"]))


def test_three_sites_pool_to_the_mean_and_sd_of_their_training_rows() -> None:
    raw = ml_block()
    rows = {"A": site_rows(1, 240, 60.0), "B": site_rows(2, 170, 68.0), "C": site_rows(3, 95, 55)}
    ml = parse_ml_spec(raw)
    flower = analysis_for("flower")
    spec = parse_spec({"analysis": "flower", "dataset": "default", "ml": raw})
    train = flower.step(spec, joined_state(), join_payloads(raw, rows))
    assert isinstance(train, NextRound)
    constants = train.params[SCALING]
    assert set(constants) == {"age", "crp"}
    for name in ("age", "crp"):
        training, every = [], []
        for r in rows.values():
            held_out = held_out_mask(r.keys, 0.3, 11)
            assert 0 < held_out.sum() < len(r.keys)
            training.append(r.columns[name][~held_out])
            every.append(r.columns[name])
        pooled = np.concatenate(training)
        mean, sd = constants[name]
        assert mean == pytest.approx(pooled.mean(), rel=1e-12)
        assert sd == pytest.approx(pooled.std(ddof=1), rel=1e-12)
        # The held-out rows are not in the constants.
        assert mean != pytest.approx(np.concatenate(every).mean(), rel=1e-9)
        assert train.state[STANDARDISATION][name] == {"n": pooled.size, "mean": mean, "sd": sd}
    # The spec the sites train with: the pooled constants in scaling, the fixed one kept.
    resolved = ml.with_standardisation(constants)
    assert resolved.standardise == ()
    assert resolved.scaling == {"ecog": (1.0, 2.0), **{k: tuple(v) for k, v in constants.items()}}
    assert needed_columns(resolved) == needed_columns(ml)


def test_the_constants_go_out_with_the_release_and_into_the_result() -> None:
    raw = ml_block()
    rows = {"A": site_rows(1, 120, 60.0), "B": site_rows(2, 110, 66.0)}
    flower = analysis_for("flower")
    spec = parse_spec({"analysis": "flower", "dataset": "default", "ml": raw})
    train = flower.step(spec, joined_state(), join_payloads(raw, rows))
    assert isinstance(train, NextRound)
    run = {
        **train.state[RESULT_STATE],
        "result": {"status": "completed", "model_version": "sha256:ab"},
        "weights": {"w": {"shape": [1], "values": [0.5]}},
    }
    release = flower.step(spec, {**train.state, RESULT_STATE: run}, {"A": {}, "B": {}})
    assert isinstance(release, NextRound)
    assert release.params[MODEL]["version"] == "sha256:ab"
    assert release.params[SCALING] == train.params[SCALING]
    final = flower.step(spec, release.state, {"A": {"model_stored": True}, "B": {}})
    assert isinstance(final, Finished)
    assert final.result["standardisation"] == train.state[STANDARDISATION]
    assert final.result["standardisation"]["age"]["n"] == sum(
        int((~held_out_mask(r.keys, 0.3, 11)).sum()) for r in rows.values()
    )


def test_a_feature_with_sd_zero_fails_the_study_by_name() -> None:
    raw = ml_block()
    rows = {"A": site_rows(1, 80, 60.0, crp=12.3), "B": site_rows(2, 60, 66.0, crp=12.3)}
    spec = parse_spec({"analysis": "flower", "dataset": "default", "ml": raw})
    with pytest.raises(InvalidInput, match=r"cannot standardise crp: .*\(12\.3\).*SD 0"):
        analysis_for("flower").step(spec, joined_state(), join_payloads(raw, rows))


def test_a_site_without_sums_or_with_bad_ones_is_named() -> None:
    raw = ml_block()
    payloads = join_payloads(raw, {"A": site_rows(1, 80, 60.0), "B": site_rows(2, 60, 66.0)})
    spec = parse_spec({"analysis": "flower", "dataset": "default", "ml": raw})
    flower = analysis_for("flower")
    missing = {**payloads, "B": {PUBLIC_KEY: KEY + "B"}}
    with pytest.raises(InvalidInput, match="site B sent no standardisation sums for age"):
        flower.step(spec, joined_state(), missing)
    bad = json.loads(json.dumps(payloads))
    bad["A"][MOMENTS]["crp"]["sum_sq"] = -1.0
    with pytest.raises(InvalidInput, match="site A sent malformed standardisation sums for crp"):
        flower.step(spec, joined_state(), bad)
    # One row in all: no SD.
    one = {
        site: {
            PUBLIC_KEY: KEY,
            MOMENTS: {n: {"n": i, "sum": 1.0, "sum_sq": 1.0} for n in ["age", "crp"]},
        }
        for i, site in enumerate("AB")
    }
    with pytest.raises(InvalidInput, match="cannot standardise age: 1 training row"):
        flower.step(spec, joined_state(), one)


def test_a_study_without_standardise_sends_no_constants() -> None:
    raw = ml_block(standardise=[])
    spec = parse_spec({"analysis": "flower", "dataset": "default", "ml": raw})
    payloads = {"A": {PUBLIC_KEY: KEY + "A"}, "B": {PUBLIC_KEY: KEY + "B"}}
    train = analysis_for("flower").step(spec, joined_state(), payloads)
    assert isinstance(train, NextRound)
    assert SCALING not in train.params and STANDARDISATION not in train.state


def test_training_moments_use_the_training_rows_only() -> None:
    ml = parse_ml_spec(ml_block())
    data: SiteData = split_site_rows(ml, site_rows(4, 200, 62.0))
    sums = training_moments(ml, data)
    age = data.x_train[:, 0]
    assert sums["age"] == {
        "n": len(age),
        "sum": pytest.approx(age.sum()),
        "sum_sq": pytest.approx((age**2).sum()),
    }
    assert len(age) + len(data.x_held_out) == 200 and len(data.x_held_out) > 0


def test_constants_must_fit_the_spec() -> None:
    raw = ml_block()
    good = {"age": [60.0, 9.0], "crp": [16.0, 11.0]}
    assert resolve_standardisation(raw, good)["scaling"]["crp"] == [16.0, 11.0]
    with pytest.raises(InvalidInput, match="none for crp"):
        resolve_standardisation(raw, {"age": [60.0, 9.0]})
    with pytest.raises(InvalidInput, match="ecog not in standardise"):
        resolve_standardisation(raw, {**good, "ecog": [1.0, 1.0]})
    with pytest.raises(InvalidInput, match=r"constants of age are not \[mean, sd > 0\]"):
        resolve_standardisation(raw, {**good, "age": [60.0, 0.0]})
    with pytest.raises(InvalidInput, match=r"constants of crp are not \[mean, sd > 0\]"):
        resolve_standardisation(raw, {**good, "crp": [float("nan"), 1.0]})


# --- at the hub: the run is submitted with the pooled constants, or not at all ---


class FakeSuperLink:
    """Stands in for the SuperLink's `flwr` commands; remembers the apps submitted."""

    port = 9093

    def __init__(self) -> None:
        self.apps: list[Path] = []

    def register_public_key(self, site: str, path: Path) -> int:
        return {"A": 1, "B": 2}[site]

    def submit(self, app: Path) -> int:
        self.apps.append(app)
        return 11

    def stop(self) -> None:
        pass


def hub_join(hub: Hub, crp: float | None) -> tuple[str, UserView, dict[str, Any]]:
    owner, coordinator = users(hub)
    raw = ml_block(round_timeout_s=0.5, start_timeout_s=1)
    rows = {"A": site_rows(1, 80, 60.0, crp=crp), "B": site_rows(2, 70, 66.0, crp=crp)}
    study = hub.studies.submit(
        owner, {"analysis": "flower", "dataset": "default", "ml": raw}, sites=["A", "B", "C"]
    )
    hub.studies.approve(coordinator, study.id)
    payloads = join_payloads(raw, rows)
    answer(hub, "A", payloads["A"], ResultStatus.OK)
    answer(hub, "B", payloads["B"], ResultStatus.OK)
    answer(hub, "C", {}, ResultStatus.REFUSED)
    return study.id, owner, payloads


def test_the_hub_trains_with_the_pooled_constants(
    flower_hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert flower_hub.flower is not None
    superlink = FakeSuperLink()
    monkeypatch.setattr(flower_hub.flower, "_deployment", superlink)
    monkeypatch.setattr(flower_hub.flower, "_require", lambda: superlink)
    _, _, payloads = hub_join(flower_hub, None)
    flower_hub.studies.sweep()
    (train,) = tasks_for(flower_hub, "A")
    params = train.spec["round_params"]
    assert params[PHASE] == "train"
    ml = parse_ml_spec(ml_block())
    want = scaling_params(pooled_standardisation(ml, payloads))
    assert params[SCALING] == want
    # The Flower run's spec (which the saved model file keeps) holds the same constants.
    (app,) = superlink.apps
    config = tomllib.loads((app / "pyproject.toml").read_text(encoding="utf-8"))
    run_spec = spec_from_json(config["tool"]["flwr"]["app"]["config"][RUN_SPEC])
    assert run_spec.standardise == ()
    assert run_spec.scaling == {"ecog": (1.0, 2.0), **{k: tuple(v) for k, v in want.items()}}


def test_the_hub_fails_a_study_whose_feature_has_sd_zero_and_starts_no_run(
    flower_hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert flower_hub.flower is not None
    submitted = fake_run(flower_hub.flower, monkeypatch)
    study_id, owner, _ = hub_join(flower_hub, 12.3)
    flower_hub.studies.sweep()
    assert submitted == []
    study = flower_hub.studies.get(owner, study_id)
    assert study.status == "failed"
    assert study.error is not None and "cannot standardise crp" in study.error
    assert "SD 0" in study.error
