import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from ops import ca
from ops.cli import app
from protocol.tls import CaFolder, identity_from_cert_pem
from shared_cdm.errors import EXIT_CODES, Conflict, ErrorKind, InvalidInput, NotFound

runner = CliRunner()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_writes_ca_with_private_key_0600(tmp_path: Path) -> None:
    cert = ca.init_ca(tmp_path / "ca")
    assert cert == tmp_path / "ca" / "ca.crt"
    assert b"BEGIN CERTIFICATE" in cert.read_bytes()
    assert _mode(tmp_path / "ca" / "ca.key") == 0o600


def test_init_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    first = ca.init_ca(tmp_path).read_bytes()
    with pytest.raises(Conflict):
        ca.init_ca(tmp_path)
    assert (tmp_path / "ca.crt").read_bytes() == first
    ca.init_ca(tmp_path, force=True)
    assert (tmp_path / "ca.crt").read_bytes() != first


def test_issue_writes_certificate_for_name_role_and_addresses(tmp_path: Path) -> None:
    ca.init_ca(tmp_path)
    issued = ca.issue(tmp_path, "hub", "hub", dns_names=("hub.vpn",), ip_addresses=("10.7.0.1",))
    assert _mode(issued.key) == 0o600
    pem = issued.cert.read_bytes()
    assert identity_from_cert_pem(pem).common_name == "hub"
    assert identity_from_cert_pem(pem).role == "hub"
    sans = (
        x509.load_pem_x509_certificate(pem)
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value
    )
    assert "hub.vpn" in sans.get_values_for_type(x509.DNSName)
    assert [str(i) for i in sans.get_values_for_type(x509.IPAddress)] == ["10.7.0.1"]


def test_issue_defaults_to_loopback_names(tmp_path: Path) -> None:
    ca.init_ca(tmp_path)
    issued = ca.issue(tmp_path, "riverside")
    cert = x509.load_pem_x509_certificate(issued.cert.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"riverside", "localhost"} <= set(sans.get_values_for_type(x509.DNSName))
    assert identity_from_cert_pem(issued.cert.read_bytes()).role == "edge"


def test_issue_without_ca_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        ca.issue(tmp_path, "riverside")


@pytest.mark.parametrize(
    "bad", [("site one", "edge", ()), ("s", "admin", ()), ("s", "edge", ("x",))]
)
def test_issue_rejects_bad_names_roles_and_addresses(
    tmp_path: Path, bad: tuple[str, str, tuple[str, ...]]
) -> None:
    ca.init_ca(tmp_path)
    name, role, ips = bad
    with pytest.raises(InvalidInput):
        ca.issue(tmp_path, name, ca.parse_role(role), ip_addresses=ips)


def test_cli_init_then_issue_never_prints_a_key(tmp_path: Path) -> None:
    done = runner.invoke(app, ["ca", "init", "--dir", str(tmp_path)])
    assert done.exit_code == 0, done.output
    issued = runner.invoke(
        app, ["ca", "issue", "--dir", str(tmp_path), "--site", "lakeview", "--ip", "10.0.0.2"]
    )
    assert issued.exit_code == 0, issued.output
    assert "PRIVATE KEY" not in done.output + issued.output
    assert str(tmp_path / "lakeview.key") in issued.stdout
    assert _mode(tmp_path / "lakeview.key") == 0o600


def test_cli_second_init_fails_with_one_line_and_conflict_code(tmp_path: Path) -> None:
    runner.invoke(app, ["ca", "init", "--dir", str(tmp_path)])
    again = runner.invoke(app, ["ca", "init", "--dir", str(tmp_path)])
    assert again.exit_code == EXIT_CODES[ErrorKind.CONFLICT]
    assert len(again.stderr.strip().splitlines()) == 1
    assert "refusing to overwrite" in again.stderr
    forced = runner.invoke(app, ["ca", "init", "--dir", str(tmp_path), "--force"])
    assert forced.exit_code == 0


def test_cli_issue_with_unknown_role_is_invalid_input(tmp_path: Path) -> None:
    runner.invoke(app, ["ca", "init", "--dir", str(tmp_path)])
    bad = runner.invoke(
        app, ["ca", "issue", "--dir", str(tmp_path), "--site", "x", "--role", "root"]
    )
    assert bad.exit_code == EXIT_CODES[ErrorKind.INVALID]
    assert not (tmp_path / "x.crt").exists()


def _crl(directory: Path) -> x509.CertificateRevocationList:
    return x509.load_pem_x509_crl((directory / ca.CRL_FILE).read_bytes())


def _ca_with_sites(directory: Path, *names: str) -> None:
    ca.init_ca(directory)
    for name in names:
        ca.issue(directory, name)


