import stat
from pathlib import Path

import pytest
from cryptography import x509
from typer.testing import CliRunner

from ops import ca
from ops.cli import app
from protocol.tls import identity_from_cert_pem
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
