"""`oncofed-ops ca`: thin commands over `protocol.tls.CaFolder`.

`revoke` adds a party's certificate to the CA's revocation list (`crl.pem`, a
CRL signed by the CA key); copy that file into the hub's `tls/` folder and the
hub refuses the certificate from its next call on. `renew_crl` re-signs the list
unchanged with a later next update: the hub refuses everyone once it has passed.

Private keys are written 0600 by `protocol.tls.write_private` and never
returned to the caller as text, so nothing here can print one by accident.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from protocol.tls import CaFolder, Role, validate_party_name
from shared_cdm.errors import InvalidInput, NotFound

# The hub reads this file beside the CA certificate it trusts (hub.auth.RevocationList).
CRL_FILE = "crl.pem"
CRL_VALID_DAYS = 365

_ROLES: tuple[Role, ...] = ("edge", "hub")


@dataclass(frozen=True)
class IssuedFiles:
    """Where a party's certificate and key were written."""

    name: str
    role: Role
    cert: Path
    key: Path


def init_ca(directory: Path, *, force: bool = False) -> Path:
    """Make a consortium CA in `directory`; returns the CA certificate's path."""
    folder = CaFolder(directory)
    folder.init(force=force)
    return folder.ca_cert


def parse_role(value: str) -> Role:
    for role in _ROLES:
        if value == role:
            return role
    raise InvalidInput(f"role {value!r} must be one of: {', '.join(_ROLES)}")


def issue(
    directory: Path,
    name: str,
    role: Role = "edge",
    *,
    dns_names: tuple[str, ...] = (),
    ip_addresses: tuple[str, ...] = (),
) -> IssuedFiles:
    """Issue NAME's certificate from the CA in `directory`.

    Without explicit names the certificate answers to localhost and 127.0.0.1,
    which is what a federation on one machine needs.
    """
    folder = CaFolder(directory)
    validate_party_name(name)
    for address in ip_addresses:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise InvalidInput(f"{address!r} is not an IP address") from None
    folder.issue(
        name,
        role,
        dns_names=dns_names or ("localhost",),
        ip_addresses=ip_addresses or ("127.0.0.1",),
    )
    return IssuedFiles(name, role, folder.party_cert(name), folder.party_key(name))


@dataclass(frozen=True)
class Revoked:
    name: str
    serial: int
    crl: Path
    next_update: dt.datetime


@dataclass(frozen=True)
class CrlSigned:
    """A freshly signed `crl.pem`: where it is, how many entries, when it lapses."""

    crl: Path
    entries: int
    next_update: dt.datetime


def revoke(directory: Path, name: str) -> Revoked:
    """Add NAME's current certificate to the CA's CRL (re-signed); revoking twice is harmless."""
    folder = CaFolder(directory)
    folder.load_ca()  # no CA: say so before looking for NAME
    cert_path = folder.party_cert(name)
    if not cert_path.is_file():
        raise NotFound(f"no certificate for {name!r} in {directory}")
    serial = x509.load_pem_x509_certificate(cert_path.read_bytes()).serial_number
    now = dt.datetime.now(dt.UTC)

    def add(entries: list[x509.RevokedCertificate]) -> list[x509.RevokedCertificate]:
        if serial in {e.serial_number for e in entries}:
            return entries
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        return [*entries, entry]

    signed = _resign(folder, add, now=now, create=True)
    return Revoked(name, serial, signed.crl, signed.next_update)


def renew_crl(directory: Path) -> CrlSigned:
    """Re-sign the CA's CRL with the same entries and a next update CRL_VALID_DAYS away.

    The hub refuses every node once the CRL's next update has passed, so this must
    run well before then (e.g. from a monthly timer).
    """
    return _resign(CaFolder(directory), lambda entries: entries, create=False)


def _resign(
    folder: CaFolder,
    change: Callable[[list[x509.RevokedCertificate]], list[x509.RevokedCertificate]],
    *,
    now: dt.datetime | None = None,
    create: bool,
) -> CrlSigned:
    pair = folder.load_ca()
    ca_cert = x509.load_pem_x509_certificate(pair.cert_pem)
    ca_key = serialization.load_pem_private_key(pair.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise InvalidInput("the CA key is not an EC key made by `oncofed-ops ca init`")
    path = folder.path / CRL_FILE
    now = now or dt.datetime.now(dt.UTC)
    entries: list[x509.RevokedCertificate] = []
    if path.is_file():
        try:
            old = x509.load_pem_x509_crl(path.read_bytes())
        except ValueError:
            raise InvalidInput(f"{path} is not a PEM CRL; refusing to replace it") from None
        if not old.is_signature_valid(ca_key.public_key()):
            raise InvalidInput(f"{path} is not signed by this CA; refusing to extend it")
        entries = list(old)
    elif not create:
        raise NotFound(
            f"no {CRL_FILE} in {folder.path}: nothing has been revoked, so there is no "
            "list to renew (`oncofed-ops ca revoke NAME` makes one)"
        )
    entries = change(entries)
    next_update = now + dt.timedelta(days=CRL_VALID_DAYS)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now)
        .next_update(next_update)
    )
    for entry in entries:
        builder = builder.add_revoked_certificate(entry)
    crl = builder.sign(ca_key, hashes.SHA256())
    tmp = path.with_name(f".{CRL_FILE}.tmp")
    tmp.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    tmp.replace(path)  # the hub never reads half a file
    # The CRL format keeps whole seconds; report what the file says.
    return CrlSigned(path, len(entries), crl.next_update_utc or next_update)
