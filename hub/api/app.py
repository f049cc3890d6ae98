"""`create_app`: the REST API over a wired hub, with the one error handler."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from hub.api import registry, studies
from hub.bootstrap import Hub, build_hub
from hub.errors import http_status_for
from hub.settings import HubSettings
from shared_cdm.errors import ErrorKind, InvalidInput, OncoFedError

log = logging.getLogger(__name__)


def _error_response(exc: OncoFedError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.kind is ErrorKind.UNAUTHENTICATED else None
    return JSONResponse(
        status_code=http_status_for(exc),
        content={"detail": exc.message, "code": exc.code},
        headers=headers,
    )


async def _oncofed_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, OncoFedError):  # registered for OncoFedError only
        raise exc
    if exc.kind is ErrorKind.INTERNAL:
        log.error("%s %s failed: %s", request.method, request.url.path, exc)
    return _error_response(exc)


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    # A malformed body is the caller's input error like any other: same shape, 422.
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    where = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in errors
    )
    message = f"the request is not valid: {where}" if where else "the request is not valid"
    return _error_response(InvalidInput(message, code="invalid_request"))


def create_app(settings: HubSettings, *, hub: Hub | None = None) -> FastAPI:
    """The API for `settings`; pass `hub` to reuse already-wired services (tests, server)."""
    wired = hub if hub is not None else build_hub(settings)
    app = FastAPI(title="OncoFed hub", version="1")
    app.state.hub = wired
    app.state.db = wired.db
    app.add_exception_handler(OncoFedError, _oncofed_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(studies.router)
    app.include_router(registry.router)
    return app