def test_cli_revoke_prints_name_serial_list_and_next_step(tmp_path: Path) -> None:
    _ca_with_sites(tmp_path, "lakeview", "riverside")
    serial = x509.load_pem_x509_certificate((tmp_path / "lakeview.crt").read_bytes()).serial_number
    done = runner.invoke(app, ["ca", "revoke", "lakeview", "--dir", str(tmp_path)])
    assert done.exit_code == 0, done.output
    crl = _crl(tmp_path)
    assert [e.serial_number for e in crl] == [serial]
    next_update = crl.next_update_utc
    assert next_update is not None
    assert f"revoked: lakeview (certificate serial {serial:x})" in done.stdout
    assert str(tmp_path / ca.CRL_FILE) in done.stdout
    assert f"next update {next_update:%Y-%m-%d %H:%M:%S}Z" in done.stdout
    assert "hub's tls/ folder" in done.stdout
    assert f"ca renew-crl --dir {tmp_path}" in done.stdout


@pytest.mark.parametrize(
    ("setup", "name", "kind", "message"),
    [
        (True, "site-z", ErrorKind.NOT_FOUND, "no certificate for 'site-z'"),
        (False, "lakeview", ErrorKind.NOT_FOUND, "no CA in"),
        (True, "../lakeview", ErrorKind.INVALID, "party name '../lakeview'"),
    ],
)
def test_cli_revoke_failures_are_one_line_with_the_error_code(
    tmp_path: Path, setup: bool, name: str, kind: ErrorKind, message: str
) -> None:
    if setup:
        _ca_with_sites(tmp_path, "lakeview")
    failed = runner.invoke(app, ["ca", "revoke", name, "--dir", str(tmp_path)])
    assert failed.exit_code == EXIT_CODES[kind]
    assert message in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1
    assert "Traceback" not in failed.output
    assert not (tmp_path / ca.CRL_FILE).exists()


def test_cli_renew_crl_keeps_entries_and_moves_next_update(tmp_path: Path) -> None:
    _ca_with_sites(tmp_path, "lakeview", "riverside")
    ca.revoke(tmp_path, "lakeview")
    ca.revoke(tmp_path, "riverside")
    # Back-date the list (as if signed 300 days ago) so the renewal visibly moves it.
    old = _crl(tmp_path)
    pair = CaFolder(tmp_path).load_ca()
    key = serialization.load_pem_private_key(pair.key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    signed_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=300)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(old.issuer)
        .last_update(signed_at)
        .next_update(signed_at + dt.timedelta(days=ca.CRL_VALID_DAYS))
    )
    for entry in old:
        builder = builder.add_revoked_certificate(entry)
    (tmp_path / ca.CRL_FILE).write_bytes(
        builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    )
    before = _crl(tmp_path)

    done = runner.invoke(app, ["ca", "renew-crl", "--dir", str(tmp_path)])
    assert done.exit_code == 0, done.output
    after = _crl(tmp_path)
    entries = {(e.serial_number, e.revocation_date_utc) for e in after}
    assert entries == {(e.serial_number, e.revocation_date_utc) for e in before}
    assert len(entries) == 2
    assert after.is_signature_valid(key.public_key())
    assert before.next_update_utc is not None and after.next_update_utc is not None
    moved = after.next_update_utc - before.next_update_utc
    assert dt.timedelta(days=299) < moved < dt.timedelta(days=301)
    assert "2 revoked" in done.stdout
    assert f"next update {after.next_update_utc:%Y-%m-%d %H:%M:%S}Z" in done.stdout


def test_cli_renew_crl_without_a_list_or_with_a_foreign_one_fails_clearly(tmp_path: Path) -> None:
    _ca_with_sites(tmp_path / "ca", "lakeview")
    missing = runner.invoke(app, ["ca", "renew-crl", "--dir", str(tmp_path / "ca")])
    assert missing.exit_code == EXIT_CODES[ErrorKind.NOT_FOUND]
    assert "nothing has been revoked" in missing.stderr
    assert not (tmp_path / "ca" / ca.CRL_FILE).exists()

    _ca_with_sites(tmp_path / "other", "lakeview")
    ca.revoke(tmp_path / "other", "lakeview")
    foreign = (tmp_path / "other" / ca.CRL_FILE).read_bytes()
    (tmp_path / "ca" / ca.CRL_FILE).write_bytes(foreign)
    refused = runner.invoke(app, ["ca", "renew-crl", "--dir", str(tmp_path / "ca")])
    assert refused.exit_code == EXIT_CODES[ErrorKind.INVALID]
    assert "not signed by this CA" in refused.stderr
    assert (tmp_path / "ca" / ca.CRL_FILE).read_bytes() == foreign

    (tmp_path / "ca" / ca.CRL_FILE).write_text("not a CRL", encoding="utf-8")
    garbled = runner.invoke(app, ["ca", "renew-crl", "--dir", str(tmp_path / "ca")])
    assert garbled.exit_code == EXIT_CODES[ErrorKind.INVALID]
    assert "is not a PEM CRL" in garbled.stderr
    assert "Traceback" not in garbled.output
