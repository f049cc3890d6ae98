"""An ML study end to end, as real processes: a hub with its Flower SuperLink (TLS,
SuperNode authentication), three edges, one of whose policy denies ML studies.

The study is submitted over REST like any other. The two approving sites join
(their rows built from their analysis databases through the study's cohort), the
hub registers their SuperNode keys and submits the Flower run, their SuperNodes
train two rounds, the hub stores every round's metrics in its database and
releases the model, and the sites stop their SuperNodes and keep the model, which
`oncofed-edge predict` then applies to the site's current patients. CRP is
standardised across the sites: its constants are pooled from the two sites' sums
at join and travel with the model.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from federated_ml.flower.features import held_out_mask
from ops.federation import LocalFederation
from ops.local_federation import hub_settings_for_local_run

pytestmark = pytest.mark.slow

APPROVE = """\
min_cell_size = 5
min_sites = 2

[analyses]
flower = "auto"
"""
DENY = APPROVE.replace('flower = "auto"', 'flower = "deny"')
STAGES = ["I", "II", "III", "IV"]


def site_table(seed: int, n: int, age_shift: float) -> pd.DataFrame:
    """Patients whose 5-year death depends on age, stage and CRP (non-IID by age)."""
    rng = np.random.default_rng(seed)
    age = np.clip(rng.normal(64 + age_shift, 9, n), 30, 95).round()
    stage = rng.choice(STAGES, n, p=[0.3, 0.25, 0.25, 0.2])
    crp = rng.gamma(2.0, 8.0, n).round(1)
    logit = -1.2 + 0.06 * (age - 65) + 0.9 * np.array([STAGES.index(s) for s in stage])
    logit += 0.03 * (crp - 16)
    died = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame(
        {
            "pseudonym": [f"S{seed}-{i:04d}" for i in range(n)],
            "age": age,
            "stage": stage,
            "crp": crp,
            "died_5y": died,
        }
    )
    frame.loc[3, "crp"] = np.nan  # a missing value: left out at the site, not fatal
    return frame


def training_crp(frame: pd.DataFrame) -> np.ndarray:
    """A site's CRP values the model trains on: its cohort less the held-out rows."""
    cohort = frame[(frame["age"] >= 40) & frame["crp"].notna()]
    held_out = held_out_mask(list(cohort["pseudonym"]), 0.25, 3)
    return cohort["crp"].to_numpy()[~held_out]


def ml_study() -> dict[str, Any]:
    return {
        "analysis": "flower",
        "dataset": "default",
        "where": {"field": "age", "op": ">=", "value": 40},
        "ml": {
            "name": "5-year death",
            "model": {"kind": "logistic"},
            "features": ["age", "stage", "crp"],
            "categorical": {"stage": STAGES},
            "scaling": {"age": [65, 10]},
            "standardise": ["crp"],
            "outcome": {"kind": "binary", "column": "died_5y"},
            "training": {"lr": 0.1, "local_epochs": 4, "batch_size": 32, "seed": 3},
            "strategy": "fedavg",
            "rounds": 2,
            "min_nodes": 2,
            "round_timeout_s": 60,
            "start_timeout_s": 90,
        },
    }


