from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_ssh_private_key, load_ssh_public_key
from flwr.common.config import validate_config

from federated_ml.flower.app_bundle import APP_MODULE, SERVER_MODULE, write_app_bundle
from federated_ml.flower.deploy import descendants, flower_env, make_node_keys, node_config_arg
from federated_ml.flower.features import (
    SqliteFeatureSource,
    held_out_mask,
    needed_columns,
    source_from_node_config,
    split_site_rows,
)
from federated_ml.flower.metrics import RoundRecord, RunResult, SiteMetrics, SqliteMetricsSink
from federated_ml.flower.spec import parse_ml_spec, spec_from_json
from shared_cdm.errors import InvalidInput, NotFound

SPEC = parse_ml_spec(
    {
        "name": "Lung 5y",
        "model": {"kind": "logistic"},
        "features": ["age_z", "ecog"],
        "outcome": {"kind": "binary", "column": "died_5y"},
    }
)


def table(path: Path, rows: list[tuple[object, ...]]) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE ml_features (row_key TEXT, age_z, ecog, died_5y, extra)")
    conn.executemany("INSERT INTO ml_features VALUES (?,?,?,?,?)", rows)
    conn.commit()
    conn.close()
    return path


def test_malformed_rows_are_skipped_and_counted(tmp_path: Path) -> None:
    db = table(
        tmp_path / "s.sqlite",
        [
            ("a", 0.5, 1, 0, "x"),
            ("b", "n/a", 1, 1, "x"),  # not a number
            ("c", 0.1, None, 1, "x"),  # missing
            ("d", "1.5", 2, 1, "x"),  # numeric text is fine
            ("e", 0.2, 0, 2, "x"),  # outcome not 0/1
            ("f", float("inf"), 0, 0, "x"),
        ],
    )
    rows = SqliteFeatureSource(db).load(needed_columns(SPEC))
    assert rows.keys == ["a", "d", "e"]
    assert rows.skipped == 3
    data = split_site_rows(SPEC, rows)
    assert data.skipped == 4
    assert len(data.x_train) + len(data.x_held_out) == 2
    assert sorted(np.concatenate([data.x_train[:, 0], data.x_held_out[:, 0]])) == [0.5, 1.5]


def test_missing_table_column_or_file_is_named(tmp_path: Path) -> None:
    db = table(tmp_path / "s.sqlite", [("a", 0.5, 1, 0, "x")])
    with pytest.raises(InvalidInput, match="lacks column"):
        SqliteFeatureSource(db).load(["age_z", "stage"])
    with pytest.raises(NotFound, match="not found"):
        SqliteFeatureSource(db, table="other").load(["age_z"])
    with pytest.raises(NotFound, match="does not exist"):
        SqliteFeatureSource(tmp_path / "none.sqlite").load(["age_z"])
    with pytest.raises(InvalidInput, match="feature-db"):
        source_from_node_config({})


def test_held_out_split_is_stable_and_near_the_fraction() -> None:
    keys = [f"p{i}" for i in range(4000)]
    mask = held_out_mask(keys, 0.25, seed=3)
    assert abs(mask.mean() - 0.25) < 0.03
    # the same key lands on the same side whatever else is in the table
    assert held_out_mask(keys[::-1], 0.25, seed=3).tolist() == mask[::-1].tolist()
    assert held_out_mask(keys, 0.25, seed=4).tolist() != mask.tolist()


def test_app_bundle_is_a_valid_flower_app(tmp_path: Path) -> None:
    app = write_app_bundle(
        tmp_path / "app",
        SPEC,
        results_db=tmp_path / "m.db",
        results_dir=tmp_path / "out",
        model_dir=tmp_path / "models",
    )
    config = tomllib.loads((app / "pyproject.toml").read_text())
    ok, errors, _ = validate_config(config, check_module=False)
    assert ok, errors
    assert config["tool"]["flwr"]["app"]["components"]["clientapp"] == f"{APP_MODULE}:clientapp"
    assert spec_from_json(config["tool"]["flwr"]["app"]["config"]["spec-json"]) == SPEC
    assert config["tool"]["flwr"]["app"]["components"]["serverapp"] == f"{SERVER_MODULE}:serverapp"
    # A ClientApp process imports only the client side (one process per message).
    assert "server_app" not in (app / f"{APP_MODULE}.py").read_text()
    assert (app / f"{SERVER_MODULE}.py").exists()


