"""Certificate revocation: `ops.ca.revoke` (and `oncofed-ops ca revoke`) writes a CRL
signed by the CA, and the hub's `RevocationList` refuses exactly the revoked
certificates, re-reading the file when it changes and refusing everyone when the list
is not the CA's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography import x509
from typer.testing import CliRunner

from hub.auth import CRL_FILE_NAME, RevocationList
from ops import ca
from ops.cli import app
from protocol.tls import CaFolder
from shared_cdm.errors import InvalidInput, NotFound, Unauthenticated


@pytest.fixture
def folder(tmp_path: Path) -> CaFolder:
    ca.init_ca(tmp_path / "ca")
    for name in ("site-a", "site-b"):
        ca.issue(tmp_path / "ca", name)
    return CaFolder(tmp_path / "ca")


def hub_list(folder: CaFolder, tls: Path) -> RevocationList:
    tls.mkdir(exist_ok=True)
    shutil.copyfile(folder.ca_cert, tls / "ca.crt")
    return RevocationList(tls / CRL_FILE_NAME, tls / "ca.crt")


def test_revoked_certificate_is_refused_and_others_are_not(
    folder: CaFolder, tmp_path: Path
) -> None:
    revocations = hub_list(folder, tmp_path / "tls")
    a, b = folder.party_cert("site-a").read_bytes(), folder.party_cert("site-b").read_bytes()
    revocations.check(a)  # no list yet: nothing is revoked

    record = ca.revoke(folder.path, "site-a")
    shutil.copyfile(record.crl, tmp_path / "tls" / CRL_FILE_NAME)
    with pytest.raises(Unauthenticated, match=f"site-a .serial {record.serial:x}. is revoked"):
        revocations.check(a)
    revocations.check(b)

    # Revoking again keeps one entry; revoking another adds it (the file is re-read).
    assert ca.revoke(folder.path, "site-a").serial == record.serial
    ca.revoke(folder.path, "site-b")
    shutil.copyfile(record.crl, tmp_path / "tls" / CRL_FILE_NAME)
    for cert in (a, b):
        with pytest.raises(Unauthenticated, match="is revoked"):
            revocations.check(cert)


def test_a_list_not_signed_by_the_ca_refuses_everyone(folder: CaFolder, tmp_path: Path) -> None:
    other = tmp_path / "other-ca"
    ca.init_ca(other)
    ca.issue(other, "site-a")
    foreign = ca.revoke(other, "site-a")
    revocations = hub_list(folder, tmp_path / "tls")
    shutil.copyfile(foreign.crl, tmp_path / "tls" / CRL_FILE_NAME)
    with pytest.raises(Unauthenticated) as refused:
        revocations.check(folder.party_cert("site-b").read_bytes())
    assert refused.value.code == "revocation_list_unusable"
    # Nor will the CA extend a list it did not sign.
    shutil.copyfile(foreign.crl, folder.path / ca.CRL_FILE)
    with pytest.raises(InvalidInput, match="not signed by this CA"):
        ca.revoke(folder.path, "site-a")


def test_revoking_an_unknown_party_is_a_clear_error(folder: CaFolder) -> None:
    with pytest.raises(NotFound, match="no certificate for 'site-z'"):
        ca.revoke(folder.path, "site-z")
    assert not (folder.path / ca.CRL_FILE).exists()


def test_cli_revoke_and_renewal_are_honoured_by_the_hub(folder: CaFolder, tmp_path: Path) -> None:
    revocations = hub_list(folder, tmp_path / "tls")
    a, b = folder.party_cert("site-a").read_bytes(), folder.party_cert("site-b").read_bytes()
    serial = x509.load_pem_x509_certificate(a).serial_number
    revoked = CliRunner().invoke(app, ["ca", "revoke", "site-a", "--dir", str(folder.path)])
    assert revoked.exit_code == 0, revoked.output
    assert f"serial {serial:x}" in revoked.stdout
    shutil.copyfile(folder.path / ca.CRL_FILE, tmp_path / "tls" / CRL_FILE_NAME)
    with pytest.raises(Unauthenticated, match="is revoked"):
        revocations.check(a)
    revocations.check(b)

    # A renewed list is a new file with the same entries: still refused, others still let in.
    renewed = CliRunner().invoke(app, ["ca", "renew-crl", "--dir", str(folder.path)])
    assert renewed.exit_code == 0, renewed.output
    shutil.copyfile(folder.path / ca.CRL_FILE, tmp_path / "tls" / CRL_FILE_NAME)
    with pytest.raises(Unauthenticated, match="is revoked"):
        revocations.check(a)
    revocations.check(b)
