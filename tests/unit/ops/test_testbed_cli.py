"""`oncofed-ops testbed` argument handling, with `testbed.up` / `open_testbed` replaced
(the real testbed needs root and is tested in tests/integration/ops/test_testbed.py)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_node.policy import DEFAULT_POLICY_TOML
from ops import testbed as tb
from ops.cli import app
from shared_cdm.errors import EXIT_CODES, ErrorKind

runner = CliRunner()
AUTO_ML = DEFAULT_POLICY_TOML.replace('flower = "manual"\n', 'flower = "auto"\n')


def _fake_bed(root: Path, *, services: bool = True) -> tb.Testbed:
    state = tb.TestbedState(root=root, id="abcd", sites=["hospital-1"], services=services)
    state.hosts["hub"] = tb.Host("hub", "ofb-abcd-hub", tb.HUB_UNDERLAY, "ofbabcdw0", "10.77.0.1")
    return tb.Testbed(state)


@pytest.fixture
def received(monkeypatch: pytest.MonkeyPatch) -> list[tb.TestbedOptions]:
    """The options each `testbed up` passed to `testbed.up` (nothing is built)."""
    calls: list[tb.TestbedOptions] = []

    def fake_up(root: Path, options: tb.TestbedOptions, say: Callable[[str], None]) -> tb.Testbed:
        calls.append(options)
        return _fake_bed(root)

    monkeypatch.setattr(tb, "up", fake_up)
    return calls


def _up(tmp_path: Path, *extra: str) -> list[str]:
    return ["testbed", "up", "--sites", "2", "--dir", str(tmp_path / "bed"), *extra]


def test_flower_and_policy_reach_the_testbed_options(
    tmp_path: Path, received: list[tb.TestbedOptions]
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(AUTO_ML, encoding="utf-8")
    done = runner.invoke(app, _up(tmp_path, "--flower", "--policy", str(policy)))
    assert done.exit_code == 0, done.output
    [options] = received
    assert (options.sites, options.services, options.flower) == (2, True, True)
    assert options.policy == AUTO_ML  # the file's text, as every edge's policy.toml
    assert "hub Flower SuperLink (tunnel only): 10.77.0.1:9093" in done.stdout


def test_without_the_switches_no_flower_and_the_edges_own_policy(
    tmp_path: Path, received: list[tb.TestbedOptions]
) -> None:
    done = runner.invoke(app, _up(tmp_path))
    assert done.exit_code == 0, done.output
    [options] = received
    assert (options.flower, options.policy) == (False, None)
    assert "Flower" not in done.stdout
    explicit = runner.invoke(app, _up(tmp_path, "--no-flower"))
    assert explicit.exit_code == 0, explicit.output
    assert received[1].flower is False


def _write_bad_policy(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / "policy.toml"
    if kind == "missing":
        return path
    if kind == "folder":
        path.mkdir()
    elif kind == "not-toml":
        path.write_text("[analyses\ncount = ", encoding="utf-8")
    elif kind == "not-utf8":
        path.write_bytes(b'[analyses]\ncount = "auto" # \xff\xfe\n')
    elif kind == "bad-decision":
        path.write_text('[analyses]\ncount = "sometimes"\n', encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("kind", "error", "message"),
    [
        ("missing", ErrorKind.NOT_FOUND, "does not exist"),
        ("folder", ErrorKind.INVALID, "cannot be read"),
        ("not-toml", ErrorKind.INVALID, "is not valid TOML"),
        ("not-utf8", ErrorKind.INVALID, "is not UTF-8 text"),
        ("bad-decision", ErrorKind.INVALID, "analyses.count"),
    ],
)
def test_a_bad_policy_file_is_refused_before_anything_is_built(
    tmp_path: Path,
    received: list[tb.TestbedOptions],
    kind: str,
    error: ErrorKind,
    message: str,
) -> None:
    path = _write_bad_policy(tmp_path, kind)
    done = runner.invoke(app, _up(tmp_path, "--policy", str(path)))
    assert done.exit_code == EXIT_CODES[error], done.output
    assert done.exception is None or isinstance(done.exception, SystemExit)
    assert "Traceback" not in done.output
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("oncofed-ops: error: policy file ")
    assert str(path) in line and message in line
    assert received == []


@pytest.mark.parametrize("switch", [["--flower"], ["--policy", "policy.toml"]])
def test_flower_and_policy_need_the_services(
    tmp_path: Path, received: list[tb.TestbedOptions], switch: list[str]
) -> None:
    (tmp_path / "policy.toml").write_text(AUTO_ML, encoding="utf-8")
    switch = [str(tmp_path / s) if s.endswith(".toml") else s for s in switch]
    done = runner.invoke(app, _up(tmp_path, "--network-only", *switch))
    assert done.exit_code == EXIT_CODES[ErrorKind.INVALID], done.output
    assert "drop --network-only" in done.stderr
    assert received == []


@pytest.mark.parametrize("command", ["kill", "start"])
def test_kill_and_start_name_the_services_they_know(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.setattr(tb, "open_testbed", _fake_bed)
    done = runner.invoke(app, ["testbed", command, "nosuchservice", "--dir", str(tmp_path)])
    assert done.exit_code == EXIT_CODES[ErrorKind.INVALID], done.output
    assert "no service 'nosuchservice'; the testbed runs hub, edge-hospital-1" in done.stderr


@pytest.mark.parametrize("command", ["kill", "start"])
def test_kill_and_start_refuse_a_network_only_testbed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.setattr(tb, "open_testbed", lambda root: _fake_bed(root, services=False))
    done = runner.invoke(app, ["testbed", command, "hub", "--dir", str(tmp_path)])
    assert done.exit_code == EXIT_CODES[ErrorKind.CONFLICT], done.output
    assert "runs no services" in done.stderr


def _bed_running(root: Path, pid: int, start: str | None) -> tb.Testbed:
    bed = _fake_bed(root)
    bed.state.processes.append(
        tb.ProcessRecord("edge-hospital-1", "ofb-abcd-hospital-1", pid, start, "edge.log")
    )
    return bed


def test_start_refuses_a_service_that_is_still_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second edge would share the first one's home and certificate."""
    me = os.getpid()  # a live process standing for the running edge
    bed = _bed_running(tmp_path, me, tb._start_time(me))
    monkeypatch.setattr(tb, "open_testbed", lambda root: bed)
    started: list[str] = []
    monkeypatch.setattr(tb, "start_service", lambda bed, name: started.append(name))
    done = runner.invoke(app, ["testbed", "start", "edge-hospital-1", "--dir", str(tmp_path)])
    assert done.exit_code == EXIT_CODES[ErrorKind.CONFLICT], done.output
    assert f"edge-hospital-1 is already running (pid {me})" in done.stderr
    assert started == []


def test_kill_says_when_the_service_was_not_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bed = _bed_running(tmp_path, 2**22 + 1, "1")  # above the largest pid_max: no such process
    monkeypatch.setattr(tb, "open_testbed", lambda root: bed)
    done = runner.invoke(app, ["testbed", "kill", "edge-hospital-1", "--dir", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert done.stdout.strip() == "edge-hospital-1 was not running"