# About 3.5 minutes on two shared cores (measured 204 s at a load average of 7): process
# start-ups dominate (hub, SuperLink, three edges, two SuperNodes, a ClientApp per message).
@pytest.mark.timeout(600)
def test_ml_study_through_hub_and_edges_then_predict(tmp_path: Path) -> None:
    tables = {
        "site-a": site_table(1, 420, 0.0),
        "site-b": site_table(2, 300, 6.0),
        "site-c": site_table(3, 200, -4.0),
    }
    data = tmp_path / "data"
    data.mkdir()
    for site, frame in tables.items():
        frame.to_csv(data / f"{site}.csv", index=False)
    (data / "approve.toml").write_text(APPROVE, encoding="utf-8")
    (data / "deny.toml").write_text(DENY, encoding="utf-8")
    started = time.monotonic()
    with LocalFederation(tmp_path / "fed", ready_timeout=90, grace=10) as fed:
        fed.init_ca()
        fed.start_hub(settings={**hub_settings_for_local_run(), "flower_enabled": True})
        # All three edges start side by side; C's policy denies ML studies.
        with ThreadPoolExecutor(max_workers=2) as pool:
            denying = pool.submit(
                fed.add_edge, "site-c", data / "site-c.csv", policy=data / "deny.toml"
            )
            fed.add_edges(
                {s: data / f"{s}.csv" for s in ("site-a", "site-b")}, policy=data / "approve.toml"
            )
            denying.result()
        sites = ["site-a", "site-b", "site-c"]
        fed.wait_for_sites(sites, timeout=60)
        ready = time.monotonic()
        study = fed.run_study(ml_study(), sites, title="ML: 5-year death", timeout=420)
        trained = time.monotonic()
        assert study["status"] == "completed", study.get("error")
        envelope = study["result"]
        result = envelope["result"]
        by_site = {s["name"]: s for s in envelope["sites"]}
        # The site whose policy denies ML studies refused, and the study says so.
        assert by_site["site-c"]["status"] == "refused"
        assert result["status"] == "completed", result["detail"]
        assert result["sites_participated"] == ["site-a", "site-b"]
        assert result["sites_holding_model"] == ["site-a", "site-b"]
        assert result["sites_dropped"] == {}
        assert result["rounds_completed"] == 2
        version = result["model_version"]
        assert version.startswith("sha256:")
        rounds = result["rounds"]
        assert [r["server_round"] for r in rounds] == [1, 2, 3]
        assert all(r["sites_replied"] == ["site-a", "site-b"] for r in rounds)
        # Training moves the model: the held-out loss falls from the initial weights.
        assert rounds[-1]["eval_loss"] < rounds[0]["eval_loss"]
        assert result["final_auc_pooled"] > 0.7
        # CRP's constants: the mean and SD of the approving sites' training rows.
        crp = np.concatenate([training_crp(tables[s]) for s in ("site-a", "site-b")])
        pooled = result["standardisation"]["crp"]
        assert pooled["n"] == crp.size
        assert pooled["mean"] == pytest.approx(crp.mean(), rel=1e-9)
        assert pooled["sd"] == pytest.approx(crp.std(ddof=1), rel=1e-9)
        figures = result["figures"]
        assert {"loss", "auc", "calibration"} <= set(figures)
        assert figures["auc"]["data"][0]["y"][-1] == pytest.approx(result["final_auc_pooled"])

        # The hub's database holds the run and its rounds.
        hub_db = sa.create_engine(f"sqlite:///{fed.layout.hub_home / 'hub.db'}")
        with hub_db.connect() as conn:
            run = conn.execute(
                sa.text("SELECT status, model_version FROM ml_runs WHERE study_id = :s"),
                {"s": study["id"]},
            ).one()
            stored = conn.execute(
                sa.text("SELECT count(*) FROM ml_rounds WHERE study_id = :s"), {"s": study["id"]}
            ).scalar()
        hub_db.dispose()
        assert tuple(run) == ("completed", version) and stored == 3

        # Each approving site stopped its SuperNode and deleted its training snapshot.
        for site in ("site-a", "site-b"):
            folder = fed.layout.edge_home(site) / "ml" / study["id"]
            assert (folder / "supernode.log").exists()
            assert not (folder / "features.sqlite").exists()
        assert not (fed.layout.edge_home("site-c") / "ml").exists()

        # The released model carries the constants; predict applies them.
        for site in ("site-a", "site-b"):
            model_file = fed.layout.edge_home(site) / "ml-models" / f"{study['id']}.json"
            kept = json.loads(model_file.read_text(encoding="utf-8"))["spec"]["ml"]
            assert kept["scaling"] == {"age": [65, 10], "crp": [pooled["mean"], pooled["sd"]]}

        # Apply back: site A scores its current cohort with the released model.
        out = fed.edge_command("site-a", "predict", study["id"], "--json")
        summary = json.loads(out)
        frame = tables["site-a"]
        cohort = frame[(frame["age"] >= 40) & frame["crp"].notna()]
        assert summary["model_version"] == version
        assert summary["scored"] == len(cohort)
        analysis = sa.create_engine(f"sqlite:///{fed.layout.edge_home('site-a') / 'analysis.db'}")
        with analysis.connect() as conn:
            keys = conn.execute(
                sa.text("SELECT pseudonym FROM ml_prediction WHERE model_version = :v"),
                {"v": version},
            ).scalars()
            assert sorted(keys) == sorted(cohort["pseudonym"])
        analysis.dispose()
    seconds = result["seconds_per_round"]
    print(
        f"\nML study: federation up {ready - started:.1f} s, study {trained - ready:.1f} s, "
        f"rounds {', '.join(f'{s:.1f}' for s in seconds)} s, "
        f"final pooled AUC {result['final_auc_pooled']:.3f}"
    )
