"""`oncofed-ops vpn`: WireGuard keys, the address plan and wg-quick configs.

One folder (the hub operator's) holds everything:

    plan.json               subnet, hub endpoint, every site's address and public key,
                            and the revocations (public keys only: safe to read)
    hub/private.key         the hub's key (0600)
    hub/oncofed.conf        the hub's wg-quick config, a [Peer] per enrolled site (0600)
    sites/NAME/private.key  NAME's key (0600), made once and never re-issued
    sites/NAME/oncofed.conf what NAME installs as /etc/wireguard/oncofed.conf (0600)

Keys are X25519 in WireGuard's format (base64 of 32 bytes, clamped as `wg
genkey` does). Private keys are only ever written to 0600 files, never
returned as text to a caller that prints. Every change takes a lock on the
folder and replaces files atomically, so two operators cannot interleave.
"""

from __future__ import annotations

import base64
import fcntl
import ipaddress
import json
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from protocol.tls import validate_party_name, write_private
from shared_cdm.errors import Conflict, InvalidInput, NotFound

PLAN_FILE = "plan.json"
INTERFACE = "oncofed"  # wg-quick names the interface after the config file
CONFIG_FILE = f"{INTERFACE}.conf"
DEFAULT_SUBNET = "10.77.0.0/24"
DEFAULT_PORT = 51820
KEEPALIVE_S = 25  # edges sit behind hospital NAT; keepalives hold the mapping open
_RESERVED = frozenset({"hub"})
# Keys wg-quick understands and `wg setconf` does not.
_QUICK_ONLY = frozenset(
    {"address", "dns", "mtu", "table", "preup", "postup", "predown", "postdown", "saveconfig"}
)
_KEY_RE = re.compile(r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw480]=$")


# --- keys ---


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def generate_private_key() -> str:
    """A WireGuard private key, clamped like `wg genkey`."""
    raw = bytearray(os.urandom(32))
    raw[0] &= 248
    raw[31] = (raw[31] & 127) | 64
    return _b64(bytes(raw))


def public_key(private: str) -> str:
    """The public key of a WireGuard private key (what `wg pubkey` prints)."""
    check_key(private)
    key = X25519PrivateKey.from_private_bytes(base64.b64decode(private))
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _b64(raw)


def generate_preshared_key() -> str:
    return _b64(os.urandom(32))


def check_key(text: str) -> str:
    if not _KEY_RE.match(text):
        raise InvalidInput("not a WireGuard key (base64 of 32 bytes)")
    return text


# --- the plan ---


@dataclass(frozen=True)
class SitePlan:
    name: str
    address: str
    public_key: str


@dataclass(frozen=True)
class Revocation:
    name: str
    address: str
    public_key: str
    revoked_at: str


