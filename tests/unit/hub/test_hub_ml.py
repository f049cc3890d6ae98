"""ML studies at the hub without Flower processes: the study's rounds, the hold while
the Flower run is going, the import of the ServerApp's metrics into the hub's
database, the released model, the figures, and the failures (no SuperLink, a run
that never reports). The ServerApp's loop runs in process on a fake grid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from federated_ml.flower.features import SqliteFeatureSource
from federated_ml.flower.metrics import SqliteMetricsSink
from federated_ml.flower.models import model_version, state_from_json
from federated_ml.flower.server_app import run_training, write_result_file
from federated_ml.flower.spec import parse_ml_spec
from federated_ml.flower.study import MODEL, PHASE, PUBLIC_KEY, RUN_ID, SUPERLINK
from hub.auth import UserView
from hub.bootstrap import Hub, build_hub
from hub.db.models import MlRound, MlRun, Role
from hub.db.session import Database
from hub.settings import load_settings
from hub.studies.ml import FlowerCoordinator, figures
from protocol.messages import ResultStatus, TaskAssignment, TaskResult
from shared_cdm.errors import InvalidInput
from tests.unit.federated_ml.flower.fake_grid import FakeGrid
from tests.unit.federated_ml.flower.synthetic import FEATURES, binary_site
from tests.unit.hub.hub_testkit import FakeClock, make_user, register_nodes

SITES = ("A", "B", "C")
KEY = "ecdsa-sha2-nistp384 AAAAE2VjZHNh"


def ml_block(**over: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": "hub ml test",
        "model": {"kind": "logistic"},
        "features": FEATURES,
        "outcome": {"kind": "binary", "column": "died_5y"},
        "training": {"lr": 0.05, "local_epochs": 2, "seed": 4},
        "rounds": 2,
        "min_nodes": 2,
        "round_timeout_s": 0.5,
        "start_timeout_s": 1,
    }
    raw.update(over)
    return raw


def study_spec(**over: Any) -> dict[str, Any]:
    return {"analysis": "flower", "dataset": "default", "ml": ml_block(**over)}


@pytest.fixture
def ml_hub(tmp_path: Path, db_url: str, hub_db: Database, clock: FakeClock) -> Hub:
    settings = load_settings(
        tmp_path / "hub-home", db_url=db_url, task_deadline_s=600, flower_enabled=True
    )
    hub = build_hub(settings, db=hub_db, clock=clock)
    register_nodes(hub, *SITES)
    return hub


def fake_run(flower: FlowerCoordinator, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, str]]:
    """Stand in for the SuperLink: remember which keys were registered."""
    submitted: list[dict[str, str]] = []

    def submit(_deployment: Any, due: Any, keys: dict[str, str], node_ids: dict[str, int]):
        submitted.append(dict(keys))
        node_ids.update({s: i for i, s in enumerate(keys)})
        return {RUN_ID: 7, SUPERLINK: "127.0.0.1:9093", "node_ids": {}, "deadline_s": 60}

    monkeypatch.setattr(flower, "_require", lambda: None)
    monkeypatch.setattr(flower, "_submit", submit)
    return submitted


def tasks_for(hub: Hub, site: str) -> list[TaskAssignment]:
    return hub.studies.pull(site)


def answer(hub: Hub, site: str, payload: dict[str, Any], status: ResultStatus) -> TaskAssignment:
    (task,) = tasks_for(hub, site)
    hub.studies.submit_result(site, TaskResult(task.task_id, status, payload, ""))
    return task


def join(hub: Hub, owner: UserView, coordinator: UserView, **over: Any) -> str:
    study = hub.studies.submit(owner, study_spec(**over), sites=list(SITES))
    hub.studies.approve(coordinator, study.id)
    answer(hub, "A", {PUBLIC_KEY: KEY + "A"}, ResultStatus.OK)
    answer(hub, "B", {PUBLIC_KEY: KEY + "B"}, ResultStatus.OK)
    answer(hub, "C", {}, ResultStatus.REFUSED)
    return study.id


def users(hub: Hub) -> tuple[UserView, UserView]:
    return make_user(hub, "rita", Role.RESEARCHER)[0], make_user(hub, "carl", Role.COORDINATOR)[0]


def run_server_loop(hub: Hub, study_id: str, tmp_path: Path, run_id: int = 7) -> None:
    """What the ServerApp process would write for this study, from an in-process grid."""
    assert hub.flower is not None
    base = hub.flower.workdir / "studies" / study_id
    sources = {
        s: SqliteFeatureSource(binary_site(tmp_path / f"{s}.sqlite", 150, [0, 0, 0], -0.3, i))
        for i, s in enumerate(("A", "B"))
    }
    spec = parse_ml_spec(ml_block())
    sink = SqliteMetricsSink(base / "metrics.sqlite")
    result = run_training(FakeGrid(sources), spec, f"run-{run_id}", sink, base / "models")
    write_result_file(base / "results", result)


def test_an_ml_study_needs_a_hub_with_flower(hub: Hub) -> None:
    owner = make_user(hub, "rita", Role.RESEARCHER)[0]
    with pytest.raises(InvalidInput, match="no Flower SuperLink"):
        hub.studies.submit(owner, study_spec(), sites=["A"])


def test_spec_errors_are_named_at_submission(ml_hub: Hub) -> None:
    owner, _ = users(ml_hub)
    with pytest.raises(InvalidInput, match=r"ml: invalid ML study spec: .*rounds"):
        ml_hub.studies.submit(owner, study_spec(rounds=0), sites=list(SITES))


def test_the_study_trains_holds_imports_and_releases(
    ml_hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ml_hub.flower is not None
    submitted = fake_run(ml_hub.flower, monkeypatch)
    owner, coordinator = users(ml_hub)
    study_id = join(ml_hub, owner, coordinator)
    # Held in the join round until the hub has started the run.
    assert ml_hub.studies.get(owner, study_id).current_round == 0
    ml_hub.studies.sweep()
    assert submitted == [{"A": KEY + "A", "B": KEY + "B"}]  # the refusing site is left out
    assert tasks_for(ml_hub, "C") == []
    (train,) = tasks_for(ml_hub, "A")
    assert train.spec["round_params"][PHASE] == "train"
    assert train.spec["round_params"][SUPERLINK] == "127.0.0.1:9093"
    answer(ml_hub, "A", {"supernode": "started"}, ResultStatus.OK)
    answer(ml_hub, "B", {"supernode": "started"}, ResultStatus.OK)
    ml_hub.studies.sweep()
    assert ml_hub.studies.get(owner, study_id).current_round == 1  # the run is not over

    run_server_loop(ml_hub, study_id, tmp_path)
    ml_hub.studies.sweep()
    (release,) = tasks_for(ml_hub, "A")
    model = release.spec["round_params"][MODEL]
    assert model_version(state_from_json(model["weights"])) == model["version"]
    with ml_hub.db.session() as session:
        run = session.get(MlRun, study_id)
        assert run is not None and run.status == "completed"
        assert run.model_version == model["version"] and run.finished_at is not None
        rounds = session.scalars(
            sa.select(MlRound).where(MlRound.study_id == study_id).order_by(MlRound.server_round)
        ).all()
        assert [r.server_round for r in rounds] == [1, 2, 3]
        assert all(r.sites_replied == ["A", "B"] for r in rounds)
    answer(ml_hub, "A", {"model_stored": True}, ResultStatus.OK)
    answer(ml_hub, "B", {"model_stored": True}, ResultStatus.OK)

    study = ml_hub.studies.get(owner, study_id)
    assert study.status == "completed", study.error
    assert study.result is not None
    result = study.result["result"]
    assert result["model_version"] == model["version"]
    assert result["sites_participated"] == ["A", "B"]
    assert result["sites_holding_model"] == ["A", "B"]
    assert [r["server_round"] for r in result["rounds"]] == [1, 2, 3]
    final = result["rounds"][-1]
    assert result["final_auc_pooled"] == pytest.approx(final["eval_auc_pooled"])
    auc_figure = result["figures"]["auc"]["data"][0]
    assert auc_figure["y"][-1] == pytest.approx(final["eval_auc_pooled"])
    sites = {s["name"]: s["status"] for s in study.result["sites"]}
    assert sites == {"A": "ok", "B": "ok", "C": "refused"}


def test_a_run_that_never_reports_ends_without_a_model(
    ml_hub: Hub, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ml_hub.flower is not None
    fake_run(ml_hub.flower, monkeypatch)
    owner, coordinator = users(ml_hub)
    study_id = join(ml_hub, owner, coordinator)
    ml_hub.studies.sweep()
    answer(ml_hub, "A", {"supernode": "started"}, ResultStatus.OK)
    answer(ml_hub, "B", {"supernode": "started"}, ResultStatus.OK)
    clock.advance(30)
    ml_hub.studies.sweep()
    assert ml_hub.studies.get(owner, study_id).current_round == 1
    clock.advance(31)  # past the run's deadline (60 s)
    ml_hub.studies.sweep()
    (release,) = tasks_for(ml_hub, "A")
    assert MODEL not in release.spec["round_params"]
    answer(ml_hub, "A", {"model_stored": False}, ResultStatus.OK)
    answer(ml_hub, "B", {"model_stored": False}, ResultStatus.OK)
    study = ml_hub.studies.get(owner, study_id)
    assert study.result is not None
    assert study.result["result"]["status"] == "failed"
    assert "no result in time" in study.result["result"]["detail"]
    assert study.result["result"]["model_version"] is None


def test_without_a_running_superlink_the_study_fails_with_the_reason(ml_hub: Hub) -> None:
    owner, coordinator = users(ml_hub)
    study_id = join(ml_hub, owner, coordinator)
    ml_hub.studies.sweep()
    study = ml_hub.studies.get(owner, study_id)
    assert study.status == "failed"
    assert study.error is not None and "SuperLink is not running" in study.error


def test_too_few_joining_sites_fail_the_study(ml_hub: Hub) -> None:
    owner, coordinator = users(ml_hub)
    study = ml_hub.studies.submit(owner, study_spec(min_nodes=2), sites=list(SITES))
    ml_hub.studies.approve(coordinator, study.id)
    answer(ml_hub, "A", {PUBLIC_KEY: KEY}, ResultStatus.OK)
    answer(ml_hub, "B", {}, ResultStatus.REFUSED)
    answer(ml_hub, "C", {}, ResultStatus.REFUSED)
    ml_hub.studies.sweep()
    final = ml_hub.studies.get(owner, study.id)
    assert final.status == "failed"
    assert final.error is not None and "ml.min_nodes" in final.error


def test_figures_plot_the_rounds() -> None:
    rounds = [
        {
            "server_round": 1,
            "train_loss": 0.6,
            "eval_model_round": 0,
            "eval_loss": 0.7,
            "eval_auc_pooled": 0.5,
            "eval_auc_weighted": 0.5,
            "calibration": [],
        },
        {
            "server_round": 2,
            "train_loss": None,
            "eval_model_round": 1,
            "eval_loss": 0.5,
            "eval_auc_pooled": 0.8,
            "eval_auc_weighted": 0.78,
            "calibration": [[10, 0.2, 0.1], [0, None, None], [5, 0.7, 0.8]],
            "site_metrics": [
                {"site": "B", "phase": "eval", "model_round": 1, "auc": 0.74},
                {"site": "A", "phase": "eval", "model_round": 1, "auc": 0.83},
                {"site": "A", "phase": "train", "model_round": 2, "auc": None},
            ],
        },
    ]
    figs = figures(rounds)
    assert figs["loss"]["data"][0]["y"] == [0.6]
    assert figs["loss"]["data"][1]["y"] == [0.7, 0.5]
    assert figs["auc"]["data"][0]["y"] == [0.5, 0.8]
    # Each site's own held-out AUC beside the pooled one.
    sites = {d["name"]: d["y"] for d in figs["auc"]["data"][2:]}
    assert sites == {"A held-out AUC": [0.83], "B held-out AUC": [0.74]}
    assert figs["calibration"]["data"][0]["x"] == [0.2, 0.7]  # empty bins left out
    assert figs["calibration"]["data"][0]["y"] == [0.1, 0.8]


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", ""])
def test_a_wildcard_superlink_needs_a_public_host(tmp_path: Path, bind: str) -> None:
    tls: Any = object()
    with pytest.raises(InvalidInput, match="flower_public_host"):
        FlowerCoordinator(tls, tmp_path, tls, bind_host=bind)


def test_without_a_public_host_supernodes_dial_the_bind_address(tmp_path: Path) -> None:
    tls: Any = object()
    db: Any = object()  # not touched before start()
    tunnel = FlowerCoordinator(db, tmp_path, tls, bind_host="10.77.0.1")
    named = FlowerCoordinator(db, tmp_path, tls, bind_host="0.0.0.0", public_host="hub.vpn")
    assert tunnel._public_host == "10.77.0.1"
    assert named._public_host == "hub.vpn"
