"""Federated standardisation at the site: join sends n, sum and sum of squares of each
`standardise` feature over the training rows only (refused below the site's minimum
cell size, and recorded in the ledger); train scales the snapshot with the pooled
constants, so the ClientApp trains on (value - mean) / sd; release keeps the
constants in the model's spec and `predict` applies them."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
import torch
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.common.config import parse_config_args
from flwr.supercore.task_identity import TaskIdentity
from sqlalchemy.orm import Session

from edge_node.datasets import add_dataset
from edge_node.ledger.models import LedgerRelease
from edge_node.ledger.service import Ledger
from edge_node.ml import tasks as ml_tasks
from edge_node.ml.features import AnalysisDbFeatureSource, parse_ml_study
from edge_node.ml.models import MODEL_DIR, PREDICTIONS, load_model, predict_study, store_model
from edge_node.ml.tasks import SNAPSHOT, STANDARDISED, MlTasks, standardisation_sums
from edge_node.policy import Decision, Policy
from edge_node.runner import TaskRunner
from federated_ml.flower.client_app import SPEC_KEY, load_task
from federated_ml.flower.features import (
    SqliteFeatureSource,
    held_out_mask,
    needed_columns,
    pool_moments,
    source_from_node_config,
    split_site_rows,
)
from federated_ml.flower.models import build_model, model_version, state_to_json
from federated_ml.flower.study import MODEL, MOMENTS, PUBLIC_KEY, SCALING
from federated_ml.flower.training import predict_risk
from protocol.messages import ResultStatus, TaskAssignment
from shared_cdm.errors import InvalidInput, Refused
from tests.unit.edge_node.conftest import EdgeDbs
from tests.unit.edge_node.ml.test_ml_tasks import task as ml_task

STUDY = "study-9"
N = 60
AGES = [40 + (i * 17) % 45 for i in range(N)]
CSV = "pseudonym,age,grade,died\n" + "".join(
    f"P{i:02d},{AGES[i]},{i % 3},{(i * 7) % 2}\n" for i in range(N)
)
SEED, HELD_OUT = 5, 0.25


def spec() -> dict[str, Any]:
    return {
        "analysis": "flower",
        "dataset": "lung",
        "ml": {
            "name": "t",
            "model": {"kind": "logistic"},
            "features": ["age", "grade"],
            "standardise": ["age"],
            "outcome": {"kind": "binary", "column": "died"},
            "training": {"seed": SEED, "held_out_fraction": HELD_OUT},
        },
    }


def task(phase: str, **params: Any) -> TaskAssignment:
    return ml_task(phase, spec(), STUDY, **params)


def training_ages() -> np.ndarray:
    keys = [f"P{i:02d}" for i in range(N)]
    return np.asarray(AGES, dtype=float)[~held_out_mask(keys, HELD_OUT, SEED)]


@pytest.fixture
def site(edge_dbs: EdgeDbs, tmp_path: Path) -> EdgeDbs:
    csv = tmp_path / "lung.csv"
    csv.write_text(CSV, encoding="utf-8")
    add_dataset("lung", csv, analysis_engine=edge_dbs.analysis, registry=edge_dbs.registry)
    return edge_dbs


@pytest.fixture
def ml(site: EdgeDbs, tmp_path: Path) -> Iterator[MlTasks]:
    home = tmp_path / "home"
    tasks = MlTasks(
        site.analysis, site.registry, home, home / "ca.crt", ledger=Ledger(site.state, Policy(5))
    )
    yield tasks
    tasks.close()


def runner(site: EdgeDbs, ml: MlTasks, k: int = 5) -> TaskRunner:
    return TaskRunner.create(site.analysis, site.state, Policy(k, {"flower": Decision.AUTO}), ml=ml)


@pytest.fixture
def supernode_args(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The SuperNode is not under test here: a process that notes its arguments and waits."""
    args = tmp_path / "supernode-args.txt"
    script = tmp_path / "flower-supernode"
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {args}\nexec sleep 60\n")
    os.chmod(script, 0o755)
    monkeypatch.setattr(ml_tasks, "_bin", lambda name: script)
    return args


