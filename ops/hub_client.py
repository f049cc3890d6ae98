"""The hub's REST API as `oncofed-ops` uses it: nodes, studies, audit.

Waiting loops tolerate connection errors, because the hub they talk to may be
restarting; HTTP errors other than that are the caller's problem and raise.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx

from shared_cdm.errors import InvalidInput, NotFound, OncoFedError, Unauthenticated, Unavailable

FINAL_STATUSES = frozenset({"completed", "failed", "rejected"})


class HubTimeout(Unavailable):
    code = "hub_timeout"


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200]
    if isinstance(body, Mapping):
        detail = body.get("detail") or body.get("message") or body.get("error") or body
        return str(detail)[:300]
    return str(body)[:300]


def _error_for(response: httpx.Response) -> OncoFedError:
    what = f"{response.request.method} {response.request.url.path}"
    text = f"hub refused {what} ({response.status_code}): {_detail(response)}"
    if response.status_code in (401, 403):
        return Unauthenticated(text)
    if response.status_code == 404:
        return NotFound(text)
    if 400 <= response.status_code < 500:
        return InvalidInput(text)
    return Unavailable(text)


class HubClient:
    """Bearer-token calls to one hub; `close()` or use as a context manager."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )
        self._clock = clock
        self._sleep = sleep

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise Unavailable(f"hub at {self.base_url} is unreachable: {exc}") from exc
        if response.status_code >= 400:
            raise _error_for(response)
        return response.json()

    def nodes(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/api/v1/nodes"))

    def audit(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/api/v1/audit"))

    def study(self, study_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/api/v1/studies/{study_id}"))

    def submit_study(
        self,
        spec: Mapping[str, Any],
        *,
        sites: Iterable[str] | None = None,
        title: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"spec": dict(spec)}
        if title is not None:
            body["title"] = title
        if sites is not None:
            body["sites"] = list(sites)
        return dict(self._call("POST", "/api/v1/studies", body))

    def approve_study(self, study_id: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/api/v1/studies/{study_id}/approve"))

    def _poll(
        self,
        what: str,
        timeout: float,
        interval: float,
        probe: Callable[[], tuple[Any, str]],
        watch: Callable[[], None] | None,
    ) -> Any:
        """Call `probe` until it returns (something not None, _); its str says what it saw."""
        deadline = self._clock() + timeout
        last = "no answer yet"
        while True:
            if watch is not None:
                watch()  # raises when waiting further is pointless (a process died)
            try:
                found, last = probe()
            except Unavailable as exc:
                found, last = None, str(exc)
            if found is not None:
                return found
            if self._clock() >= deadline:
                raise HubTimeout(
                    f"timed out after {timeout:.0f} s waiting for {what} (last seen: {last})"
                )
            self._sleep(interval)

    def wait_for_nodes(
        self,
        names: Iterable[str],
        *,
        timeout: float = 120.0,
        interval: float = 0.5,
        watch: Callable[[], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Block until every named node is registered and online."""
        wanted = set(names)

        def probe() -> tuple[list[dict[str, Any]] | None, str]:
            nodes = self.nodes()
            online = {n.get("name") for n in nodes if n.get("status") == "online"}
            seen = f"online: {', '.join(sorted(map(str, online))) or 'none'}"
            return (nodes if wanted <= online else None), seen

        return list(
            self._poll(f"nodes {', '.join(sorted(wanted))} online", timeout, interval, probe, watch)
        )

    def wait_for_study(
        self,
        study_id: str,
        *,
        timeout: float = 600.0,
        interval: float = 0.5,
        watch: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """Block until the study is completed, failed or rejected; returns it."""

        def probe() -> tuple[dict[str, Any] | None, str]:
            study = self.study(study_id)
            status = study.get("status")
            return (study if status in FINAL_STATUSES else None), f"status {status}"

        return dict(self._poll(f"study {study_id} to finish", timeout, interval, probe, watch))
