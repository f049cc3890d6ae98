"""Users, roles and the honest broker, through the commands as an operator uses them,
on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
import typer
from sqlalchemy import Engine
from typer.testing import CliRunner, Result

from edge_node.pipeline.sealed import REID_AAD, aad, seal_with
from edge_node.pipeline.state import ReidEntry
from edge_node.security.audit import AuditLog
from edge_node.security.models import EdgeUser
from edge_node.security.users import Role, authorize, hash_token
from edge_node.security.vault import ENV_KEY, Vault, init_vault
from edge_node.store.database import open_state_db
from shared_cdm.db import session_factory
from shared_cdm.errors import Forbidden, Unauthenticated

MERGED = "0123456789abcdef0123456789abcdef"  # two master records, one person
SINGLE = "fedcba9876543210fedcba9876543210"
runner = CliRunner()


@dataclass
class Site:
    cli: typer.Typer
    home: Path
    state: Engine
    tokens: dict[str, str]

    def run(self, *args: str, token: str | None = None, vault_key: str | None = None) -> Result:
        env = {"ONCOFED_EDGE_TOKEN": token} if token else {}
        if vault_key is not None:
            env[ENV_KEY] = vault_key
        return runner.invoke(self.cli, [*args, "--home", str(self.home)], env=env or None)

    def audit(self, action: str = "reidentify") -> list[tuple[str, str, str, str]]:
        return [
            (e.actor, e.role, e.target, str(e.details.get("outcome")))
            for e in AuditLog(self.state).entries(action=action)
        ]


def _entry(vault: Vault, patient_id: str, person_key: str) -> ReidEntry:
    """A row of the sealed map as the pipeline writes it (the hash stands in for the
    link hash: only its binding to the ciphertext matters here)."""
    patient_hash = f"h-{patient_id}"
    return ReidEntry(
        patient_hash=patient_hash,
        person_key=person_key,
        sealed_id=seal_with(vault, patient_id, aad(REID_AAD, person_key, patient_hash)),
    )


@pytest.fixture
def site(cli: typer.Typer, edge_home: Path, db_url: str) -> Iterator[Site]:
    state = open_state_db(db_url)
    vault = init_vault(edge_home).vault  # HOME/vault.key, as `oncofed-edge init` writes it
    with session_factory(state)() as session, session.begin():
        session.add_all(
            [
                _entry(vault, "P000123", MERGED),
                _entry(vault, "P000999", MERGED),
                _entry(vault, "P000500", SINGLE),
            ]
        )
    site = Site(cli, edge_home, state, {})
    first = site.run("users", "add", "olga", "--role", "site_operator")
    assert first.exit_code == 0, first.output
    site.tokens["olga"] = first.stdout.strip()
    for name, role in [("carl", "clinician"), ("hana", "honest_broker")]:
        added = site.run("users", "add", name, "--role", role, token=site.tokens["olga"])
        assert added.exit_code == 0, added.output
        site.tokens[name] = added.stdout.strip()
    try:
        yield site
    finally:
        state.dispose()


def test_tokens_are_shown_once_and_stored_only_as_hashes(site: Site) -> None:
    with site.state.connect() as conn:
        rows = conn.execute(sa.select(EdgeUser.name, EdgeUser.token_hash)).all()
        dump = "\n".join(str(r) for r in conn.execute(sa.text("SELECT * FROM edge_users")))
        audit = "\n".join(str(r) for r in conn.execute(sa.text("SELECT * FROM edge_audit_log")))
    assert {name: digest for name, digest in rows} == {
        n: hash_token(t) for n, t in site.tokens.items()
    }
    for token in site.tokens.values():
        assert token.startswith("oet_")
        assert token not in dump
        assert token not in audit
    listed = site.run("users", "list", token=site.tokens["olga"])
    assert listed.exit_code == 0, listed.output
    assert "hana\thonest_broker\t" in listed.stdout
    for token in site.tokens.values():
        assert token not in listed.output


def test_clinician_and_operator_are_refused_and_the_broker_gets_the_ids(site: Site) -> None:
    for name in ("carl", "olga"):
        refused = site.run("reidentify", MERGED, token=site.tokens[name])
        assert refused.exit_code == 5, refused.output
        assert "honest_broker role" in refused.output
        assert "P000123" not in refused.output

    granted = site.run("reidentify", MERGED.upper(), "--reason", "REQ-7", token=site.tokens["hana"])
    assert granted.exit_code == 0, granted.output
    assert granted.stdout.split() == ["P000123", "P000999"]
    single = site.run("reidentify", SINGLE, token=site.tokens["hana"])
    assert single.stdout.split() == ["P000500"]

    assert site.audit() == [
        ("carl", "clinician", MERGED, "refused"),
        ("olga", "site_operator", MERGED, "refused"),
        ("hana", "honest_broker", MERGED, "granted"),
        ("hana", "honest_broker", SINGLE, "granted"),
    ]
    entries = AuditLog(site.state).entries(action="reidentify")
    assert entries[2].details == {"outcome": "granted", "patients": 2, "reason": "REQ-7"}
    for entry in entries:
        assert "P000" not in str(entry.details)  # the audit log names no patient ID
    assert AuditLog(site.state).verify().ok


def test_no_token_a_bad_token_and_an_unknown_pseudonym(site: Site) -> None:
    missing = site.run("reidentify", MERGED)
    assert missing.exit_code == 5
    assert "--token" in missing.output
    bad = site.run("reidentify", MERGED, token="oet_not-a-token")
    assert bad.exit_code == 5
    assert "not valid" in bad.output
    unknown = site.run("reidentify", "ab" * 16, token=site.tokens["hana"])
    assert unknown.exit_code == 4
    assert "no patient has the pseudonym" in unknown.output
    malformed = site.run("reidentify", "P000123", token=site.tokens["hana"])
    assert malformed.exit_code == 3
    outcomes = [(actor, outcome) for actor, _, _, outcome in site.audit()]
    assert outcomes[0][1] == outcomes[1][1] == "refused"
    assert outcomes[1][0] == "unknown-token"
    assert outcomes[2:] == [("hana", "not_found"), ("hana", "invalid")]


def test_a_disabled_user_is_refused(site: Site) -> None:
    assert site.run("reidentify", SINGLE, token=site.tokens["hana"]).exit_code == 0
    refused = site.run("users", "disable", "hana", token=site.tokens["carl"])
    assert refused.exit_code == 5  # only a site operator disables users
    disabled = site.run("users", "disable", "hana", token=site.tokens["olga"])
    assert disabled.exit_code == 0, disabled.output

    after = site.run("reidentify", SINGLE, token=site.tokens["hana"])
    assert after.exit_code == 5
    assert "disabled" in after.output
    assert "P000500" not in after.output
    assert site.audit()[-1] == ("hana", "honest_broker", SINGLE, "refused")
    listed = site.run("users", "list", token=site.tokens["olga"])
    assert "hana\thonest_broker\t" in listed.stdout
    assert listed.stdout.strip().splitlines()[2].endswith("disabled")


def test_only_operators_manage_users_and_the_first_user_must_be_one(
    site: Site, cli: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_clinician = site.run(
        "users", "add", "eve", "--role", "honest_broker", token=site.tokens["carl"]
    )
    assert by_clinician.exit_code == 5
    without_token = site.run("users", "add", "eve", "--role", "site_operator")
    assert without_token.exit_code == 5  # no bootstrap once an operator exists
    assert site.run("users", "list", token=site.tokens["hana"]).exit_code == 5
    dup = site.run("users", "add", "carl", "--role", "clinician", token=site.tokens["olga"])
    assert dup.exit_code == 6
    bad_role = site.run("users", "add", "x", "--role", "admin", token=site.tokens["olga"])
    assert bad_role.exit_code == 3
    added = site.audit("users.add")
    assert added[0][0].startswith("local:")  # the bootstrap operator, by OS user
    assert [outcome for *_, outcome in added].count("refused") == 2

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "edge.toml").write_text('site_name = "site-b"\nhub_address = "h:1"\n')
    monkeypatch.setenv("ONCOFED_EDGE_STATE_DB_URL", f"sqlite:///{fresh / 'edge.db'}")
    first = runner.invoke(
        cli, ["users", "add", "hana", "--role", "honest_broker", "--home", str(fresh)]
    )
    assert first.exit_code == 5
    assert "first user must have the site_operator role" in first.output


def test_authorize_checks_roles_not_a_hierarchy(site: Site) -> None:
    with session_factory(site.state)() as session:
        assert authorize(session, site.tokens["olga"], Role.SITE_OPERATOR).name == "olga"
        assert authorize(session, site.tokens["carl"], {Role.CLINICIAN, Role.HONEST_BROKER})
        with pytest.raises(Forbidden):
            authorize(session, site.tokens["olga"], Role.CLINICIAN)
        with pytest.raises(Unauthenticated):
            authorize(session, None, Role.CLINICIAN)


def test_a_wrong_vault_key_fails_loudly_and_reveals_nothing(site: Site) -> None:
    other = "11" * 32
    failed = site.run("reidentify", MERGED, token=site.tokens["hana"], vault_key=other)
    assert failed.exit_code == 5, failed.output
    assert "another vault key" in failed.output
    assert "Traceback" not in failed.output
    assert "P000" not in failed.output
    assert site.audit()[-1] == ("hana", "honest_broker", MERGED, "failed")
    # the right key still answers
    granted = site.run("reidentify", MERGED, token=site.tokens["hana"])
    assert granted.stdout.split() == ["P000123", "P000999"]


def _sealed(site: Site) -> dict[str, str]:
    with site.state.connect() as conn:
        return dict(conn.execute(sa.select(ReidEntry.patient_hash, ReidEntry.sealed_id)).all())


def _set_sealed(site: Site, patient_hash: str, sealed: str) -> None:
    with site.state.begin() as conn:
        conn.execute(
            sa.update(ReidEntry)
            .where(ReidEntry.patient_hash == patient_hash)
            .values(sealed_id=sealed)
        )


def test_an_altered_entry_is_detected_not_answered(site: Site) -> None:
    sealed = _sealed(site)["h-P000500"]
    raw = bytearray(base64.b64decode(sealed))
    raw[-1] ^= 0x01  # one bit of the ciphertext
    _set_sealed(site, "h-P000500", base64.b64encode(bytes(raw)).decode())
    failed = site.run("reidentify", SINGLE, token=site.tokens["hana"])
    assert failed.exit_code == 3, failed.output
    assert "integrity check" in failed.output
    assert "Traceback" not in failed.output


def test_ciphertexts_swapped_between_rows_are_detected(site: Site) -> None:
    sealed = _sealed(site)
    # P000500's ID moved under MERGED's pseudonym, and one of MERGED's under SINGLE's
    _set_sealed(site, "h-P000500", sealed["h-P000123"])
    _set_sealed(site, "h-P000123", sealed["h-P000500"])
    for pseudonym in (MERGED, SINGLE):
        failed = site.run("reidentify", pseudonym, token=site.tokens["hana"])
        assert failed.exit_code == 3, failed.output
        assert "integrity check" in failed.output
        assert "P000" not in failed.output


def test_without_a_vault_key_the_role_check_still_comes_first_and_is_audited(
    site: Site,
) -> None:
    (site.home / "vault.key").rename(site.home / "vault.key.away")
    refused = site.run("reidentify", MERGED, token=site.tokens["carl"])
    assert refused.exit_code == 5, refused.output
    assert "honest_broker role" in refused.output
    failed = site.run("reidentify", MERGED, token=site.tokens["hana"])
    assert failed.exit_code != 0
    assert "no vault key" in failed.output
    assert "P000" not in failed.output
    assert site.audit()[-2:] == [
        ("carl", "clinician", MERGED, "refused"),
        ("hana", "honest_broker", MERGED, "failed"),
    ]
