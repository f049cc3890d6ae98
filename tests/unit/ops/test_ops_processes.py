import re
import socket
import sys
import time
from pathlib import Path

import pytest

from ops.processes import (
    CommandFailed,
    ProcessFailed,
    ProcessGroup,
    child_env,
    free_port,
    run_command,
)

READY = re.compile(r"ready port=(?P<port>\d+)")

SERVER = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: (print("got TERM", flush=True), sys.exit(0)))
print("starting", file=sys.stderr, flush=True)
print("ready port=4242", flush=True)
while True:
    time.sleep(0.1)
"""

STUBBORN = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready port=1", flush=True)
while True:
    time.sleep(0.1)
"""


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
    assert 0 < port < 65536


def test_child_env_drops_hub_and_edge_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONCOFED_HUB_DB_URL", "postgresql://prod")
    monkeypatch.setenv("ONCOFED_EDGE_SITE_NAME", "x")
    env = child_env({"EXTRA": "1"})
    assert "ONCOFED_HUB_DB_URL" not in env
    assert "ONCOFED_EDGE_SITE_NAME" not in env
    assert env["EXTRA"] == "1"
    assert str(Path(__file__).resolve().parents[3]) in env["PYTHONPATH"].split(":")


def test_ready_line_is_matched_and_logs_hold_both_streams(tmp_path: Path) -> None:
    with ProcessGroup(tmp_path, grace=5) as group:
        process, match = group.start("srv", _py(SERVER), env=child_env(), ready=READY, timeout=20)
        assert match is not None and match["port"] == "4242"
        assert process.alive()
    assert not process.alive()
    log = (tmp_path / "srv.log").read_text()
    assert "starting" in log
    assert "ready port=4242" in log
    assert "got TERM" in log  # stopped by SIGTERM, not killed


def test_a_child_that_exits_before_ready_fails_with_its_log_tail(tmp_path: Path) -> None:
    code = "import sys; print('bad config', file=sys.stderr); sys.exit(3)"
    with ProcessGroup(tmp_path) as group, pytest.raises(ProcessFailed, match="bad config"):
        group.start("broken", _py(code), env=child_env(), ready=READY, timeout=20)


def test_a_child_that_never_says_ready_times_out_and_is_stopped(tmp_path: Path) -> None:
    code = "import time; time.sleep(60)"
    with ProcessGroup(tmp_path, grace=2) as group:
        started = time.monotonic()
        with pytest.raises(ProcessFailed, match="not ready"):
            group.start("slow", _py(code), env=child_env(), ready=READY, timeout=1)
        assert time.monotonic() - started < 10
        assert "--- exit" in (tmp_path / "slow.log").read_text()


def test_sigterm_ignored_means_sigkill_after_grace(tmp_path: Path) -> None:
    group = ProcessGroup(tmp_path, grace=1)
    process, _ = group.start("stubborn", _py(STUBBORN), env=child_env(), ready=READY, timeout=20)
    started = time.monotonic()
    group.stop_all()
    assert not process.alive()
    assert process.returncode == -9
    assert time.monotonic() - started < 10


def test_group_tears_down_when_the_body_raises(tmp_path: Path) -> None:
    started = []
    with pytest.raises(RuntimeError), ProcessGroup(tmp_path, grace=5) as group:
        for name in ("a", "b"):
            process, _ = group.start(name, _py(SERVER), env=child_env(), ready=READY, timeout=20)
            started.append(process)
        raise RuntimeError("boom")
    assert [p.alive() for p in started] == [False, False]


def test_restart_runs_the_same_command_again_and_appends_to_the_log(tmp_path: Path) -> None:
    with ProcessGroup(tmp_path, grace=5) as group:
        first, _ = group.start("srv", _py(SERVER), env=child_env(), ready=READY, timeout=20)
        first.kill()
        second, match = group.restart(first, ready=READY, timeout=20)
        assert match is not None
        assert second.pid != first.pid and second.alive()
    lines = (tmp_path / "srv.log").read_text().splitlines()
    assert lines.count("ready port=4242") == 2
    assert lines.count("got TERM") == 1  # the first run was SIGKILLed


def test_run_command_returns_stdout_or_raises_with_stderr() -> None:
    assert run_command("echo", _py("print('token-1')"), env=child_env()).strip() == "token-1"
    failing = _py("import sys; print('no such user', file=sys.stderr); sys.exit(4)")
    with pytest.raises(CommandFailed, match="exited with 4: no such user"):
        run_command("users add", failing, env=child_env())


def test_a_child_dying_on_its_own_is_told_apart_from_one_we_stopped(tmp_path: Path) -> None:
    crash = (
        "import sys; print('ready port=1', flush=True);"
        "print('hub gone', file=sys.stderr); sys.exit(1)"
    )
    with ProcessGroup(tmp_path, grace=5) as group:
        crashed, _ = group.start("crash", _py(crash), env=child_env(), ready=READY, timeout=20)
        stopped, _ = group.start("srv", _py(SERVER), env=child_env(), ready=READY, timeout=20)
        crashed.wait(20)
        stopped.stop(5)
        assert crashed.died_unexpectedly()
        assert not stopped.died_unexpectedly()
        with pytest.raises(ProcessFailed, match=r"crash exited with 1.*hub gone"):
            crashed.check_alive()
        stopped.check_alive()  # asked to stop: not a failure
