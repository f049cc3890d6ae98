"""The `flower` analysis: an ML study's three rounds as a pure step()."""

from __future__ import annotations

from typing import Any

import pytest

from federated_ml.analyses import Finished, NextRound, analysis_for
from federated_ml.analyses.base import parse_spec
from federated_ml.flower.study import (
    MODEL,
    PHASE,
    PUBLIC_KEY,
    RESULT_STATE,
    RUN_ID,
    SUPERLINK,
)
from shared_cdm.errors import InvalidInput

KEY = "ecdsa-sha2-nistp384 AAAA"


def spec(**ml: Any) -> Any:
    block = {
        "name": "s",
        "model": {"kind": "logistic"},
        "features": ["age"],
        "outcome": {"kind": "binary", "column": "died"},
        "min_nodes": 2,
        **ml,
    }
    return parse_spec({"analysis": "flower", "dataset": "default", "ml": block})


def test_validate_names_ml_problems() -> None:
    flower = analysis_for("flower")
    flower.validate(spec())
    with pytest.raises(InvalidInput, match="ml: invalid ML study spec: rounds"):
        flower.validate(spec(rounds=0))
    with pytest.raises(InvalidInput, match="needs an `ml` block"):
        flower.validate(parse_spec({"analysis": "flower"}))
    with pytest.raises(InvalidInput, match=r"ml\.features, not variables"):
        flower.validate(parse_spec({**spec().model_dump(), "variables": ["age"]}))


def test_three_rounds_join_train_release() -> None:
    flower = analysis_for("flower")
    s = spec()
    first = flower.first_round(s)
    assert first.params == {PHASE: "join"}
    joined = {"A": {PUBLIC_KEY: KEY + "A"}, "B": {PUBLIC_KEY: KEY + "B"}}
    state = {**first.state, RESULT_STATE: {SUPERLINK: "10.0.0.1:9093", RUN_ID: 5}}
    train = flower.step(s, state, joined)
    assert isinstance(train, NextRound)
    assert train.params == {PHASE: "train", SUPERLINK: "10.0.0.1:9093", RUN_ID: 5}
    assert train.state["keys"] == {"A": KEY + "A", "B": KEY + "B"}
    with pytest.raises(InvalidInput, match="no result yet"):
        flower.step(s, train.state, {"A": {}, "B": {}})
    result = {"status": "completed", "model_version": "sha256:ab", "rounds_completed": 3}
    done_state = {**train.state, RESULT_STATE: {**state[RESULT_STATE], "result": result}}
    done_state[RESULT_STATE]["weights"] = {"w": {"shape": [1], "values": [0.5]}}
    release = flower.step(s, done_state, {"A": {}, "B": {}})
    assert isinstance(release, NextRound)
    assert release.params[MODEL]["version"] == "sha256:ab"
    final = flower.step(s, release.state, {"A": {"model_stored": True}, "B": {}})
    assert isinstance(final, Finished)
    assert final.result["model_version"] == "sha256:ab"
    assert final.result["sites_holding_model"] == ["A"]
    assert final.result["rounds_completed"] == 3


def test_join_errors() -> None:
    flower = analysis_for("flower")
    s = spec()
    ok = {RESULT_STATE: {SUPERLINK: "h:1"}, PHASE: "join"}
    with pytest.raises(InvalidInput, match="sent no SuperNode public key"):
        flower.step(s, ok, {"A": {PUBLIC_KEY: KEY}, "B": {}})
    with pytest.raises(InvalidInput, match="min_nodes = 2"):
        flower.step(s, ok, {"A": {PUBLIC_KEY: KEY}})
    failed = {RESULT_STATE: {"error": "the Flower run could not start: x"}, PHASE: "join"}
    with pytest.raises(InvalidInput, match="could not start: x"):
        flower.step(s, failed, {"A": {PUBLIC_KEY: KEY}, "B": {PUBLIC_KEY: KEY}})


def test_a_failed_run_releases_no_model() -> None:
    flower = analysis_for("flower")
    state = {PHASE: "train", RESULT_STATE: {"result": {"status": "failed"}, "weights": None}}
    release = flower.step(spec(), state, {"A": {}})
    assert isinstance(release, NextRound)
    assert MODEL not in release.params