def test_metrics_sink_keeps_rounds_and_result(tmp_path: Path) -> None:
    sink = SqliteMetricsSink(tmp_path / "m.db")
    record = RoundRecord(
        server_round=1,
        seconds=2.5,
        sites_asked=["a", "b"],
        sites_replied=["a"],
        sites_failed={"b": "no reply before the round timeout"},
        train_loss=0.6,
        eval_model_round=0,
        eval_loss=0.7,
        eval_auc_weighted=0.5,
        eval_auc_pooled=0.5,
        site_metrics=[SiteMetrics("a", "train", 1, 10, 0.6)],
    )
    sink.record_round("run-1", record)
    sink.record_round("run-1", record)  # writing a round twice is harmless
    result = RunResult(
        "run-1", "s", "completed", "", 1, ["a"], {"b": "x"}, None, None, 0.5, 0.5, [2.5]
    )
    sink.record_result(result)
    conn = sqlite3.connect(tmp_path / "m.db")
    assert conn.execute("SELECT COUNT(*) FROM ml_round").fetchone() == (1,)
    assert conn.execute("SELECT site, n FROM ml_site_metric").fetchall() == [("a", 10)]
    assert conn.execute("SELECT status FROM ml_run").fetchone() == ("completed",)


def test_node_keys_are_what_flower_reads(tmp_path: Path) -> None:
    keys = make_node_keys(tmp_path, "site-a")
    private = load_ssh_private_key(keys.private_key.read_bytes(), None)
    public = load_ssh_public_key(keys.public_key.read_bytes())
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.curve.name == "secp384r1"
    assert keys.private_key.stat().st_mode & 0o077 == 0


def testnode_config_argument_and_environment(tmp_path: Path) -> None:
    arg = node_config_arg({"feature-db": "/data/a b.sqlite", "rows": 3})
    assert arg == 'feature-db="/data/a b.sqlite" rows=3'
    with pytest.raises(InvalidInput):
        node_config_arg({"bad key": "x"})
    env = flower_env(tmp_path)
    assert env["FLWR_TELEMETRY_ENABLED"] == "0"
    assert env["FLWR_DISABLE_UPDATE_CHECK"] == "1"
    assert env["FLWR_HOME"] == str(tmp_path)


def test_descendants_finds_grandchildren() -> None:
    sleeper = "import time; time.sleep(30)"
    code = (
        "import subprocess, sys, time; "
        f"subprocess.Popen([sys.executable, '-c', {sleeper!r}]); time.sleep(30)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code])
    found: list[int] = []
    try:
        deadline = time.monotonic() + 20
        while not found and time.monotonic() < deadline:
            found = descendants(parent.pid)
            time.sleep(0.1)
        assert len(found) == 1
    finally:
        for pid in found:
            os.kill(pid, signal.SIGKILL)
        parent.kill()
        parent.wait()


def test_a_long_study_name_still_gives_a_flower_app_name_of_32_characters_at_most(
    tmp_path: Path,
) -> None:
    spec = SPEC.model_copy(update={"name": "Five-year survival of resected lung adenocarcinoma"})
    app = write_app_bundle(
        tmp_path / "app",
        spec,
        results_db=tmp_path / "m.db",
        results_dir=tmp_path / "out",
        model_dir=tmp_path / "models",
    )
    name = tomllib.loads((app / "pyproject.toml").read_text())["project"]["name"]
    assert name == "oncofed-ml-five-year-survival-of"
    assert len(name) <= 32
