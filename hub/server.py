"""One hub process: the gRPC service for nodes, the REST API, and the deadline sweeper.

`HubServer` starts and stops the three; `serve()` runs them until SIGTERM or
SIGINT and prints `hub ready grpc=HOST:PORT http=http://HOST:PORT` once both
listen. Port 0 picks a free port, and the line says which.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TextIO

import grpc
import uvicorn

from hub.api.app import create_app
from hub.auth import revocation_check
from hub.bootstrap import Hub, build_hub
from hub.db.session import upgrade_database
from hub.grpc_service import create_grpc_server
from hub.settings import HubSettings
from hub.studies.service import Clock, utc_now
from shared_cdm.errors import OncoFedError, Unavailable

log = logging.getLogger(__name__)
_STARTUP_TIMEOUT_S = 30.0


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise Unavailable(f"cannot listen for HTTP on {host}:{port}: {exc}") from exc
    sock.listen(128)
    return sock


class HubServer:
    """The running hub; `start()` returns once both servers accept connections."""

    def __init__(self, settings: HubSettings, *, clock: Clock = utc_now) -> None:
        self.settings = settings
        self._clock = clock
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._grpc: grpc.Server | None = None
        self._http: uvicorn.Server | None = None
        self._hub: Hub | None = None
        self.grpc_port = 0
        self.http_port = 0

    @property
    def ready_line(self) -> str:
        s = self.settings
        line = f"hub ready grpc={s.grpc_host}:{self.grpc_port} http=http://{s.http_host}:{self.http_port}"
        if self._hub is not None and self._hub.flower is not None:
            line += f" flower={self._hub.flower.superlink_address}"
        return line

    def start(self) -> None:
        self.settings.check_startable()
        self.settings.home.mkdir(parents=True, exist_ok=True)
        upgrade_database(self.settings.db_url)
        hub = self._hub = build_hub(self.settings, clock=self._clock)
        if hub.flower is not None:
            hub.flower.start()  # the SuperLink for ML studies; stopped in stop()
        # Finish whatever a previous run left due before taking new work.
        hub.studies.sweep()
        self._grpc, self.grpc_port = create_grpc_server(
            self.settings,
            hub.studies,
            hub.nodes,
            self._clock,
            interceptors=[revocation_check(self.settings.tls_ca_cert)],
        )
        self._grpc.start()
        self._start_http(hub)
        self._spawn("hub-sweeper", self._sweep_forever)

    def _start_http(self, hub: Hub) -> None:
        sock = _listen(self.settings.http_host, self.settings.http_port)
        self.http_port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            create_app(self.settings, hub=hub), log_level="warning", access_log=False
        )
        self._http = uvicorn.Server(config)
        http = self._http
        self._spawn("hub-http", lambda: http.run(sockets=[sock]))
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        while not http.started:
            if time.monotonic() > deadline or not self._threads[-1].is_alive():
                raise Unavailable("the HTTP server did not start", code="http_start_failed")
            time.sleep(0.02)

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _sweep_forever(self) -> None:
        if self._hub is None:
            return
        while not self._stop.wait(self.settings.sweep_interval_s):
            try:
                self._hub.studies.sweep()
            except OncoFedError as exc:
                log.warning("deadline sweep failed: %s", exc)
            except Exception:
                # The next sweep retries; a database hiccup must not stop the loop.
                log.exception("deadline sweep failed")

    def wait(self) -> None:
        """Block until `stop()` is called (from a signal handler or another thread)."""
        # Short waits keep the main thread responsive to signals.
        while not self._stop.wait(0.5):
            continue

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self, grace_s: float = 5.0) -> None:
        self._stop.set()
        if self._hub is not None and self._hub.flower is not None:
            # First: the SuperLink runs in a session of its own, so a hub killed after a
            # slow shutdown would leave it behind.
            self._hub.flower.stop()
        if self._http is not None:
            self._http.should_exit = True
        if self._grpc is not None:
            self._grpc.stop(grace_s).wait()
        for thread in self._threads:
            thread.join(timeout=grace_s + 5)
        if self._hub is not None:
            self._hub.db.dispose()


def serve(settings: HubSettings, *, out: TextIO = sys.stdout) -> None:
    """Run the hub until SIGTERM or SIGINT."""
    server = HubServer(settings)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signum)
        server.request_stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.start()
        print(server.ready_line, file=out, flush=True)
        server.wait()
    finally:
        server.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
