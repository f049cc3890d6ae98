"""Policy file parsing and edge settings (edge.toml, environment, overrides)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_node.policy import (
    DEFAULT_POLICY_TOML,
    Decision,
    Policy,
    load_policy,
    parse_policy,
    write_default_policy,
)
from edge_node.settings import load_settings
from federated_ml.analyses import known_analyses
from shared_cdm.errors import InvalidInput


def test_default_policy_file_says_what_the_contract_says() -> None:
    policy = parse_policy(DEFAULT_POLICY_TOML)
    assert policy.min_cell_size == 5
    assert policy.min_sites == 1  # the coordinating center's minimum rules by default
    assert policy.allow_secure_aggregation is True
    assert policy.max_parameters_ratio == 0.3333
    assert (policy.differencing_scope, policy.max_repeats) == ("requester", 10)
    assert (policy.epsilon_budget_per_requester, policy.epsilon_budget_total) == (3.0, 10.0)
    # The file says what the code defaults to, so deleting it changes nothing but analyses.
    assert {**policy.__dict__, "analyses": None} == {**Policy().__dict__, "analyses": None}
    assert policy.release_extremes is False
    assert policy.decision_for("count") is Decision.AUTO
    assert policy.decision_for("describe") is Decision.AUTO
    assert policy.decision_for("cox") is Decision.AUTO
    assert policy.decision_for("never_heard_of_it") is Decision.MANUAL
    assert dict(policy.analyses) == dict(Policy().analyses)
    assert set(policy.analyses) == set(known_analyses())  # every analysis the site can run


def test_missing_policy_file_means_the_defaults(tmp_path: Path) -> None:
    policy = load_policy(tmp_path / "absent.toml")
    assert policy.min_cell_size == 5
    assert policy.decision_for("count") is Decision.AUTO
    assert policy.decision_for("kaplan_meier") is Decision.AUTO
    assert policy.decision_for("train_model") is Decision.MANUAL


def test_manual_auto_and_deny_are_read() -> None:
    policy = parse_policy(
        "min_cell_size = 11\nrelease_extremes = true\n"
        '[analyses]\ncount = "manual"\ncox = "auto"\nlogistic = "deny"\n'
    )
    assert policy.min_cell_size == 11
    assert policy.release_extremes is True
    assert policy.decision_for("count") is Decision.MANUAL
    assert policy.decision_for("cox") is Decision.AUTO
    assert policy.decision_for("logistic") is Decision.DENY
    # Listing some analyses keeps the defaults for the others.
    assert policy.decision_for("describe") is Decision.AUTO
    assert policy.decision_for("train_model") is Decision.MANUAL


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("min_cell_size = 0", "min_cell_size"),
        ('min_cell_size = "5"', "min_cell_size"),
        ("min_cell_size = 2.5", "min_cell_size"),
        ('release_extremes = "yes"', "release_extremes"),
        ('[analyses]\ncox = "sometimes"', "analyses.cox"),
        ("[analyses]\ncox = 1", "analyses.cox"),
        ("min_cel_size = 5", "min_cel_size"),
        ('analyses = "auto"', "analyses"),
        ("min_sites = 0", "min_sites"),
        ("max_parameters_ratio = 0", "max_parameters_ratio"),
        ("max_parameters_ratio = 1.5", "max_parameters_ratio"),
        ('differencing_scope = "everyone"', "differencing_scope"),
        ("max_repeats = 0", "max_repeats"),
        ("epsilon_budget_per_requester = -1.0", "epsilon_budget_per_requester"),
        ("allow_secure_aggregation = 1", "allow_secure_aggregation"),
    ],
)
def test_bad_values_are_rejected_naming_the_key(text: str, key: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_policy(text, "site policy")
    assert f"`{key}`" in info.value.message
    assert "site policy" in info.value.message


def test_policy_that_is_not_toml_is_invalid_input(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text("min_cell_size = = 3", encoding="utf-8")
    with pytest.raises(InvalidInput, match="not valid TOML"):
        load_policy(path)


def test_default_policy_is_written_once_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    assert write_default_policy(path) is True
    path.write_text("min_cell_size = 20\n", encoding="utf-8")
    assert write_default_policy(path) is False
    assert load_policy(path).min_cell_size == 20


def _edge_toml(home: Path, extra: str = "") -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "edge.toml").write_text(
        f'site_name = "site-a"\nhub_address = "127.0.0.1:50051"\n{extra}', encoding="utf-8"
    )


def test_settings_defaults_live_under_home(tmp_path: Path) -> None:
    _edge_toml(tmp_path)
    settings = load_settings(tmp_path)
    home = tmp_path.resolve()
    assert settings.site_name == "site-a"
    assert settings.tls_cert == home / "tls" / "site-a.crt"
    assert settings.tls_key == home / "tls" / "site-a.key"
    assert settings.tls_ca_cert == home / "tls" / "ca.crt"
    assert settings.state_db_url == f"sqlite:///{home / 'edge.db'}"
    assert settings.analysis_db_url == f"sqlite:///{home / 'analysis.db'}"
    assert settings.policy_file == home / "policy.toml"
    assert settings.poll_interval_s == 2.0
    assert settings.hub_server_name == "localhost"


def test_settings_toml_then_environment_then_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _edge_toml(tmp_path, 'poll_interval_s = 0.5\nhub_server_name = "hub"\n')
    assert load_settings(tmp_path).poll_interval_s == 0.5
    monkeypatch.setenv("ONCOFED_EDGE_POLL_INTERVAL_S", "7")
    monkeypatch.setenv("ONCOFED_EDGE_HUB_ADDRESS", "hub.example:443")
    settings = load_settings(tmp_path)
    assert settings.poll_interval_s == 7.0
    assert settings.hub_address == "hub.example:443"
    assert settings.hub_server_name == "hub"
    assert load_settings(tmp_path, poll_interval_s=1.5).poll_interval_s == 1.5


def test_settings_refuse_bad_values_naming_the_field(tmp_path: Path) -> None:
    _edge_toml(tmp_path, "poll_interval_s = -1\n")
    with pytest.raises(InvalidInput, match="poll_interval_s"):
        load_settings(tmp_path)
    with pytest.raises(InvalidInput, match="hub_address"):
        load_settings(tmp_path, poll_interval_s=1, hub_address="no-port")
    with pytest.raises(InvalidInput, match="site_name"):
        load_settings(tmp_path, poll_interval_s=1, site_name="bad name/")


def test_settings_without_edge_toml_point_to_init(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="oncofed-edge init"):
        load_settings(tmp_path)


def test_the_ledger_and_site_limits_are_read() -> None:
    policy = parse_policy(
        "min_sites = 2\nallow_secure_aggregation = false\nmax_parameters_ratio = 0.1\n"
        'differencing_scope = "all"\nmax_repeats = 3\n'
        "epsilon_budget_per_requester = 1.5\nepsilon_budget_total = 4\n"
    )
    assert (policy.min_sites, policy.allow_secure_aggregation) == (2, False)
    assert (policy.max_parameters_ratio, policy.differencing_scope) == (0.1, "all")
    assert policy.max_repeats == 3
    assert (policy.epsilon_budget_per_requester, policy.epsilon_budget_total) == (1.5, 4.0)
    # Cached answers are keyed by the policy: any change gives another fingerprint.
    assert policy.fingerprint() != Policy().fingerprint()
    assert Policy().fingerprint() == Policy().fingerprint()
