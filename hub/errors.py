"""The one mapping from an error's kind to HTTP status and to gRPC status code."""

from __future__ import annotations

import grpc

from shared_cdm.errors import ErrorKind, OncoFedError

HTTP_STATUS: dict[ErrorKind, int] = {
    ErrorKind.INVALID: 422,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.UNAUTHENTICATED: 401,
    ErrorKind.CONFLICT: 409,
    ErrorKind.REFUSED: 403,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.INTERNAL: 500,
}

GRPC_STATUS: dict[ErrorKind, grpc.StatusCode] = {
    ErrorKind.INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorKind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorKind.FORBIDDEN: grpc.StatusCode.PERMISSION_DENIED,
    ErrorKind.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    # A request that clashes with the current state, e.g. another protocol major.
    ErrorKind.CONFLICT: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorKind.REFUSED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorKind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorKind.INTERNAL: grpc.StatusCode.INTERNAL,
}


def http_status_for(exc: OncoFedError) -> int:
    return HTTP_STATUS.get(exc.kind, 500)


def grpc_status_for(exc: OncoFedError) -> grpc.StatusCode:
    return GRPC_STATUS.get(exc.kind, grpc.StatusCode.INTERNAL)
