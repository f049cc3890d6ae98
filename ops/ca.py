"""`oncofed-ops ca`: thin commands over `protocol.tls.CaFolder`.

Private keys are written 0600 by `protocol.tls.write_private` and never
returned to the caller as text, so nothing here can print one by accident.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from protocol.tls import CaFolder, Role, validate_party_name
from shared_cdm.errors import InvalidInput

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
