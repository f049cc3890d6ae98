"""Hubs and edges as real child processes: start, wait for ready, log, stop.

Each child runs `sys.executable -m <module> ...` in its own session, so a
Ctrl-C in the terminal reaches only us and we decide how the children end:
SIGTERM first, SIGKILL after a grace period. `ProcessGroup` is the context
manager that guarantees that, even when the body raises.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO

from shared_cdm.errors import OncoFedError, Unavailable

_REPO_ROOT = Path(__file__).resolve().parent.parent
# Settings the children must not inherit from whoever runs us (a production db_url...).
# GRPC_VERBOSITY too: importing flwr sets it to "error" in our own process, and a
# hub started from there would no longer log the TLS handshakes it refuses.
_PRIVATE_ENV_PREFIXES = ("ONCOFED_HUB_", "ONCOFED_EDGE_", "GRPC_VERBOSITY")
_LOG_TAIL_LINES = 8


class ProcessFailed(Unavailable):
    """A child exited, or never said it was ready, in time."""

    code = "process_failed"


class CommandFailed(OncoFedError):
    """A one-shot command (`db upgrade`, `dataset add`...) exited non-zero."""

    code = "command_failed"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (it can still be taken before use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our environment minus hub/edge settings, with the repository importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_PRIVATE_ENV_PREFIXES)}
    paths = [str(_REPO_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def _tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    kept = [line for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


def run_command(
    name: str, argv: Sequence[str], *, env: Mapping[str, str], timeout: float = 120.0
) -> str:
    """Run a short command to completion; its stdout, or CommandFailed with its stderr."""
    try:
        done = subprocess.run(
            list(argv), env=dict(env), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise CommandFailed(f"{name}: did not finish within {timeout:.0f} s") from None
    if done.returncode != 0:
        detail = _tail(done.stderr, 1) or _tail(done.stdout, 1) or "no message"
        raise CommandFailed(f"{name} exited with {done.returncode}: {detail}")
    return done.stdout


class ManagedProcess:
    """One long-running child: its stdout is copied line by line into its log."""

    def __init__(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str], log_path: Path
    ) -> None:
        self.name = name
        self.argv = tuple(argv)
        self.env = dict(env)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[str] = log_path.open("a", encoding="utf-8")
        self._log.write(f"--- start {' '.join(self.argv)}\n")
        self._log.flush()
        self._popen = subprocess.Popen(
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,
        )
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self._new_line = threading.Condition(self._lock)
        self._closed = False
        self._asked_to_stop = False
        self._reader = threading.Thread(target=self._copy_stdout, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()

    def alive(self) -> bool:
        return self._popen.poll() is None

    def died_unexpectedly(self) -> bool:
        """It has exited although nobody asked it to."""
        return not self.alive() and not self._asked_to_stop

    def check_alive(self) -> None:
        """ProcessFailed, with the log's tail, when the process died on its own."""
        if self.died_unexpectedly():
            raise ProcessFailed(
                f"{self.name} exited with {self.returncode} (log {self.log_path}): "
                f"{_tail(self.log_text())}"
            )

    def stdout_lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def log_text(self) -> str:
        with self._lock:
            if not self._log.closed:
                self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def _copy_stdout(self) -> None:
        stream = self._popen.stdout
        if stream is None:
            return
        for line in stream:
            with self._new_line:
                if not self._log.closed:  # a grandchild may outlive the log
                    self._log.write(line)
                    self._log.flush()
                self._lines.append(line.rstrip("\n"))
                self._new_line.notify_all()
        with self._new_line:
            self._closed = True
            self._new_line.notify_all()

    def wait_for_line(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        """The first stdout line matching `pattern`; ProcessFailed if none comes."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._new_line:
            while True:
                for line in self._lines[seen:]:
                    match = pattern.search(line)
                    if match:
                        return match
                seen = len(self._lines)
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    break
                self._new_line.wait(min(remaining, 0.5))
        self._popen.poll()
        what = f"exited with {self._popen.returncode}" if not self.alive() else "is not ready"
        raise ProcessFailed(
            f"{self.name} {what} after {timeout:.0f} s (log {self.log_path}): "
            f"{_tail(self.log_text())}"
        )

    def _signal(self, signum: int) -> None:
        try:
            os.killpg(self._popen.pid, signum)
        except ProcessLookupError:
            return  # already gone, and its group with it

    def terminate(self) -> None:
        self._asked_to_stop = True
        if self.alive():
            self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL now (what a power cut does), then reap."""
        self._asked_to_stop = True
        self._signal(signal.SIGKILL)
        self._popen.wait()
        self._finish()

    def wait(self, timeout: float) -> bool:
        try:
            self._popen.wait(timeout=max(timeout, 0.0))
        except subprocess.TimeoutExpired:
            return False
        self._finish()
        return True

    def stop(self, grace: float = 10.0) -> None:
        self.terminate()
        if not self.wait(grace):
            self.kill()

    def _finish(self) -> None:
        self._reader.join(timeout=5.0)
        with self._lock:
            if not self._log.closed:
                self._log.write(f"--- exit {self._popen.returncode}\n")
                self._log.close()


class ProcessGroup:
    """Owns every child it starts; leaving the `with` block stops them all."""

    def __init__(self, log_dir: Path, *, grace: float = 10.0) -> None:
        self.log_dir = log_dir
        self.grace = grace
        self._processes: list[ManagedProcess] = []
        # Starts may come from several threads; none may slip in after stop_all.
        self._lock = threading.Lock()
        self._closed = False

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        ready: re.Pattern[str] | None = None,
        timeout: float = 120.0,
    ) -> tuple[ManagedProcess, re.Match[str] | None]:
        """Start a child; with `ready`, wait for its ready line (or stop it and raise)."""
        with self._lock:
            if self._closed:
                raise ProcessFailed(f"not starting {name}: everything is being stopped")
            process = ManagedProcess(name, argv, env=env, log_path=self.log_dir / f"{name}.log")
            self._processes.append(process)
        if ready is None:
            return process, None
        try:
            return process, process.wait_for_line(ready, timeout)
        except ProcessFailed:
            process.stop(self.grace)
            raise

    def restart(
        self,
        process: ManagedProcess,
        *,
        ready: re.Pattern[str] | None = None,
        timeout: float = 120.0,
    ) -> tuple[ManagedProcess, re.Match[str] | None]:
        """Stop `process` if it still runs and start it again with the same command."""
        if process.alive():
            process.stop(self.grace)
        with self._lock:
            if process in self._processes:
                self._processes.remove(process)
        return self.start(process.name, process.argv, env=process.env, ready=ready, timeout=timeout)

    def stop_all(self) -> None:
        """SIGTERM to everyone at once, then SIGKILL whoever outlives the grace period.

        The group is closed afterwards: a start from another thread then fails.
        """
        with self._lock:
            self._closed = True
        running = [p for p in reversed(self._processes) if p.alive()]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + self.grace
        try:
            for process in running:
                process.wait(deadline - time.monotonic())
        finally:
            # Also reached on a second Ctrl-C during the grace period.
            for process in self._processes:
                if process.alive():
                    process.kill()
                else:
                    process.wait(0)
            self._processes.clear()


class Terminated(BaseException):
    """SIGTERM arrived; raised so `with` blocks tear down as on Ctrl-C."""


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """While inside, SIGTERM raises `Terminated` in the main thread."""

    def _raise(signum: int, frame: FrameType | None) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
