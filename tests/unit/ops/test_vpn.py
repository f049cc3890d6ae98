"""`oncofed-ops vpn`: keys, the address plan, wg-quick configs, revocation."""

from __future__ import annotations

import base64
import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ops import vpn
from ops.cli import app
from shared_cdm.errors import Conflict, InvalidInput, NotFound

ENDPOINT = "hub.example.org:51820"


def _sections(text: str) -> list[dict[str, str]]:
    """A wg-quick file as a list of sections, each a dict of its keys."""
    sections: list[dict[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            sections.append({"_": line})
        elif "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            sections[-1][key.strip()] = value.strip()
    return sections


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _folder(tmp_path: Path) -> vpn.VpnFolder:
    vpn.init(tmp_path, endpoint=ENDPOINT)
    return vpn.VpnFolder(tmp_path)


def test_public_key_matches_rfc7748_vector() -> None:
    # RFC 7748 section 6.1: Alice's private scalar and public key.
    private = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    expected = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    assert vpn.public_key(base64.b64encode(private).decode()) == base64.b64encode(expected).decode()


def test_generated_keys_are_clamped_and_distinct() -> None:
    keys = {vpn.generate_private_key() for _ in range(20)}
    assert len(keys) == 20
    for key in keys:
        raw = base64.b64decode(key)
        assert len(raw) == 32 and raw[0] & 7 == 0 and raw[31] & 0x80 == 0 and raw[31] & 0x40


def test_public_key_agrees_with_wg_pubkey() -> None:
    wg = shutil.which("wg")
    if wg is None:
        pytest.fail("wg is needed (run ops/scripts/ensure_wireguard.sh)")
    private = vpn.generate_private_key()
    done = subprocess.run([wg, "pubkey"], input=private, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == vpn.public_key(private)


def test_init_makes_hub_key_and_plan(tmp_path: Path) -> None:
    plan = vpn.init(tmp_path, subnet="10.88.0.0/24", endpoint=ENDPOINT)
    folder = vpn.VpnFolder(tmp_path)
    assert plan.hub_address == "10.88.0.1"
    assert _mode(folder.hub_key) == 0o600 and _mode(folder.hub_config) == 0o600
    private = folder.hub_key.read_text().strip()
    assert vpn.public_key(private) == plan.hub_public_key
    assert private not in folder.plan_file.read_text()
    [interface] = _sections(folder.hub_config.read_text())
    assert interface["Address"] == "10.88.0.1/24"
    assert interface["ListenPort"] == "51820"


def test_init_again_is_a_no_op_and_refuses_a_different_subnet(tmp_path: Path) -> None:
    first = vpn.init(tmp_path, endpoint=ENDPOINT)
    key = vpn.VpnFolder(tmp_path).hub_key.read_text()
    assert vpn.init(tmp_path, endpoint=ENDPOINT) == first
    assert vpn.VpnFolder(tmp_path).hub_key.read_text() == key
    with pytest.raises(Conflict):
        vpn.init(tmp_path, subnet="10.99.0.0/24")
    with pytest.raises(Conflict):
        vpn.init(tmp_path, endpoint="other.example.org:51820")


@pytest.mark.parametrize(
    "subnet", ["8.8.8.0/24", "10.77.0.1/24", "10.77.0.0/30", "fd00::/64", "nonsense"]
)
def test_init_refuses_bad_subnets(tmp_path: Path, subnet: str) -> None:
    with pytest.raises(InvalidInput):
        vpn.init(tmp_path, subnet=subnet)
    assert not (tmp_path / vpn.PLAN_FILE).exists()


@pytest.mark.parametrize("endpoint", ["hub", "hub:0", "hub:70000", ":51820", "a b:1", "[::1:5"])
def test_init_refuses_bad_endpoints(tmp_path: Path, endpoint: str) -> None:
    with pytest.raises(InvalidInput):
        vpn.init(tmp_path, endpoint=endpoint)


def test_add_site_writes_both_ends(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    site = vpn.add_site(tmp_path, "hospital-a")
    plan = folder.load()
    assert site.address == "10.77.0.2"
    site_text = folder.site_config("hospital-a").read_text()
    interface, peer = _sections(site_text)
    assert interface["Address"] == "10.77.0.2/32"
    assert vpn.public_key(interface["PrivateKey"]) == site.public_key
    assert peer["PublicKey"] == plan.hub_public_key
    assert peer["Endpoint"] == ENDPOINT
    assert peer["AllowedIPs"] == "10.77.0.1/32"  # the site routes only the hub here
    hub_peers = _sections(folder.hub_config.read_text())[1:]
    assert [p["PublicKey"] for p in hub_peers] == [site.public_key]
    assert hub_peers[0]["AllowedIPs"] == "10.77.0.2/32"
    assert hub_peers[0]["PresharedKey"] == peer["PresharedKey"]
    for path in (folder.site_key("hospital-a"), folder.site_psk("hospital-a")):
        assert _mode(path) == 0o600
    assert _mode(folder.site_config("hospital-a")) == 0o600


def test_add_site_leaves_other_sites_keys_alone(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    vpn.add_site(tmp_path, "a")
    before = {p: p.read_bytes() for p in folder.site_dir("a").iterdir()}
    hub_key = folder.hub_key.read_bytes()
    b = vpn.add_site(tmp_path, "b")
    assert {p: p.read_bytes() for p in folder.site_dir("a").iterdir()} == before
    assert folder.hub_key.read_bytes() == hub_key
    assert b.address == "10.77.0.3"
    assert len(_sections(folder.hub_config.read_text())) == 3


def test_add_site_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        vpn.add_site(tmp_path, "a")  # no plan yet
    vpn.init(tmp_path)
    with pytest.raises(InvalidInput, match="endpoint"):
        vpn.add_site(tmp_path, "a")
    vpn.init(tmp_path, endpoint=ENDPOINT)  # the endpoint can be added later
    vpn.add_site(tmp_path, "a")
    key = vpn.VpnFolder(tmp_path).site_key("a").read_bytes()
    with pytest.raises(Conflict):
        vpn.add_site(tmp_path, "a")
    assert vpn.VpnFolder(tmp_path).site_key("a").read_bytes() == key
    for bad in ("hub", "", "a/b", "../x", "x" * 65):
        with pytest.raises(InvalidInput):
            vpn.add_site(tmp_path, bad)


def test_subnet_runs_out(tmp_path: Path) -> None:
    vpn.init(tmp_path, subnet="10.77.0.0/29", endpoint=ENDPOINT)  # 6 hosts: hub + 5
    for i in range(5):
        vpn.add_site(tmp_path, f"s{i}")
    with pytest.raises(Conflict, match="no free address"):
        vpn.add_site(tmp_path, "s5")


def test_revoke_removes_the_peer_and_is_recorded(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    a, b = vpn.add_site(tmp_path, "a"), vpn.add_site(tmp_path, "b")
    record = vpn.revoke(tmp_path, "a")
    assert record.public_key == a.public_key
    hub_text = folder.hub_config.read_text()
    assert a.public_key not in hub_text and b.public_key in hub_text
    assert not folder.site_key("a").exists() and not folder.site_config("a").exists()
    raw = json.loads(folder.plan_file.read_text())
    assert [r["name"] for r in raw["revoked"]] == ["a"]
    assert vpn.revoke(tmp_path, "a") == record  # again: the same record, nothing changes
    with pytest.raises(NotFound):
        vpn.revoke(tmp_path, "never-enrolled")
    # Re-enrolling gets a new key and a new address, never the revoked one's.
    again = vpn.add_site(tmp_path, "a")
    assert again.public_key != a.public_key and again.address not in (a.address, b.address)


def test_strip_config_keeps_only_what_wg_setconf_reads(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    vpn.add_site(tmp_path, "a")
    text = folder.site_config("a").read_text()
    stripped = vpn.strip_config(text)
    assert "Address" not in stripped and "PrivateKey" in stripped and "Endpoint" in stripped
    assert vpn.config_addresses(text) == ["10.77.0.2/32"]


def test_cli_never_prints_private_keys(tmp_path: Path) -> None:
    runner = CliRunner()
    outputs = []
    for args in (
        ["vpn", "init", "--dir", str(tmp_path), "--endpoint", ENDPOINT],
        ["vpn", "add-site", "a", "--dir", str(tmp_path)],
        ["vpn", "add-site", "b", "--dir", str(tmp_path)],
        ["vpn", "revoke", "b", "--dir", str(tmp_path)],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    folder = vpn.VpnFolder(tmp_path)
    secrets = [folder.hub_key.read_text().strip(), folder.site_key("a").read_text().strip()]
    secrets.append(folder.site_psk("a").read_text().strip())
    assert all(s not in "".join(outputs) for s in secrets)
    assert folder.load().site("a") is not None and folder.load().site("b") is None


def test_cli_errors_are_one_line_with_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["vpn", "init", "--dir", str(tmp_path), "--endpoint", ENDPOINT])
    dup = [runner.invoke(app, ["vpn", "add-site", "a", "--dir", str(tmp_path)]) for _ in range(2)]
    assert dup[0].exit_code == 0
    assert dup[1].exit_code not in (0, 1) and "already enrolled" in dup[1].output
    unknown = runner.invoke(app, ["vpn", "revoke", "zz", "--dir", str(tmp_path)])
    assert unknown.exit_code not in (0, 1) and "not enrolled" in unknown.output
    bad = runner.invoke(app, ["vpn", "add-site", "a b", "--dir", str(tmp_path)])
    assert bad.exit_code not in (0, 1) and "party name" in bad.output


UNITS = Path(__file__).resolve().parents[3] / "ops" / "deploy" / "systemd"
# The Flower SuperLink and SuperNodes run as children of the hub and edge services.
SERVICES = ("oncofed-hub", "oncofed-edge")


def _unit_keys(text: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}=")]


def test_services_need_the_tunnel_and_systemd_accepts_the_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is needed to check the units (Debian package systemd)")
    tunnel = (UNITS / "oncofed-tunnel.service").read_text()
    assert _unit_keys(tunnel, "ExecStart") == [f"/usr/bin/wg-quick up {vpn.INTERFACE}"]
    for name in SERVICES:
        text = (UNITS / f"{name}.service").read_text()
        assert _unit_keys(text, "Requires") == ["oncofed-tunnel.service"], name
        assert "oncofed-tunnel.service" in _unit_keys(text, "After")[0], name
    venv_bin = str(Path(sys.executable).parent) + "/"
    for name in ("oncofed-tunnel", *SERVICES):
        text = (UNITS / f"{name}.service").read_text().replace("/opt/oncofed/.venv/bin/", venv_bin)
        kept = [line for line in text.splitlines() if not line.startswith(("User=", "Group="))]
        (tmp_path / f"{name}.service").write_text("\n".join(kept) + "\n")
    for name in ("oncofed-tunnel", *SERVICES):
        done = subprocess.run(
            [analyze, "verify", f"./{name}.service"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0 and "not executable" not in done.stderr, done.stderr
