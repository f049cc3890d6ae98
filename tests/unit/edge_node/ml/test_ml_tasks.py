"""The site's side of an ML study's rounds through the task runner: the policy decides
as for any task (deny refuses, manual waits for the operator at join and later
rounds of a joined study follow), join builds the snapshot and the key, release
keeps the model (hash checked) and deletes the snapshot."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edge_node.datasets import add_dataset
from edge_node.ledger.service import Ledger
from edge_node.ml.features import parse_ml_study
from edge_node.ml.models import load_model
from edge_node.ml.tasks import SECURE_NODE_CONFIG_KEY, SNAPSHOT, MlTasks
from edge_node.policy import Decision, Policy, parse_policy
from edge_node.runner import TaskRunner
from edge_node.store.models import TaskDecision
from federated_ml.flower.features import SqliteFeatureSource, needed_columns
from federated_ml.flower.models import build_model, model_version, state_to_json
from federated_ml.flower.privacy import CLIP_KEY, SCALE_KEY, rho_for, spent_rho
from federated_ml.flower.study import MODEL, PHASE, PUBLIC_KEY
from protocol.messages import ResultStatus, TaskAssignment
from shared_cdm.errors import InvalidInput
from tests.unit.edge_node.conftest import EdgeDbs

STUDY = "study-7"
ROWS = "\n".join(f"P{i},{50 + i % 30},{i % 3},{(i * 7) % 2}" for i in range(40))
CSV = "pseudonym,age,grade,died\n" + ROWS + "\n"


def spec() -> dict[str, Any]:
    return {
        "analysis": "flower",
        "dataset": "lung",
        "ml": {
            "name": "t",
            "model": {"kind": "logistic"},
            "features": ["age", "grade"],
            "scaling": {"age": [60, 10]},
            "outcome": {"kind": "binary", "column": "died"},
        },
    }


def task(
    phase: str, body: dict[str, Any] | None = None, study_id: str = STUDY, **params: Any
) -> TaskAssignment:
    """A round of the study `body` (default: spec()) as the hub sends it."""
    return TaskAssignment(
        task_id=str(uuid.uuid4()),
        study_id=study_id,
        round={"join": 0, "train": 1, "release": 2}[phase],
        analysis="flower",
        dataset="lung",
        spec={**(spec() if body is None else body), "round_params": {PHASE: phase, **params}},
        requester="rita",
        created_at=datetime.now(UTC),
    )


@pytest.fixture
def site(edge_dbs: EdgeDbs, tmp_path: Path) -> EdgeDbs:
    csv = tmp_path / "lung.csv"
    csv.write_text(CSV, encoding="utf-8")
    add_dataset("lung", csv, analysis_engine=edge_dbs.analysis, registry=edge_dbs.registry)
    return edge_dbs


def runner(site: EdgeDbs, home: Path, decision: Decision) -> TaskRunner:
    ml = MlTasks(site.analysis, site.registry, home, home / "ca.crt")
    return TaskRunner.create(site.analysis, site.state, Policy(5, {"flower": decision}), ml=ml)


def test_a_denying_policy_refuses_every_round(site: EdgeDbs, tmp_path: Path) -> None:
    r = runner(site, tmp_path / "home", Decision.DENY)
    join = task("join")
    assert r.decide(join) is TaskDecision.REJECTED
    result = r.run(join, approved=True)
    assert result.status is ResultStatus.REFUSED
    assert not (tmp_path / "home" / "ml").exists()


def test_join_then_release_with_a_manual_policy(site: EdgeDbs, tmp_path: Path) -> None:
    home = tmp_path / "home"
    r = runner(site, home, Decision.MANUAL)
    join = task("join")
    assert r.decide(join) is TaskDecision.AWAITING_APPROVAL
    assert r.run(join).status is ResultStatus.REFUSED  # not approved yet
    answered = r.run(join, approved=True)
    assert answered.status is ResultStatus.OK, answered.message
    assert answered.payload[PUBLIC_KEY].startswith("ecdsa-sha2-nistp384 ")
    folder = home / "ml" / STUDY
    columns = needed_columns(parse_ml_study(spec()).ml)
    rows = SqliteFeatureSource(folder / SNAPSHOT).load(columns)
    assert len(rows.keys) == 40 and rows.keys[0].startswith("P")
    assert (folder / "supernode.key").stat().st_mode & 0o077 == 0
    # Joining again (an edge restarted) answers with the same key.
    assert r.run(task("join"), approved=True).payload == answered.payload

    # Later rounds of a study this site joined need no second approval.
    model = build_model(parse_ml_study(spec()).ml, seed=1)
    state = model.state_dict()
    release = task(
        "release", **{MODEL: {"version": model_version(state), "weights": state_to_json(state)}}
    )
    assert r.decide(release) is TaskDecision.APPROVED
    done = r.run(release)
    assert done.status is ResultStatus.OK, done.message
    assert done.payload == {"model_stored": True, "model_version": model_version(state)}
    assert not (folder / SNAPSHOT).exists()
    assert load_model(home, STUDY).version == model_version(state)


def test_a_release_whose_weights_do_not_hash_to_the_version_fails(
    site: EdgeDbs, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    r = runner(site, home, Decision.AUTO)
    assert r.run(task("join")).status is ResultStatus.OK
    state = build_model(parse_ml_study(spec()).ml, seed=1).state_dict()
    bad = task(
        "release", **{MODEL: {"version": "sha256:" + "1" * 64, "weights": state_to_json(state)}}
    )
    result = r.run(bad)
    assert result.status is ResultStatus.FAILED
    assert "does not match its version" in result.message
    assert not (home / "ml-models").exists()


def test_train_needs_a_join_and_a_superlink(site: EdgeDbs, tmp_path: Path) -> None:
    r = runner(site, tmp_path / "home", Decision.AUTO)
    no_address = r.run(task("train"))
    assert no_address.status is ResultStatus.FAILED
    assert "no SuperLink address" in no_address.message
    not_joined = r.run(task("train", superlink="127.0.0.1:9"))
    assert not_joined.status is ResultStatus.FAILED
    assert "has not joined" in not_joined.message


def test_a_spec_that_does_not_fit_the_data_fails_at_join(site: EdgeDbs, tmp_path: Path) -> None:
    r = runner(site, tmp_path / "home", Decision.AUTO)
    wrong = task("join")
    wrong.spec["ml"]["features"] = ["age", "stage"]
    result = r.run(wrong)
    assert result.status is ResultStatus.FAILED
    assert "no field 'stage'" in result.message


def test_an_edge_without_ml_refuses(site: EdgeDbs) -> None:
    r = TaskRunner.create(site.analysis, site.state, Policy(5, {"flower": Decision.AUTO}))
    result = r.run(task("join"))
    assert result.status is ResultStatus.REFUSED
    assert "does not take part in ML studies" in result.message


def dp_task(epsilon: float) -> TaskAssignment:
    t = task("join")
    t.spec["ml"]["privacy"] = {"epsilon": epsilon, "delta": 1e-5, "clip_norm": 0.5}
    t.spec["ml"]["rounds"] = 4
    return t


def test_join_records_the_release_and_the_dp_epsilon_in_the_ledger(
    site: EdgeDbs, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    policy = Policy(5, {"flower": Decision.AUTO}, epsilon_budget_per_requester=3.0)
    ledger = Ledger(site.state, policy)
    ml = MlTasks(site.analysis, site.registry, home, home / "ca.crt", ledger=ledger)
    r = TaskRunner.create(site.analysis, site.state, policy, ml=ml)
    plain = r.run(task("join"))
    assert plain.status is ResultStatus.OK, plain.message
    noisy = r.run(dp_task(2.0))
    assert noisy.status is ResultStatus.OK, noisy.message
    releases = ledger.releases("rita")
    assert [(x.analysis, x.epsilon) for x in releases] == [("flower", 0.0), ("flower", 2.0)]
    config = ml._node_config(home / "ml" / STUDY)
    assert config[CLIP_KEY] == 0.5
    scale = float(config[SCALE_KEY])
    assert 4 * spent_rho(0.5, scale) <= rho_for(2.0, 1e-5) * (1 + 1e-6)
    # A second DP study would take rita past her budget of 3: refused, nothing built.
    over = dp_task(1.5)
    over_result = r.run(
        TaskAssignment(
            task_id=over.task_id,
            study_id="study-8",
            round=0,
            analysis="flower",
            dataset="lung",
            spec=over.spec,
            requester="rita",
            created_at=over.created_at,
        )
    )
    assert over_result.status is ResultStatus.REFUSED, over_result.message
    assert "budget" in over_result.message
    assert not (home / "ml" / "study-8" / SNAPSHOT).exists()


def test_the_sites_min_sites_rule_holds_for_ml_studies(site: EdgeDbs, tmp_path: Path) -> None:
    home = tmp_path / "home"
    ml = MlTasks(site.analysis, site.registry, home, home / "ca.crt")
    policy = Policy(5, {"flower": Decision.AUTO}, min_sites=3)
    r = TaskRunner.create(site.analysis, site.state, policy, ml=ml)
    two = task("join", n_sites=2)
    result = r.run(two)
    assert result.status is ResultStatus.REFUSED
    assert "min_sites" in result.message
    assert r.run(task("join", n_sites=3)).status is ResultStatus.OK


@pytest.mark.parametrize(("k", "joins"), [(15, True), (16, False), (31, False)])
def test_a_site_with_too_few_rows_or_events_for_its_cell_size_takes_no_part(
    site: EdgeDbs, tmp_path: Path, k: int, joins: bool
) -> None:
    # 40 rows; the 30 the site trains on (a quarter is held out) have 15 with the
    # outcome and 15 without.
    home = tmp_path / "home"
    ml = MlTasks(site.analysis, site.registry, home, home / "ca.crt", min_cell_size=k)
    r = TaskRunner.create(site.analysis, site.state, Policy(k, {"flower": Decision.AUTO}), ml=ml)
    result = r.run(task("join"))
    if joins:
        assert result.status is ResultStatus.OK, result.message
    else:
        assert result.status is ResultStatus.REFUSED
        assert f"minimum cell size is {k}" in result.message
        assert not (home / "ml" / STUDY / SNAPSHOT).exists()
        assert not (home / "ml" / STUDY / "supernode.pub").exists()


def secure_task(secure: bool) -> TaskAssignment:
    t = task("join")
    t.spec["ml"]["secure_aggregation"] = secure
    return t


def test_a_site_that_requires_secure_aggregation_joins_only_such_studies(
    site: EdgeDbs, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    ml = MlTasks(
        site.analysis, site.registry, home, home / "ca.crt", require_secure_aggregation=True
    )
    r = TaskRunner.create(site.analysis, site.state, Policy(5, {"flower": Decision.AUTO}), ml=ml)
    plain = r.run(secure_task(False))
    assert plain.status is ResultStatus.REFUSED
    assert "ml_requires_secure_aggregation" in plain.message
    assert not (home / "ml" / STUDY / SNAPSHOT).exists()
    assert not (home / "ml" / STUDY / "supernode.pub").exists()
    secure = r.run(secure_task(True))
    assert secure.status is ResultStatus.OK, secure.message
    # Its SuperNode's ClientApp is told to refuse any train message sent in the clear.
    assert ml._node_config(home / "ml" / STUDY)[SECURE_NODE_CONFIG_KEY] == "true"


def test_a_plain_study_leaves_the_client_app_free_to_train_in_the_clear(
    site: EdgeDbs, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    r = runner(site, home, Decision.AUTO)
    assert r.run(secure_task(False)).status is ResultStatus.OK
    ml = MlTasks(site.analysis, site.registry, home, home / "ca.crt")
    assert SECURE_NODE_CONFIG_KEY not in ml._node_config(home / "ml" / STUDY)


def test_the_policy_key_is_a_strict_boolean() -> None:
    assert parse_policy("ml_requires_secure_aggregation = true").ml_requires_secure_aggregation
    assert not parse_policy("").ml_requires_secure_aggregation
    with pytest.raises(InvalidInput, match="ml_requires_secure_aggregation"):
        parse_policy('ml_requires_secure_aggregation = "yes"')
