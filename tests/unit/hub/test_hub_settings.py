from __future__ import annotations

from pathlib import Path

import pytest

from hub.settings import load_settings
from shared_cdm.errors import InvalidInput, NotFound

ENV_FIELDS = ("GRPC_PORT", "AUTO_APPROVE", "DB_URL", "ENVIRONMENT", "HTTP_PORT")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_FIELDS:
        monkeypatch.delenv(f"ONCOFED_HUB_{name}", raising=False)


def test_defaults_live_under_home(tmp_path: Path) -> None:
    s = load_settings(tmp_path)
    assert s.db_url == f"sqlite:///{tmp_path.resolve() / 'hub.db'}"
    assert (s.grpc_host, s.grpc_port, s.http_host, s.http_port) == (
        "127.0.0.1",
        50051,
        "127.0.0.1",
        8080,
    )
    assert s.tls_ca_cert == tmp_path.resolve() / "tls" / "ca.crt"
    assert s.tls_cert == tmp_path.resolve() / "tls" / "hub.crt"
    assert s.tls_key == tmp_path.resolve() / "tls" / "hub.key"
    assert s.auto_approve is False
    assert s.environment == "development"
    assert (s.heartbeat_interval_s, s.task_deadline_s, s.node_offline_after_s) == (10, 3600, 60)
    assert s.max_message_bytes == 4 * 1024 * 1024


def test_toml_file_is_read_and_relative_paths_are_under_home(tmp_path: Path) -> None:
    (tmp_path / "hub.toml").write_text(
        'grpc_port = 6001\nauto_approve = true\ntls_cert = "certs/hub.pem"\n'
        'db_url = "postgresql+psycopg://db/hub"\n',
        encoding="utf-8",
    )
    s = load_settings(tmp_path)
    assert s.grpc_port == 6001
    assert s.auto_approve is True
    assert s.tls_cert == tmp_path.resolve() / "certs" / "hub.pem"
    assert s.db_url == "postgresql+psycopg://db/hub"


def test_environment_overrides_toml_and_overrides_win_over_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "hub.toml").write_text("grpc_port = 6001\nhttp_port = 7001\n", encoding="utf-8")
    monkeypatch.setenv("ONCOFED_HUB_GRPC_PORT", "6002")
    monkeypatch.setenv("ONCOFED_HUB_HTTP_PORT", "7002")
    monkeypatch.setenv("ONCOFED_HUB_AUTO_APPROVE", "true")
    s = load_settings(tmp_path, http_port=0)
    assert s.grpc_port == 6002
    assert s.http_port == 0
    assert s.auto_approve is True


def test_unknown_key_and_bad_value_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "hub.toml").write_text("grpc_prot = 1\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="grpc_prot"):
        load_settings(tmp_path)
    (tmp_path / "hub.toml").write_text('environment = "staging"\n', encoding="utf-8")
    with pytest.raises(InvalidInput, match="environment"):
        load_settings(tmp_path)


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "hub.toml").write_text("grpc_port = = 1\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"hub\.toml is not valid TOML"):
        load_settings(tmp_path)


def test_production_refuses_to_start_without_tls_files(tmp_path: Path) -> None:
    s = load_settings(tmp_path, environment="production")
    with pytest.raises(NotFound, match="TLS files") as caught:
        s.check_startable()
    assert str(s.tls_key) in str(caught.value)
    for path in (s.tls_ca_cert, s.tls_cert, s.tls_key):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x", encoding="utf-8")
    s.check_startable()  # all three present: no error
