"""The systemd units with timers (daily edge sync, monthly CRL renewal) are valid and run
the real commands; Flower processes run under the hub and edge units."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[3] / "ops" / "deploy" / "systemd"


def _exec_start(text: str) -> str:
    lines = [line for line in text.splitlines() if line.startswith("ExecStart=")]
    assert len(lines) == 1
    return lines[0].removeprefix("ExecStart=")


def test_service_runs_the_sync_command_and_the_timer_is_daily() -> None:
    service = (UNITS / "oncofed-edge-sync.service").read_text()
    timer = (UNITS / "oncofed-edge-sync.timer").read_text()
    command = _exec_start(service).split()
    assert command[0].endswith("/oncofed-edge")
    assert command[1:] == ["sync", "--quiet"]
    assert "Type=oneshot" in service
    assert "OnCalendar=*-*-* 02:30:00" in timer
    assert "Persistent=true" in timer  # a missed day runs at the next boot


def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is needed to check the units (Debian package systemd)")
    edge = Path(sys.executable).with_name("oncofed-edge")
    assert edge.exists()
    ops = Path(sys.executable).with_name("oncofed-ops")
    assert edge.exists() and ops.exists()
    for stem, command in (("oncofed-edge-sync", edge), ("oncofed-ca-crl", ops)):
        for name in (f"{stem}.service", f"{stem}.timer"):
            text = (UNITS / name).read_text()
            if name.endswith(".service"):
                text = text.replace(_exec_start(text).split()[0], str(command))
                text = text.replace("User=oncofed\n", "").replace("Group=oncofed\n", "")
            (tmp_path / name).write_text(text)
        result = subprocess.run(
            [analyze, "verify", str(tmp_path / f"{stem}.timer")],
            check=False,
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        assert "not executable" not in result.stderr


def test_the_crl_is_renewed_monthly_and_handed_to_the_hub_by_rename() -> None:
    service = (UNITS / "oncofed-ca-crl.service").read_text()
    timer = (UNITS / "oncofed-ca-crl.timer").read_text()
    command = _exec_start(service).split()
    assert command[0].endswith("/oncofed-ops")
    assert command[1:] == ["ca", "renew-crl", "--dir", "/var/lib/oncofed/ca"]
    posts = [
        ln.split("=", 1)[1].split()
        for ln in service.splitlines()
        if ln.startswith("ExecStartPost=")
    ]
    # written beside, then renamed over: the hub never reads half a list
    assert posts[0][-1] == "/var/lib/oncofed/hub/tls/.crl.pem.tmp"
    assert posts[1][1:] == ["-f", posts[0][-1], "/var/lib/oncofed/hub/tls/crl.pem"]
    assert "OnCalendar=monthly" in timer
    assert "Persistent=true" in timer


def test_flower_processes_have_no_units_of_their_own() -> None:
    # The hub starts its SuperLink and an edge its SuperNode (per approved study).
    names = {p.name for p in UNITS.iterdir()}
    assert not any("superlink" in n or "supernode" in n for n in names)
    for unit in names:
        assert "superlink" not in (UNITS / unit).read_text().split("[Unit]", 1)[1]
