from __future__ import annotations

import grpc
import pytest

from hub.errors import GRPC_STATUS, HTTP_STATUS, grpc_status_for, http_status_for
from shared_cdm.errors import Conflict, ErrorKind, Forbidden, InvalidInput, NotFound, OncoFedError


def test_every_error_kind_has_an_http_and_a_grpc_status() -> None:
    assert set(HTTP_STATUS) == set(ErrorKind)
    assert set(GRPC_STATUS) == set(ErrorKind)


@pytest.mark.parametrize(
    ("error", "http", "code"),
    [
        (InvalidInput("x"), 422, grpc.StatusCode.INVALID_ARGUMENT),
        (NotFound("x"), 404, grpc.StatusCode.NOT_FOUND),
        (Forbidden("x"), 403, grpc.StatusCode.PERMISSION_DENIED),
        (Conflict("x"), 409, grpc.StatusCode.FAILED_PRECONDITION),
    ],
)
def test_mapping(error: OncoFedError, http: int, code: grpc.StatusCode) -> None:
    assert http_status_for(error) == http
    assert grpc_status_for(error) == code
