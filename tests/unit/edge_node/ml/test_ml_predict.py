"""`oncofed-edge predict`: a released model is stored only when its weights hash to its
version, and checked again before use; the cohort's current patients are scored and
the scores stored per pseudonym in the analysis database; only permitted roles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
import torch
from typer.testing import CliRunner

from edge_node.cli import app
from edge_node.datasets import add_dataset
from edge_node.ml.features import parse_ml_study
from edge_node.ml.models import (
    MODEL_DIR,
    PREDICTIONS,
    load_model,
    predict_study,
    store_model,
)
from edge_node.settings import load_settings
from edge_node.store.database import open_analysis_db, open_state_db
from edge_node.store.datasets import DatasetRegistry
from federated_ml.flower.models import build_model, model_version, state_to_json
from federated_ml.flower.training import predict_risk
from shared_cdm.errors import InvalidInput, NotFound
from tests.unit.edge_node.conftest import EdgeDbs

CSV = """pseudonym,age,stage,died_5y
A1,61,I,0
A2,70,III,1
A3,,II,0
A4,55,II,
A5,66,II,1
A6,59,III,0
"""


def study_spec() -> dict[str, Any]:
    return {
        "analysis": "flower",
        "dataset": "lung",
        "ml": {
            "name": "5y death",
            "model": {"kind": "logistic"},
            "features": ["age", "stage"],
            "categorical": {"stage": ["I", "II", "III"]},
            "scaling": {"age": [60, 10]},
            "outcome": {"kind": "binary", "column": "died_5y"},
        },
    }


def released(seed: int = 5) -> tuple[str, dict[str, Any], dict[str, torch.Tensor]]:
    model = build_model(parse_ml_study(study_spec()).ml, seed=seed)
    with torch.no_grad():
        model.linear.weight.copy_(torch.tensor([[0.8, 0.5, 1.2]]))
    state = model.state_dict()
    return model_version(state), state_to_json(state), state


def expected_scores(state: dict[str, torch.Tensor]) -> dict[str, float]:
    model = build_model(parse_ml_study(study_spec()).ml)
    model.load_state_dict(state)
    rows = {"A1": [0.1, 0, 0], "A2": [1.0, 0, 1], "A4": [-0.5, 1, 0], "A5": [0.6, 1, 0]}
    rows["A6"] = [-0.1, 0, 1]
    x = torch.tensor(list(rows.values()), dtype=torch.float32)
    return dict(zip(rows, predict_risk(model, x).tolist(), strict=True))


def test_predict_scores_the_cohort_and_stores_per_pseudonym(
    edge_dbs: EdgeDbs, tmp_path: Path
) -> None:
    csv = tmp_path / "lung.csv"
    csv.write_text(CSV, encoding="utf-8")
    add_dataset("lung", csv, analysis_engine=edge_dbs.analysis, registry=edge_dbs.registry)
    version, weights, state = released()
    store_model(tmp_path, "study-1", version, study_spec(), weights)
    summary = predict_study(tmp_path, edge_dbs.analysis, edge_dbs.registry, "study-1")
    # A3 has no age; A4 has no outcome, which scoring does not need.
    assert summary.scored == 5 and summary.skipped == 1
    assert summary.model_version == version
    want = expected_scores(state)
    with edge_dbs.analysis.connect() as conn:
        stored = {r.pseudonym: r for r in conn.execute(sa.select(PREDICTIONS))}
    assert set(stored) == set(want)
    for key, score in want.items():
        assert stored[key].score == pytest.approx(score, abs=1e-6)
        assert stored[key].study_id == "study-1" and stored[key].model_version == version
    assert sum(summary.histogram) == 5
    assert summary.score_min == pytest.approx(min(want.values()), abs=1e-6)
    # Running it again replaces this version's scores rather than adding rows.
    predict_study(tmp_path, edge_dbs.analysis, edge_dbs.registry, "study-1")
    with edge_dbs.analysis.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(PREDICTIONS)).scalar() == 5


def test_a_model_whose_weights_do_not_match_its_version_is_refused(tmp_path: Path) -> None:
    version, weights, _ = released()
    other, _, _ = released(seed=6)
    with pytest.raises(InvalidInput, match="does not match its version"):
        store_model(tmp_path, "study-1", "sha256:" + "0" * 64, study_spec(), weights)
    store_model(tmp_path, "study-1", version, study_spec(), weights)
    # Tampered on disk after it was stored: refused at use.
    path = tmp_path / MODEL_DIR / "study-1.json"
    doc = json.loads(path.read_text())
    doc["weights"]["linear.bias"]["values"] = [3.0]
    path.write_text(json.dumps(doc))
    with pytest.raises(InvalidInput, match="does not match its version"):
        load_model(tmp_path, "study-1")
    with pytest.raises(NotFound, match="no released model"):
        load_model(tmp_path, "study-2")
    assert other != version


def test_predict_command_needs_a_data_role(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    monkeypatch.setenv("ONCOFED_EDGE_STATE_DB_URL", sqlite_url)
    monkeypatch.setenv("ONCOFED_EDGE_ANALYSIS_DB_URL", sqlite_url)
    monkeypatch.delenv("ONCOFED_EDGE_TOKEN", raising=False)
    monkeypatch.delenv("ONCOFED_EDGE_TOKEN_FILE", raising=False)
    home = tmp_path / "edge"
    token_file = tmp_path / "operator.token"
    init = ["init", "--home", str(home), "--site", "site-a", "--hub", "127.0.0.1:50051"]
    done = runner.invoke(app, [*init, "--operator", "olga", "--token-file", str(token_file)])
    assert done.exit_code == 0, done.output
    operator = ["--token-file", str(token_file)]
    broker = runner.invoke(
        app, ["users", "add", "bob", "--role", "honest_broker", "--home", str(home), *operator]
    )
    assert broker.exit_code == 0, broker.output
    broker_token = broker.stdout.strip().splitlines()[-1].split()[-1]
    csv = tmp_path / "lung.csv"
    csv.write_text(CSV, encoding="utf-8")
    settings = load_settings(home)
    analysis, state = open_analysis_db(sqlite_url), open_state_db(sqlite_url)
    add_dataset("lung", csv, analysis_engine=analysis, registry=DatasetRegistry(state))
    version, weights, _ = released()
    store_model(settings.home, "study-1", version, study_spec(), weights)

    refused = runner.invoke(
        app, ["predict", "study-1", "--home", str(home), "--token", broker_token]
    )
    assert refused.exit_code != 0
    with analysis.connect() as conn:
        assert not sa.inspect(conn).has_table("ml_prediction")

    ok = runner.invoke(app, ["predict", "study-1", "--json", "--home", str(home), *operator])
    assert ok.exit_code == 0, ok.output
    summary = json.loads(ok.stdout)
    assert summary["scored"] == 5 and summary["model_version"] == version
    with analysis.connect() as conn:
        rows = conn.execute(sa.select(PREDICTIONS.c.pseudonym)).scalars().all()
    assert sorted(rows) == ["A1", "A2", "A4", "A5", "A6"]
    assert np.isfinite(summary["score_mean"])
    analysis.dispose()
    state.dispose()
