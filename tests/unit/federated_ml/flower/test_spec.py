from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from federated_ml.flower.spec import (
    MLStudySpec,
    SurvivalOutcome,
    load_ml_spec,
    loads_ml_spec,
    parse_ml_spec,
    spec_from_json,
)
from shared_cdm.errors import InvalidInput


def base() -> dict[str, Any]:
    return {
        "name": "lung 5-year survival",
        "model": {"kind": "discrete_survival", "hidden": [8]},
        "features": ["age_z", "stage"],
        "outcome": {
            "kind": "survival",
            "time_column": "followup_days",
            "event_column": "died",
            "horizon": 1826,
            "intervals": 5,
        },
        "training": {"lr": 0.01, "local_epochs": 3, "batch_size": 16, "proximal_mu": 0.05},
        "strategy": "fedprox",
        "rounds": 10,
        "min_nodes": 2,
        "round_timeout_s": 60,
    }


def test_yaml_and_json_give_the_same_spec(tmp_path: Path) -> None:
    yaml_text = """
name: lung 5-year survival
model: {kind: discrete_survival, hidden: [8]}
features: [age_z, stage]
outcome: {kind: survival, time_column: followup_days, event_column: died, horizon: 1826}
training: {lr: 0.01, local_epochs: 3, batch_size: 16, proximal_mu: 0.05}
strategy: fedprox
rounds: 10
round_timeout_s: 60
"""
    from_yaml = loads_ml_spec(yaml_text)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(base()))
    from_json = load_ml_spec(path)
    assert from_yaml == from_json
    assert isinstance(from_json.outcome, SurvivalOutcome)
    assert from_json.outcome.intervals == 5
    assert spec_from_json(from_json.to_json()) == from_json


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"strategy": "fedavg"}, "proximal_mu is used only by strategy fedprox"),
        ({"model": {"kind": "logistic"}}, "discrete_survival goes with outcome kind survival"),
        ({"model": {"kind": "mlp"}}, "needs at least one hidden layer"),
        ({"features": ["age_z", "age_z"]}, "listed more than once"),
        ({"features": ["age_z", "died"]}, "also listed as a feature"),
        ({"features": ["age z"]}, "features.0"),
        ({"rounds": 0}, "rounds"),
        ({"surprise": 1}, "surprise"),
        ({"outcome": {"kind": "binary"}}, "outcome.binary.column"),
    ],
)
def test_bad_specs_are_refused_with_the_field_named(change: dict[str, Any], message: str) -> None:
    raw = base() | change
    with pytest.raises(InvalidInput) as err:
        parse_ml_spec(raw)
    assert message in str(err.value)


def test_fedprox_without_mu_is_refused() -> None:
    raw = base()
    raw["training"] = {"lr": 0.01}
    with pytest.raises(InvalidInput, match=r"fedprox needs training\.proximal_mu"):
        parse_ml_spec(raw)


def test_several_problems_are_reported_together() -> None:
    raw = base() | {"rounds": -1, "min_nodes": 0}
    with pytest.raises(InvalidInput) as err:
        parse_ml_spec(raw)
    assert "rounds" in str(err.value) and "min_nodes" in str(err.value)


@pytest.mark.parametrize("text", ["[1, 2]", "name: [unclosed", ""])
def test_text_that_is_not_a_spec_gives_an_error(text: str) -> None:
    with pytest.raises(InvalidInput):
        loads_ml_spec(text)


def test_missing_file_is_an_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read"):
        load_ml_spec(tmp_path / "nope.yaml")


def test_spec_is_immutable() -> None:
    spec = parse_ml_spec(base())
    assert isinstance(spec, MLStudySpec)
    with pytest.raises(ValueError):
        spec.rounds = 3