def node_config(args: Path) -> dict[str, Any]:
    argv = args.read_text(encoding="utf-8").splitlines()
    return parse_config_args([argv[argv.index("--node-config") + 1]])


def client_rows(config: dict[str, Any]) -> Any:
    """The rows the ClientApp trains and evaluates on, read as it reads them."""
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1
    ml = parse_ml_study(spec()).ml
    msg = Message(
        RecordDict({"config": ConfigRecord({SPEC_KEY: ml.to_json()})}),
        dst_node_id=1,
        message_type="train",
    )
    return load_task(msg, source_from_node_config(config)).data


def constants() -> dict[str, list[float]]:
    """Pooled with a second site's sums, as the hub would."""
    ours = training_ages()
    other = {"n": 50, "sum": 50 * 70.0, "sum_sq": 50 * (70.0**2 + 81.0)}
    sums = {"here": {"age": {"n": ours.size, "sum": ours.sum(), "sum_sq": (ours**2).sum()}}}
    pooled = pool_moments(parse_ml_study(spec()).ml, {**sums, "there": {"age": other}})
    return {"age": [pooled["age"].mean, pooled["age"].sd]}


def test_join_sends_sums_over_the_training_rows_only(
    site: EdgeDbs, ml: MlTasks, tmp_path: Path
) -> None:
    result = runner(site, ml).run(task("join"))
    assert result.status is ResultStatus.OK, result.message
    ages = training_ages()
    assert 0 < ages.size < N
    sums = result.payload[MOMENTS]
    assert set(sums) == {"age"} and result.payload[PUBLIC_KEY].startswith("ecdsa-")
    assert sums["age"]["n"] == ages.size
    assert sums["age"]["sum"] == pytest.approx(ages.sum(), rel=1e-12)
    assert sums["age"]["sum_sq"] == pytest.approx((ages**2).sum(), rel=1e-12)
    assert sums["age"]["sum"] != pytest.approx(float(sum(AGES)))  # held-out rows left out
    # The snapshot keeps the values as stored until the constants come.
    folder = tmp_path / "home" / "ml" / STUDY
    rows = SqliteFeatureSource(folder / SNAPSHOT).load(["age"])
    assert sorted(rows.columns["age"]) == sorted(map(float, AGES))
    assert not (folder / STANDARDISED).exists()
    # What left is in the disclosure ledger.
    with Session(site.state) as session:
        (entry,) = session.scalars(sa.select(LedgerRelease)).all()
    assert entry.released["standardisation_sums"] == json.loads(json.dumps(sums))


