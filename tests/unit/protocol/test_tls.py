import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from protocol import tls
from shared_cdm.errors import Conflict, InvalidInput, NotFound


def test_issued_certificate_carries_identity_and_role() -> None:
    ca = tls.create_ca()
    edge = tls.issue_certificate(ca, "hospital-a", "edge")
    hub = tls.issue_certificate(ca, "hub", "hub", ip_addresses=("127.0.0.1", "10.77.0.1"))
    assert tls.identity_from_cert_pem(edge.cert_pem) == tls.PeerIdentity("hospital-a", "edge")
    assert tls.identity_from_cert_pem(hub.cert_pem).role == "hub"
    cert = x509.load_pem_x509_certificate(hub.cert_pem)
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usages
    edge_usages = (
        x509.load_pem_x509_certificate(edge.cert_pem)
        .extensions.get_extension_for_class(x509.ExtendedKeyUsage)
        .value
    )
    assert ExtendedKeyUsageOID.SERVER_AUTH not in edge_usages
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "10.77.0.1" in [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]


def test_certificate_is_signed_by_its_ca_only() -> None:
    ca, other = tls.create_ca(), tls.create_ca("Other CA")
    leaf = x509.load_pem_x509_certificate(tls.issue_certificate(ca, "s1", "edge").cert_pem)
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.cert_pem))
    with pytest.raises(ValueError):
        leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(other.cert_pem))


@pytest.mark.parametrize("name", ["", "a b", "x/../y", "a" * 65, "名字"])
def test_bad_party_names_are_rejected(name: str) -> None:
    with pytest.raises(InvalidInput):
        tls.issue_certificate(tls.create_ca(), name, "edge")


def test_ca_folder_writes_private_keys_0600_and_refuses_overwrite(tmp_path: Path) -> None:
    folder = tls.CaFolder(tmp_path / "ca")
    folder.init()
    folder.issue("site-b", "edge")
    for key in (folder.ca_key, folder.party_key("site-b")):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert folder.party_cert("site-b").read_bytes().startswith(b"-----BEGIN CERTIFICATE")
    with pytest.raises(Conflict):
        folder.init()


def test_ca_folder_without_ca_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="ca init"):
        tls.CaFolder(tmp_path).issue("s", "edge")


def test_missing_tls_file_is_named(tmp_path: Path) -> None:
    files = tls.TlsFiles(tmp_path / "ca.crt", tmp_path / "x.crt", tmp_path / "x.key")
    with pytest.raises(NotFound, match=r"ca\.crt"):
        tls.server_credentials(files)
