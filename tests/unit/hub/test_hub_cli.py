from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from hub.auth import hash_token
from hub.cli import app
from shared_cdm.errors import EXIT_CODES, ErrorKind

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, db_url: str) -> Path:
    home = tmp_path / "hub-home"
    home.mkdir()
    (home / "hub.toml").write_text(f'db_url = "{db_url}"\n', encoding="utf-8")
    return home


def _invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_users_add_prints_only_the_token_and_stores_its_hash(home: Path, db_url: str) -> None:
    code, out, _ = _invoke("users", "add", "rita", "--role", "researcher", "--home", str(home))
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 1
    token = lines[0]
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT token_hash FROM users")).scalar_one()
    finally:
        engine.dispose()
    assert stored == hash_token(token)

    code, out, _ = _invoke("users", "list", "--home", str(home))
    assert code == 0
    assert out.startswith("rita\tresearcher\t")
    assert token not in out


def test_users_add_refuses_bad_role_and_duplicates(home: Path) -> None:
    code, out, err = _invoke("users", "add", "rita", "--role", "admin", "--home", str(home))
    assert (code, out) == (EXIT_CODES[ErrorKind.INVALID], "")
    assert "unknown role" in err
    assert _invoke("users", "add", "rita", "--role", "coordinator", "--home", str(home))[0] == 0
    code, out, err = _invoke("users", "add", "rita", "--role", "researcher", "--home", str(home))
    assert code == EXIT_CODES[ErrorKind.CONFLICT]
    assert "already exists" in err


def test_db_upgrade_and_audit_verify(home: Path, db_url: str) -> None:
    assert _invoke("db", "upgrade", "--home", str(home))[0] == 0
    _invoke("users", "add", "carl", "--role", "coordinator", "--home", str(home))
    _invoke("users", "add", "rita", "--role", "researcher", "--home", str(home))
    code, out, _ = _invoke("audit", "verify", "--home", str(home))
    assert (code, out.strip()) == (0, "audit log ok: 2 entries")

    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE audit_log SET actor = 'someone' WHERE id = 1"))
    finally:
        engine.dispose()
    code, _, err = _invoke("audit", "verify", "--home", str(home))
    assert code == EXIT_CODES[ErrorKind.CONFLICT]
    assert "broken at entry 1" in err


def test_default_database_is_created_under_home(tmp_path: Path) -> None:
    home = tmp_path / "fresh"
    assert _invoke("db", "upgrade", "--home", str(home))[0] == 0
    assert (home / "hub.db").exists()


def test_every_command_has_help() -> None:
    for args in (
        ["db", "upgrade"],
        ["users", "add"],
        ["users", "list"],
        ["audit", "verify"],
        ["serve"],
    ):
        code, out, _ = _invoke(*args, "--help")
        assert code == 0
        assert "--home" in out


def test_serve_without_tls_files_exits_with_a_clear_message(tmp_path: Path) -> None:
    code, _, err = _invoke("serve", "--home", str(tmp_path / "no-tls"))
    assert code == EXIT_CODES[ErrorKind.NOT_FOUND]
    assert "TLS files" in err