def test_a_site_below_its_minimum_cell_size_refuses(
    site: EdgeDbs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    n_train = training_ages().size
    ml = MlTasks(site.analysis, site.registry, home, home / "ca.crt", min_cell_size=n_train + 1)
    result = runner(site, ml, n_train + 1).run(task("join"))
    assert result.status is ResultStatus.REFUSED
    assert f"minimum cell size is {n_train + 1}" in result.message
    assert not (home / "ml" / STUDY / SNAPSHOT).exists()
    # The sums' own rule, which names what they would have released.
    study = parse_ml_study(spec()).ml
    rows = AnalysisDbFeatureSource(site.analysis, site.registry, parse_ml_study(spec()))
    split = split_site_rows(study, rows.load(needed_columns(study)))
    assert standardisation_sums(study, split, n_train)["age"]["n"] == n_train
    with pytest.raises(Refused, match=rf"standardising age would release sums over {n_train} "):
        standardisation_sums(study, split, n_train + 1)


def test_the_client_app_trains_on_the_pooled_standardisation(
    site: EdgeDbs, ml: MlTasks, tmp_path: Path, supernode_args: Path
) -> None:
    r = runner(site, ml)
    assert r.run(task("join")).status is ResultStatus.OK
    without = r.run(task("train", superlink="127.0.0.1:9"))
    assert without.status is ResultStatus.FAILED
    assert "carries no standardisation constants for age" in without.message
    scaling = constants()
    mean, sd = scaling["age"]
    for _attempt in range(2):  # a repeated train round scales the stored values once
        trained = r.run(task("train", superlink="127.0.0.1:9", **{SCALING: scaling}))
        assert trained.status is ResultStatus.OK, trained.message
        config = node_config(supernode_args)
        assert config["feature-db"] == str(tmp_path / "home" / "ml" / STUDY / STANDARDISED)
        data = client_rows(config)
        raw = split_site_rows(
            parse_ml_study(spec()).ml,
            SqliteFeatureSource(Path(config["feature-db"]).with_name(SNAPSHOT)).load(
                needed_columns(parse_ml_study(spec()).ml)
            ),
        )
        np.testing.assert_array_equal(data.x_train[:, 0], (raw.x_train[:, 0] - mean) / sd)
        np.testing.assert_array_equal(data.x_held_out[:, 0], (raw.x_held_out[:, 0] - mean) / sd)
        np.testing.assert_array_equal(data.x_train[:, 1], raw.x_train[:, 1])  # grade as stored
        assert sorted(raw.x_train[:, 0]) == sorted(training_ages())
        assert abs(data.x_train[:, 0].mean()) < 1.0 and data.x_train[:, 0].std() > 0.3
        ml.stop(STUDY)
    # The release deletes both copies of the rows.
    assert r.run(task("release")).payload == {"model_stored": False}
    folder = tmp_path / "home" / "ml" / STUDY
    assert not (folder / SNAPSHOT).exists() and not (folder / STANDARDISED).exists()


def test_release_keeps_the_constants_and_predict_applies_them(
    site: EdgeDbs, ml: MlTasks, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    r = runner(site, ml)
    assert r.run(task("join")).status is ResultStatus.OK
    model = build_model(parse_ml_study(spec()).ml, seed=3)
    with torch.no_grad():
        model.get_parameter("linear.weight").copy_(torch.tensor([[1.3, -0.4]]))
    state = model.state_dict()
    released = {MODEL: {"version": model_version(state), "weights": state_to_json(state)}}
    missing = r.run(task("release", **released))
    assert missing.status is ResultStatus.FAILED
    assert "no standardisation constants for age" in missing.message
    assert not (home / MODEL_DIR).exists()

    scaling = constants()
    done = r.run(task("release", **released, **{SCALING: scaling}))
    assert done.status is ResultStatus.OK, done.message
    assert not (home / "ml" / STUDY / SNAPSHOT).exists()
    document = json.loads((home / MODEL_DIR / f"{STUDY}.json").read_text(encoding="utf-8"))
    assert document["spec"]["ml"]["scaling"] == scaling
    assert document["spec"]["ml"]["standardise"] == []
    assert document["standardised_across_sites"] == ["age"]
    assert load_model(home, STUDY).study.ml.scaling == {"age": tuple(scaling["age"])}

    summary = predict_study(home, site.analysis, site.registry, STUDY)
    assert summary.scored == N
    mean, sd = scaling["age"]
    x = torch.tensor([[(AGES[i] - mean) / sd, float(i % 3)] for i in range(N)], dtype=torch.float32)
    want = dict(zip([f"P{i:02d}" for i in range(N)], predict_risk(model, x).tolist(), strict=True))
    with site.analysis.connect() as conn:
        stored = {row.pseudonym: row.score for row in conn.execute(sa.select(PREDICTIONS))}
    assert stored.keys() == want.keys()
    for key, score in want.items():
        assert stored[key] == pytest.approx(score, abs=1e-6)
    # The same weights applied to unscaled ages would score differently.
    raw_x = torch.tensor([[float(a), float(i % 3)] for i, a in enumerate(AGES)])
    assert not np.allclose(predict_risk(model, raw_x).numpy(), list(want.values()), atol=1e-3)


def test_a_model_without_its_constants_is_never_stored(tmp_path: Path) -> None:
    model = build_model(parse_ml_study(spec()).ml, seed=1)
    state = model.state_dict()
    with pytest.raises(InvalidInput, match="has no standardisation constants for age"):
        store_model(tmp_path, STUDY, model_version(state), spec(), state_to_json(state))
    with pytest.raises(InvalidInput, match="none for age"):
        store_model(
            tmp_path,
            STUDY,
            model_version(state),
            spec(),
            state_to_json(state),
            scaling={"grade": [1.0, 1.0]},
        )
    assert not (tmp_path / MODEL_DIR).exists()
