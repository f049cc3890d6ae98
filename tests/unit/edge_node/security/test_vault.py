"""The vault: AES-GCM envelopes under the operator's key, and the site secret at rest."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from edge_node.pipeline.deid import SiteSecret
from edge_node.security.vault import (
    ENV_KEY,
    ENV_KEY_FILE,
    OVERHEAD,
    Vault,
    init_vault,
    load_vault,
    parse_key,
)
from shared_cdm.errors import InvalidInput, Unauthenticated

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))
AAD = b"test/v1"
runner = CliRunner()


def test_round_trip_with_a_fresh_nonce_each_time() -> None:
    vault = Vault(KEY)
    one, two = vault.encrypt(b"hello", AAD), vault.encrypt(b"hello", AAD)
    assert one != two
    assert len(one) == OVERHEAD + 5
    assert b"hello" not in one
    assert vault.decrypt(one, AAD) == vault.decrypt(two, AAD) == b"hello"
    assert vault.decrypt(vault.encrypt(b"", AAD), AAD) == b""


def test_a_wrong_key_fails_loudly_naming_what() -> None:
    envelope = Vault(KEY).encrypt(b"secret", AAD)
    with pytest.raises(Unauthenticated, match="the map was encrypted under another vault key"):
        Vault(OTHER).decrypt(envelope, AAD, what="the map")


@pytest.mark.parametrize("where", [0, 3, 4, 12, 20, 40, -1])
def test_any_altered_byte_is_refused(where: int) -> None:
    envelope = bytearray(Vault(KEY).encrypt(b"secret data", AAD))
    envelope[where] ^= 0x01
    with pytest.raises((InvalidInput, Unauthenticated)) as info:
        Vault(KEY).decrypt(bytes(envelope), AAD, what="the blob")
    assert "the blob" in info.value.message


def test_tampered_ciphertext_or_other_purpose_fails_the_integrity_check() -> None:
    vault = Vault(KEY)
    envelope = bytearray(vault.encrypt(b"secret data", AAD))
    envelope[-1] ^= 0x80
    with pytest.raises(InvalidInput, match="integrity check") as info:
        vault.decrypt(bytes(envelope), AAD)
    assert info.value.code == "vault_tampered"
    with pytest.raises(InvalidInput, match="integrity check"):
        vault.decrypt(vault.encrypt(b"x", AAD), b"another/purpose")
    with pytest.raises(InvalidInput, match="not a vault envelope"):
        vault.decrypt(b"plain bytes, never encrypted, long enough to look like one", AAD)


def test_keys_parse_from_hex_and_base64_and_errors_never_show_them() -> None:
    assert parse_key(KEY.hex(), "x") == KEY
    assert parse_key(base64.b64encode(KEY).decode(), "x") == KEY
    assert parse_key(base64.urlsafe_b64encode(KEY).decode().rstrip("="), "x") == KEY
    with pytest.raises(InvalidInput) as info:
        parse_key("c2hvcnQ=", "$K")
    assert "c2hvcnQ" not in info.value.message
    assert "$K" in info.value.message
    assert KEY.hex() not in repr(Vault(KEY))


def test_key_from_env_then_key_file_then_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_vault(tmp_path) is None
    made = init_vault(tmp_path)
    key_file = tmp_path / "vault.key"
    assert made.created == key_file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = init_vault(tmp_path)
    assert again.created is None
    assert again.vault.key_id == made.vault.key_id  # never replaced

    elsewhere = tmp_path / "keys" / "edge.key"
    elsewhere.parent.mkdir()
    elsewhere.write_text(KEY.hex() + "\n")
    elsewhere.chmod(0o600)
    monkeypatch.setenv(ENV_KEY_FILE, str(elsewhere))
    vault = load_vault(tmp_path)
    assert vault is not None
    assert vault.key_id == Vault(KEY).key_id

    monkeypatch.setenv(ENV_KEY, base64.b64encode(OTHER).decode())
    vault = load_vault(tmp_path)
    assert vault is not None
    assert vault.key_id == Vault(OTHER).key_id


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    init_vault(tmp_path)
    (tmp_path / "vault.key").chmod(0o644)
    with pytest.raises(InvalidInput, match="chmod 600"):
        load_vault(tmp_path)


def test_a_configured_but_missing_key_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_KEY_FILE, str(tmp_path / "nope.key"))
    with pytest.raises(InvalidInput, match="cannot be read"):
        load_vault(tmp_path)


# --- the site secret at rest ---------------------------------------------------------


def test_with_a_vault_key_the_secret_is_created_encrypted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_KEY, KEY.hex())
    path = SiteSecret.path_in(tmp_path)
    secret = SiteSecret.load_or_create(path)
    stored = path.read_bytes()

    assert len(secret) == 32
    assert secret not in stored
    assert secret.hex().encode() not in stored
    assert SiteSecret.is_encrypted(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SiteSecret.load_or_create(path) == secret


def test_an_encrypted_secret_needs_the_right_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_KEY, KEY.hex())
    path = SiteSecret.path_in(tmp_path)
    secret = SiteSecret.load_or_create(path)
    stored = path.read_bytes()

    monkeypatch.setenv(ENV_KEY, OTHER.hex())
    with pytest.raises(Unauthenticated, match="another vault key") as info:
        SiteSecret.load_or_create(path)
    assert str(path) in info.value.message

    monkeypatch.delenv(ENV_KEY)
    with pytest.raises(Unauthenticated, match="no vault key is configured"):
        SiteSecret.load_or_create(path)
    assert path.read_bytes() == stored  # never replaced by a new secret

    damaged = bytearray(stored)
    damaged[-3] ^= 0x10
    path.write_bytes(bytes(damaged))
    monkeypatch.setenv(ENV_KEY, KEY.hex())
    with pytest.raises(InvalidInput, match="integrity check"):
        SiteSecret.load_or_create(path)
    path.write_bytes(stored)
    assert SiteSecret.load_or_create(path) == secret


def test_a_clear_secret_is_refused_once_a_vault_exists_until_encrypted(tmp_path: Path) -> None:
    path = SiteSecret.path_in(tmp_path)
    secret = SiteSecret.load_or_create(path)  # no vault yet: in clear, as before
    assert path.read_bytes() == secret
    vault = init_vault(tmp_path).vault

    with pytest.raises(InvalidInput, match="vault init") as info:
        SiteSecret.load_or_create(path)
    assert info.value.code == "site_secret_not_encrypted"

    assert SiteSecret.encrypt_in_place(path, vault) is True
    assert secret not in path.read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SiteSecret.load_or_create(path) == secret  # same pseudonyms as before
    assert SiteSecret.encrypt_in_place(path, vault) is False


def test_vault_init_command_encrypts_the_secret_and_never_prints_the_key(
    cli: typer.Typer, tmp_path: Path
) -> None:
    home = tmp_path / "edge"
    home.mkdir()
    (home / "edge.toml").write_text('site_name = "site-a"\nhub_address = "h:1"\n')
    secret = SiteSecret.load_or_create(SiteSecret.path_in(home))

    result = runner.invoke(cli, ["vault", "init", "--home", str(home)])
    assert result.exit_code == 0, result.output
    key = parse_key((home / "vault.key").read_text(), "test")
    assert "encrypted the site secret" in result.output
    assert key.hex() not in result.output
    assert base64.b64encode(key).decode() not in result.output
    assert secret not in (home / "pipeline.key").read_bytes()
    assert SiteSecret.load_or_create(SiteSecret.path_in(home)) == secret

    status = runner.invoke(cli, ["vault", "status", "--home", str(home)])
    assert status.exit_code == 0, status.output
    assert "encrypted" in status.stdout
    assert Vault(key).key_id.hex() in status.stdout

    (home / "vault.key").write_text(OTHER.hex())
    status = runner.invoke(cli, ["vault", "init", "--home", str(home)])
    assert status.exit_code == 5  # Unauthenticated: a wrong key, said in one line
    assert "another vault key" in status.output
    assert "Traceback" not in status.output
