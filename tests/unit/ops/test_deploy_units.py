"""The systemd units that run the edge sync daily are valid and run the real command."""

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
    for name in ("oncofed-edge-sync.service", "oncofed-edge-sync.timer"):
        text = (UNITS / name).read_text()
        if name.endswith(".service"):
            text = text.replace(_exec_start(text).split()[0], str(edge))
            text = text.replace("User=oncofed\n", "").replace("Group=oncofed\n", "")
        (tmp_path / name).write_text(text)
    result = subprocess.run(
        [analyze, "verify", str(tmp_path / "oncofed-edge-sync.timer")],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "not executable" not in result.stderr
