"""Security fixtures: no vault key or token leaks in from the environment; a CLI app
with the security commands registered; an edge home on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from edge_node.security.cli import register

ENV = (
    "ONCOFED_EDGE_VAULT_KEY",
    "ONCOFED_EDGE_VAULT_KEY_FILE",
    "ONCOFED_EDGE_TOKEN",
    "ONCOFED_EDGE_TOKEN_FILE",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def cli() -> typer.Typer:
    """An app with only the security commands, as `register` adds them to the real one."""
    app = typer.Typer(no_args_is_help=True, add_completion=False)

    @app.callback()
    def _root() -> None:
        """Test root."""

    register(app)
    return app


@pytest.fixture
def edge_home(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An edge home whose state database is `db_url` (the analysis database unused)."""
    home = tmp_path / "edge"
    home.mkdir()
    (home / "edge.toml").write_text(
        'site_name = "site-a"\nhub_address = "127.0.0.1:50051"\n', encoding="utf-8"
    )
    monkeypatch.setenv("ONCOFED_EDGE_STATE_DB_URL", db_url)
    return home
