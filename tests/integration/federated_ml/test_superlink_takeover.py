"""A hub killed without stopping its SuperLink: the next hub on the same folder
ends the orphaned Flower processes and listens itself, instead of failing to bind
while a port check answered by the old listener says all is well."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from federated_ml.flower.deploy import (
    DeploymentError,
    FlowerDeployment,
    TlsFiles,
    stale_flower_processes,
)
from ops.ca import init_ca, issue


def _tls(work: Path) -> TlsFiles:
    ca_dir = work / "ca"
    init_ca(ca_dir)
    link = issue(ca_dir, "superlink", "hub")
    return TlsFiles(ca_dir / "ca.crt", link.cert, link.key)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"


def test_a_new_hub_takes_over_from_an_orphaned_superlink(tmp_path: Path) -> None:
    tls = _tls(tmp_path)
    old = FlowerDeployment(tmp_path / "flower", tls)
    new = FlowerDeployment(tmp_path / "flower", tls, port=old.port)
    try:
        old.start_superlink()
        orphans = stale_flower_processes(tmp_path / "flower")
        assert old.processes["superlink"].pid in orphans
        # The old hub dies here without stop(): its SuperLink keeps the port.
        started = new.start_superlink()
        assert all(not _alive(pid) for pid in orphans)
        assert started.alive()
        assert stale_flower_processes(tmp_path / "flower") != []  # the new one's
        with socket.create_connection(("127.0.0.1", new.port), timeout=5):
            pass
    finally:
        new.stop()
        old.stop()
    assert stale_flower_processes(tmp_path / "flower") == []


def test_a_port_held_by_another_program_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        dep = FlowerDeployment(tmp_path / "flower", _tls(tmp_path), port=other.getsockname()[1])
        with pytest.raises(DeploymentError, match="already in use by another program"):
            dep._take_over_port(timeout=1.0)
        assert dep.processes == {}
