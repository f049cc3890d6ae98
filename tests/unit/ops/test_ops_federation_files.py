import stat
import tomllib
from pathlib import Path

from ops.federation import HubEndpoint, _copy_tls, write_toml
from ops.local_federation import hub_settings_for_local_run
from protocol.tls import CaFolder


def test_write_toml_round_trips_scalars_and_tables(tmp_path: Path) -> None:
    settings = {
        "auto_approve": True,
        "grpc_port": 0,
        "db_url": 'sqlite:///C:\\data\\"hub".db',
        "title": "医院 A",
        "min_sites": {"count": 1, "describe": 2},
    }
    path = tmp_path / "hub.toml"
    write_toml(path, settings)
    assert tomllib.loads(path.read_text(encoding="utf-8")) == settings


def test_local_run_leaves_the_minimum_of_sites_to_the_sites() -> None:
    min_sites = hub_settings_for_local_run()["min_sites"]
    assert isinstance(min_sites, dict)
    assert {"count", "describe"} <= set(min_sites)
    assert set(min_sites.values()) == {1}


def test_copy_tls_gives_a_party_its_pair_and_the_ca_certificate_only(tmp_path: Path) -> None:
    ca = CaFolder(tmp_path / "ca")
    ca.init()
    ca.issue("riverside", "edge")
    tls = tmp_path / "edge" / "tls"
    _copy_tls(ca, "riverside", tls)
    assert sorted(p.name for p in tls.iterdir()) == ["ca.crt", "riverside.crt", "riverside.key"]
    assert (tls / "ca.crt").read_bytes() == ca.ca_cert.read_bytes()
    assert stat.S_IMODE((tls / "riverside.key").stat().st_mode) == 0o600


def test_copy_tls_can_trust_another_ca(tmp_path: Path) -> None:
    ours, theirs = CaFolder(tmp_path / "ours"), CaFolder(tmp_path / "theirs")
    ours.init()
    theirs.init()
    theirs.issue("impostor", "edge")
    _copy_tls(theirs, "impostor", tmp_path / "tls", trust=ours)
    assert (tmp_path / "tls" / "ca.crt").read_bytes() == ours.ca_cert.read_bytes()


def test_hub_endpoint_reads_its_http_port() -> None:
    hub = HubEndpoint("127.0.0.1", 50051, "http://127.0.0.1:8080", "t")
    assert hub.http_port == 8080
    assert hub.grpc_address == "127.0.0.1:50051"
