"""The project's one error base class.

Every layer raises a subclass; the hub maps `kind` to HTTP and gRPC status in one
place each, and the command-line tools map it to exit codes.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    INVALID = "invalid"  # the caller's input is wrong
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"  # authenticated, but not allowed
    UNAUTHENTICATED = "unauthenticated"
    CONFLICT = "conflict"  # the request clashes with current state
    REFUSED = "refused"  # a site's policy says no
    UNAVAILABLE = "unavailable"  # a peer or resource cannot be reached now
    INTERNAL = "internal"


class OncoFedError(Exception):
    """An error a person can act on: a stable `code` and a readable message."""

    kind: ErrorKind = ErrorKind.INTERNAL
    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class InvalidInput(OncoFedError):
    kind = ErrorKind.INVALID
    code = "invalid_input"


class NotFound(OncoFedError):
    kind = ErrorKind.NOT_FOUND
    code = "not_found"


class Forbidden(OncoFedError):
    kind = ErrorKind.FORBIDDEN
    code = "forbidden"


class Unauthenticated(OncoFedError):
    kind = ErrorKind.UNAUTHENTICATED
    code = "unauthenticated"


class Conflict(OncoFedError):
    kind = ErrorKind.CONFLICT
    code = "conflict"


class Refused(OncoFedError):
    kind = ErrorKind.REFUSED
    code = "refused"


class Unavailable(OncoFedError):
    kind = ErrorKind.UNAVAILABLE
    code = "unavailable"


# CLI exit codes by kind: 0 ok, 1 internal, 2 usage (typer), 3.. by kind.
EXIT_CODES: dict[ErrorKind, int] = {
    ErrorKind.INTERNAL: 1,
    ErrorKind.INVALID: 3,
    ErrorKind.NOT_FOUND: 4,
    ErrorKind.FORBIDDEN: 5,
    ErrorKind.UNAUTHENTICATED: 5,
    ErrorKind.CONFLICT: 6,
    ErrorKind.REFUSED: 7,
    ErrorKind.UNAVAILABLE: 8,
}
