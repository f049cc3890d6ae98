"""A Flower Deployment Engine on loopback for tests and benchmarks: real processes.

A SuperLink with TLS (certificates from the consortium CA) and SuperNode
authentication, three registered SuperNodes holding non-IID synthetic sites,
and one SuperNode whose key was never registered.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from federated_ml.flower.app_bundle import write_app_bundle
from federated_ml.flower.deploy import FlowerDeployment, NodeKeys, TlsFiles, make_node_keys
from federated_ml.flower.features import SqliteFeatureSource, needed_columns, split_site_rows
from federated_ml.flower.spec import MLStudySpec, parse_ml_spec
from federated_ml.flower.training import make_batchable
from ops.ca import init_ca, issue

FEATURES = ["age_z", "tumour_size_z", "crp_z", "ecog"]
COEF = np.array([0.9, 1.3, -0.8, 0.6])
# Sites differ in size, case mix (feature means) and baseline risk: non-IID.
SITES: dict[str, tuple[int, list[float], float]] = {
    "site-a": (520, [0.8, 0.0, 0.0, 0.3], -0.8),
    "site-b": (380, [-0.5, 0.6, 0.4, 0.0], -0.2),
    "site-c": (260, [0.0, -0.7, -0.5, 0.8], 0.3),
}


def write_site(path: Path, n: int, shift: list[float], intercept: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES))) + np.asarray(shift)
    x[:, 3] = np.clip(np.round(x[:, 3] + 1.0), 0, 4)  # ECOG is an ordinal 0..4
    p = 1 / (1 + np.exp(-(intercept + x @ COEF)))
    y = (rng.random(n) < p).astype(int)
    conn = sqlite3.connect(path)
    cols = ", ".join(f"{f} REAL" for f in FEATURES)
    conn.execute(f"CREATE TABLE ml_features (row_key TEXT, {cols}, died_5y INTEGER)")
    conn.executemany(
        f"INSERT INTO ml_features VALUES (?, {', '.join('?' * len(FEATURES))}, ?)",
        [(f"{path.stem}-{i}", *map(float, x[i]), int(y[i])) for i in range(n)],
    )
    # A malformed row: it is skipped and counted, the site still trains.
    conn.execute("INSERT INTO ml_features VALUES ('bad', 'n/a', 1, 1, 1, 0)")
    conn.commit()
    conn.close()


def study(name: str, **overrides: Any) -> MLStudySpec:
    raw: dict[str, Any] = {
        "name": name,
        "model": {"kind": "logistic"},
        "features": FEATURES,
        "outcome": {"kind": "binary", "column": "died_5y"},
        "training": {"lr": 0.05, "local_epochs": 3, "batch_size": 32, "seed": 11},
        "strategy": "fedavg",
        "rounds": 2,
        "min_nodes": 2,
        # Generous: on two shared, busy cores one exchange has taken up to 30 s.
        "round_timeout_s": 45,
        "start_timeout_s": 60,
    }
    raw.update(overrides)
    return parse_ml_spec(raw)


@dataclass
class Federation:
    dep: FlowerDeployment
    work: Path
    site_dbs: dict[str, Path]
    keys: dict[str, NodeKeys]


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    work = tmp_path_factory.mktemp("flower")
    ca_dir = work / "ca"
    init_ca(ca_dir)
    link = issue(ca_dir, "superlink", "hub")
    tls = TlsFiles(ca_dir / "ca.crt", link.cert, link.key)
    site_dbs = {}
    for i, (site, (n, shift, intercept)) in enumerate(SITES.items()):
        site_dbs[site] = work / "data" / f"{site}.sqlite"
        site_dbs[site].parent.mkdir(exist_ok=True)
        write_site(site_dbs[site], n, shift, intercept, seed=100 + i)
    with FlowerDeployment(work / "run", tls) as dep:
        dep.start_superlink()
        # A SuperNode whose key was never registered; started first so its start-up
        # overlaps the registrations below.
        stranger = make_node_keys(work / "keys", "stranger")
        dep.start_supernode("stranger", stranger, {"feature-db": str(site_dbs["site-a"])})
        keys = {}
        for site, db in site_dbs.items():
            keys[site] = make_node_keys(work / "keys", site)
            dep.register_supernode(site, keys[site])
            dep.start_supernode(site, keys[site], {"feature-db": str(db)})
        yield Federation(dep, work, site_dbs, keys)


def run_study(fed: Federation, spec: MLStudySpec, tag: str) -> tuple[int, Path]:
    out = fed.work / tag
    app = write_app_bundle(
        out / "app", spec, results_db=out / "metrics.db", results_dir=out, model_dir=out / "models"
    )
    return fed.dep.submit(app), out


def pooled(spec: MLStudySpec, dbs: dict[str, Path]) -> tuple[Any, Any]:
    parts = [
        split_site_rows(spec, SqliteFeatureSource(db).load(needed_columns(spec)))
        for db in dbs.values()
    ]
    col = "died_5y"
    train = make_batchable(
        spec,
        np.vstack([p.x_train for p in parts]),
        {col: np.concatenate([p.outcome_train[col] for p in parts])},
    )
    held = make_batchable(
        spec,
        np.vstack([p.x_held_out for p in parts]),
        {col: np.concatenate([p.outcome_held_out[col] for p in parts])},
    )
    return train, held