@dataclass(frozen=True)
class VpnPlan:
    subnet: str
    endpoint: str | None
    listen_port: int
    hub_address: str
    hub_public_key: str
    sites: tuple[SitePlan, ...]
    revoked: tuple[Revocation, ...]

    @property
    def prefix_length(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen

    def site(self, name: str) -> SitePlan | None:
        return next((s for s in self.sites if s.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "subnet": self.subnet,
            "endpoint": self.endpoint,
            "listen_port": self.listen_port,
            "hub": {"address": self.hub_address, "public_key": self.hub_public_key},
            "sites": [vars(s) for s in self.sites],
            "revoked": [vars(r) for r in self.revoked],
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> VpnPlan:
        try:
            return cls(
                subnet=str(raw["subnet"]),
                endpoint=None if raw.get("endpoint") is None else str(raw["endpoint"]),
                listen_port=int(raw["listen_port"]),
                hub_address=str(raw["hub"]["address"]),
                hub_public_key=str(raw["hub"]["public_key"]),
                sites=tuple(SitePlan(**s) for s in raw.get("sites", [])),
                revoked=tuple(Revocation(**r) for r in raw.get("revoked", [])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"the VPN plan is damaged: {exc}") from None


@dataclass(frozen=True)
class VpnFolder:
    root: Path

    @property
    def plan_file(self) -> Path:
        return self.root / PLAN_FILE

    @property
    def hub_key(self) -> Path:
        return self.root / "hub" / "private.key"

    @property
    def hub_config(self) -> Path:
        return self.root / "hub" / CONFIG_FILE

    def site_dir(self, name: str) -> Path:
        return self.root / "sites" / name

    def site_key(self, name: str) -> Path:
        return self.site_dir(name) / "private.key"

    def site_psk(self, name: str) -> Path:
        return self.site_dir(name) / "preshared.key"

    def site_config(self, name: str) -> Path:
        return self.site_dir(name) / CONFIG_FILE

    def exists(self) -> bool:
        return self.plan_file.is_file()

    def load(self) -> VpnPlan:
        if not self.exists():
            raise NotFound(
                f"no VPN plan in {self.root}; run `oncofed-ops vpn init --dir {self.root}`"
            )
        try:
            raw = json.loads(self.plan_file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"{self.plan_file} is not JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise InvalidInput(f"{self.plan_file} must hold a JSON object")
        return VpnPlan.from_json(raw)

    def save(self, plan: VpnPlan) -> None:
        _atomic_write(self.plan_file, json.dumps(plan.to_json(), indent=2) + "\n", private=False)

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def _atomic_write(path: Path, text: str, *, private: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if private:
        write_private(tmp, text.encode("utf-8"))
    else:
        tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _read_key(path: Path) -> str:
    if not path.is_file():
        raise NotFound(f"key file {path} is missing")
    return check_key(path.read_text(encoding="ascii").strip())


# --- checks ---


def parse_subnet(value: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise InvalidInput(f"subnet {value!r} is not a network address: {exc}") from None
    if not isinstance(net, ipaddress.IPv4Network) or not net.is_private:
        raise InvalidInput(f"subnet {value!r} must be a private IPv4 network (RFC 1918)")
    if net.prefixlen > 29:
        raise InvalidInput(f"subnet {value!r} is too small; use /29 or larger")
    return net


def parse_endpoint(value: str) -> str:
    """HOST:PORT (a name, an IPv4 address or [IPv6]); returned unchanged."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput(f"endpoint {value!r} must look like HOST:PORT")
    if host.startswith("["):
        if not host.endswith("]"):
            raise InvalidInput(f"endpoint {value!r}: an IPv6 host is written [ADDRESS]")
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise InvalidInput(f"endpoint {value!r}: {host} is not an IPv6 address") from None
    elif not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", host):
        raise InvalidInput(f"endpoint {value!r}: {host!r} is not a host name or address")
    return value


def check_site_name(name: str) -> str:
    validate_party_name(name)
    if name in _RESERVED:
        raise InvalidInput(f"{name!r} is reserved for the coordinating center")
    return name


# --- configs ---


def hub_config_text(plan: VpnPlan, private_key: str, psks: Mapping[str, str]) -> str:
    lines = [
        "# OncoFed hub tunnel (wg-quick). Written by `oncofed-ops vpn`; edits are overwritten.",
        "[Interface]",
        f"PrivateKey = {private_key}",
        f"Address = {plan.hub_address}/{plan.prefix_length}",
        f"ListenPort = {plan.listen_port}",
    ]
    for site in plan.sites:
        lines += [
            "",
            f"# site {site.name}",
            "[Peer]",
            f"PublicKey = {site.public_key}",
            f"PresharedKey = {psks[site.name]}",
            f"AllowedIPs = {site.address}/32",
        ]
    return "\n".join(lines) + "\n"


def site_config_text(plan: VpnPlan, site: SitePlan, private_key: str, psk: str) -> str:
    if plan.endpoint is None:
        raise InvalidInput("the plan has no hub endpoint; run `vpn init --endpoint HOST:PORT`")
    return (
        "\n".join(
            [
                f"# OncoFed tunnel for site {site.name} (wg-quick). Written by `oncofed-ops vpn`.",
                "[Interface]",
                f"PrivateKey = {private_key}",
                f"Address = {site.address}/32",
                "",
                "# the coordinating center: only its tunnel address is routed here",
                "[Peer]",
                f"PublicKey = {plan.hub_public_key}",
                f"PresharedKey = {psk}",
                f"Endpoint = {plan.endpoint}",
                f"AllowedIPs = {plan.hub_address}/32",
                f"PersistentKeepalive = {KEEPALIVE_S}",
            ]
        )
        + "\n"
    )


def strip_config(text: str) -> str:
    """A wg-quick config without wg-quick's own keys: what `wg setconf` accepts."""
    kept = []
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip().lower() if "=" in line else ""
        if key not in _QUICK_ONLY:
            kept.append(line)
    return "\n".join(kept) + "\n"


def config_addresses(text: str) -> list[str]:
    """The `Address =` values of a wg-quick config (CIDR strings)."""
    found: list[str] = []
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip().lower() == "address":
            found += [v.strip() for v in value.split(",") if v.strip()]
    return found


def _write_hub_config(folder: VpnFolder, plan: VpnPlan) -> None:
    psks = {s.name: _read_key(folder.site_psk(s.name)) for s in plan.sites}
    text = hub_config_text(plan, _read_key(folder.hub_key), psks)
    _atomic_write(folder.hub_config, text, private=True)


# --- commands ---


def init(
    directory: Path,
    *,
    subnet: str = DEFAULT_SUBNET,
    endpoint: str | None = None,
    listen_port: int | None = None,
) -> VpnPlan:
    """Make the hub's key and the address plan; again with the same options, a no-op.

    The hub takes the subnet's first host address. An existing plan is never
    re-keyed: a different subnet is an error (every site would need new
    configs); an endpoint given now that was missing before is recorded.
    """
    net = parse_subnet(subnet)
    if endpoint is not None:
        parse_endpoint(endpoint)
    if listen_port is not None and not 0 < listen_port < 65536:
        raise InvalidInput(f"listen port {listen_port} must be 1-65535")
    folder = VpnFolder(directory)
    with folder.locked():
        if folder.exists():
            plan = folder.load()
            if plan.subnet != str(net):
                raise Conflict(f"{directory} already has a VPN plan for subnet {plan.subnet}")
            if listen_port is not None and listen_port != plan.listen_port:
                raise Conflict(f"{directory} already listens on port {plan.listen_port}")
            if endpoint is not None and plan.endpoint not in (None, endpoint):
                raise Conflict(f"{directory} already has hub endpoint {plan.endpoint}")
            if endpoint is not None and plan.endpoint is None:
                plan = _replace(plan, endpoint=endpoint)
                folder.save(plan)
                _rewrite_site_configs(folder, plan)
            return plan
        private = generate_private_key()
        write_private(folder.hub_key, (private + "\n").encode("ascii"))
        plan = VpnPlan(
            subnet=str(net),
            endpoint=endpoint,
            listen_port=listen_port or DEFAULT_PORT,
            hub_address=str(next(net.hosts())),
            hub_public_key=public_key(private),
            sites=(),
            revoked=(),
        )
        folder.save(plan)
        _write_hub_config(folder, plan)
        return plan


def _replace(plan: VpnPlan, **changes: Any) -> VpnPlan:
    fields = {**vars(plan), **changes}
    return VpnPlan(**fields)


def _rewrite_site_configs(folder: VpnFolder, plan: VpnPlan) -> None:
    for site in plan.sites:
        text = site_config_text(
            plan, site, _read_key(folder.site_key(site.name)), _read_key(folder.site_psk(site.name))
        )
        _atomic_write(folder.site_config(site.name), text, private=True)


def _next_address(plan: VpnPlan) -> str:
    taken = {plan.hub_address, *(s.address for s in plan.sites), *(r.address for r in plan.revoked)}
    # Revoked addresses are not handed out again: an old config must never match a new site.
    for host in ipaddress.ip_network(plan.subnet).hosts():
        if str(host) not in taken:
            return str(host)
    raise Conflict(f"subnet {plan.subnet} has no free address left")


def add_site(directory: Path, name: str) -> SitePlan:
    """Make NAME's key and both ends' configs; no other site's key is touched."""
    check_site_name(name)
    folder = VpnFolder(directory)
    with folder.locked():
        plan = folder.load()
        if plan.site(name) is not None:
            raise Conflict(f"site {name!r} is already enrolled; revoke it first to re-key it")
        if plan.endpoint is None:
            raise InvalidInput(
                f"the plan has no hub endpoint; run `oncofed-ops vpn init --dir {directory} "
                "--endpoint HOST:PORT` first"
            )
        private, psk = generate_private_key(), generate_preshared_key()
        site = SitePlan(name, _next_address(plan), public_key(private))
        # Keys first: a crash before the plan is saved leaves an unenrolled folder,
        # which the next add-site overwrites.
        write_private(folder.site_key(name), (private + "\n").encode("ascii"))
        write_private(folder.site_psk(name), (psk + "\n").encode("ascii"))
        plan = _replace(plan, sites=(*plan.sites, site))
        _atomic_write(
            folder.site_config(name), site_config_text(plan, site, private, psk), private=True
        )
        folder.save(plan)
        _write_hub_config(folder, plan)
        return site


def revoke(directory: Path, name: str) -> Revocation:
    """Remove NAME's peer from the hub config, record why, and delete its secrets here.

    Revoking a site already revoked returns its latest revocation.
    """
    check_site_name(name)
    folder = VpnFolder(directory)
    with folder.locked():
        plan = folder.load()
        site = plan.site(name)
        if site is None:
            earlier = [r for r in plan.revoked if r.name == name]
            if earlier:
                return earlier[-1]
            raise NotFound(f"site {name!r} is not enrolled in {directory}")
        record = Revocation(
            name, site.address, site.public_key, datetime.now(UTC).isoformat(timespec="seconds")
        )
        plan = _replace(
            plan,
            sites=tuple(s for s in plan.sites if s.name != name),
            revoked=(*plan.revoked, record),
        )
        folder.save(plan)
        _write_hub_config(folder, plan)
        for path in (folder.site_key(name), folder.site_psk(name), folder.site_config(name)):
            path.unlink(missing_ok=True)
        return record


def load_plan(directory: Path) -> VpnPlan:
    return VpnFolder(directory).load()
