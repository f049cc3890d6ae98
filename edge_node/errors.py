"""Where the edge maps errors: `OncoFedError` kinds to CLI exit codes, gRPC status to errors.

Every other module raises typed errors and lets these two functions decide what
they become at the boundary.
"""

from __future__ import annotations

import grpc

from shared_cdm.errors import (
    EXIT_CODES,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    OncoFedError,
    Unauthenticated,
    Unavailable,
)

# Worth another attempt: the hub is restarting, the tunnel is down, or it was slow.
TRANSIENT_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})

_FROM_GRPC: dict[grpc.StatusCode, type[OncoFedError]] = {
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
    grpc.StatusCode.RESOURCE_EXHAUSTED: Unavailable,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: Forbidden,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidInput,
    grpc.StatusCode.FAILED_PRECONDITION: Conflict,
    grpc.StatusCode.ALREADY_EXISTS: Conflict,
}


def exit_code_for(error: OncoFedError) -> int:
    """The process exit code for an error reaching the CLI."""
    return EXIT_CODES.get(error.kind, 1)


def is_transient(exc: BaseException) -> bool:
    """True for an RPC failure that a retry may cure."""
    return isinstance(exc, grpc.RpcError) and _status(exc) in TRANSIENT_CODES


def error_from_rpc(exc: grpc.RpcError, what: str) -> OncoFedError:
    """A typed error for a failed RPC, naming what the edge was trying to do."""
    status = _status(exc)
    cls = _FROM_GRPC.get(status) if status is not None else None
    details = _details(exc)
    name = status.name if status is not None else "UNKNOWN"
    message = f"hub {what} failed ({name}): {details}" if details else f"hub {what} failed ({name})"
    return (cls or OncoFedError)(message, code=f"hub_{name.lower()}")


def _status(exc: grpc.RpcError) -> grpc.StatusCode | None:
    code = getattr(exc, "code", None)
    return code() if callable(code) else None


def _details(exc: grpc.RpcError) -> str:
    details = getattr(exc, "details", None)
    text = details() if callable(details) else None
    return str(text) if text else ""
