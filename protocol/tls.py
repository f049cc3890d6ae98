"""The consortium CA and mutual TLS for the edge–hub channel.

The CA signs one certificate per party. A certificate's common name is the
party's identity (the hub authorises nodes by it) and its organisational unit
is its role (`hub` or `edge`), so an edge certificate cannot serve as a hub.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared_cdm.errors import Conflict, InvalidInput, NotFound

Role = Literal["hub", "edge"]
_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


@dataclass(frozen=True)
class KeyPair:
    key_pem: bytes
    cert_pem: bytes


@dataclass(frozen=True)
class PeerIdentity:
    common_name: str
    role: str


def validate_party_name(name: str) -> str:
    if not name or len(name) > 64 or not set(name) <= _NAME_OK:
        raise InvalidInput(
            f"party name {name!r} must be 1-64 characters of letters, digits, '-', '_' or '.'"
        )
    return name


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def create_ca(common_name: str = "OncoFed Consortium CA", valid_days: int = 3650) -> KeyPair:
    key = _new_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "OncoFed"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return KeyPair(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def issue_certificate(
    ca: KeyPair,
    common_name: str,
    role: Role,
    *,
    dns_names: tuple[str, ...] = ("localhost",),
    ip_addresses: tuple[str, ...] = ("127.0.0.1",),
    valid_days: int = 825,
) -> KeyPair:
    """A leaf certificate for a hub (server and client auth) or an edge (client auth)."""
    validate_party_name(common_name)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise InvalidInput("the CA key is not an EC key made by `oncofed-ops ca init`")
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    key = _new_key()
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "OncoFed"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    sans: list[x509.GeneralName] = [x509.DNSName(common_name)]
    sans += [x509.DNSName(d) for d in dns_names if d != common_name]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if role == "hub":
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return KeyPair(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def identity_from_cert_pem(cert_pem: bytes) -> PeerIdentity:
    cert = x509.load_pem_x509_certificate(cert_pem)
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    ous = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    if not cns:
        raise InvalidInput("certificate has no common name")
    return PeerIdentity(str(cns[0].value), str(ous[0].value) if ous else "")


def peer_identity(context: grpc.ServicerContext) -> PeerIdentity | None:
    """The verified client certificate's identity, or None without one."""
    auth = context.auth_context()
    pems = auth.get("x509_pem_cert")
    if not pems:
        return None
    return identity_from_cert_pem(pems[0])


# --- files: a CA folder holds ca.key/ca.crt and NAME.key/NAME.crt per party ---


@dataclass(frozen=True)
class CaFolder:
    path: Path

    @property
    def ca_key(self) -> Path:
        return self.path / "ca.key"

    @property
    def ca_cert(self) -> Path:
        return self.path / "ca.crt"

    def party_key(self, name: str) -> Path:
        return self.path / f"{validate_party_name(name)}.key"

    def party_cert(self, name: str) -> Path:
        return self.path / f"{validate_party_name(name)}.crt"

    def load_ca(self) -> KeyPair:
        if not self.ca_key.exists() or not self.ca_cert.exists():
            raise NotFound(f"no CA in {self.path}: run `oncofed-ops ca init --dir {self.path}`")
        return KeyPair(self.ca_key.read_bytes(), self.ca_cert.read_bytes())

    def init(self, common_name: str = "OncoFed Consortium CA", *, force: bool = False) -> KeyPair:
        if self.ca_key.exists() and not force:
            raise Conflict(f"a CA already exists in {self.path}; refusing to overwrite it")
        self.path.mkdir(parents=True, exist_ok=True)
        pair = create_ca(common_name)
        write_private(self.ca_key, pair.key_pem)
        self.ca_cert.write_bytes(pair.cert_pem)
        return pair

    def issue(
        self,
        name: str,
        role: Role,
        *,
        dns_names: tuple[str, ...] = ("localhost",),
        ip_addresses: tuple[str, ...] = ("127.0.0.1",),
    ) -> KeyPair:
        pair = issue_certificate(
            self.load_ca(), name, role, dns_names=dns_names, ip_addresses=ip_addresses
        )
        write_private(self.party_key(name), pair.key_pem)
        self.party_cert(name).write_bytes(pair.cert_pem)
        return pair


def write_private(path: Path, data: bytes) -> None:
    """Write a secret readable by its owner only (0600 from creation on)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


@dataclass(frozen=True)
class TlsFiles:
    """The three files a party needs for mutual TLS."""

    ca_cert: Path
    cert: Path
    key: Path

    def read(self) -> tuple[bytes, bytes, bytes]:
        for p in (self.ca_cert, self.cert, self.key):
            if not p.exists():
                raise NotFound(f"TLS file {p} does not exist")
        return self.ca_cert.read_bytes(), self.cert.read_bytes(), self.key.read_bytes()


def server_credentials(files: TlsFiles) -> grpc.ServerCredentials:
    ca, cert, key = files.read()
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=True
    )


def channel_credentials(files: TlsFiles) -> grpc.ChannelCredentials:
    ca, cert, key = files.read()
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )
