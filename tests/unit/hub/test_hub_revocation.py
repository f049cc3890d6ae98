"""The hub's certificate revocation list: a CRL past its next update fails closed,
like an unusable one, while no CRL at all still means nothing is revoked."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hub.auth import CRL_FILE_NAME, RevocationCheck, RevocationList
from protocol.tls import KeyPair, create_ca, issue_certificate
from shared_cdm.errors import Unauthenticated
from tests.unit.hub.hub_testkit import FakeClock

SIGNED_AT = datetime(2026, 1, 1, tzinfo=UTC)
NEXT_UPDATE = SIGNED_AT + timedelta(days=30)


@pytest.fixture
def ca_pair() -> KeyPair:
    return create_ca()


@pytest.fixture
def tls(tmp_path: Path, ca_pair: KeyPair) -> Path:
    (tmp_path / "ca.crt").write_bytes(ca_pair.cert_pem)
    return tmp_path


def write_crl(
    tls: Path,
    ca_pair: KeyPair,
    *,
    revoked: tuple[int, ...] = (),
    signed_at: datetime = SIGNED_AT,
    next_update: datetime = NEXT_UPDATE,
) -> None:
    key = serialization.load_pem_private_key(ca_pair.key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(x509.load_pem_x509_certificate(ca_pair.cert_pem).subject)
        .last_update(signed_at)
        .next_update(next_update)
    )
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(signed_at)
            .build()
        )
    pem = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    tmp = tls / ".crl.tmp"
    tmp.write_bytes(pem)
    tmp.replace(tls / CRL_FILE_NAME)


def serial_of(cert_pem: bytes) -> int:
    return x509.load_pem_x509_certificate(cert_pem).serial_number


def revocations(tls: Path, clock: FakeClock) -> RevocationList:
    return RevocationList(tls / CRL_FILE_NAME, tls / "ca.crt", clock=clock)


def test_a_crl_past_its_next_update_refuses_everyone_and_logs_why_once(
    tls: Path, ca_pair: KeyPair, caplog: pytest.LogCaptureFixture
) -> None:
    site = issue_certificate(ca_pair, "site-a", "edge").cert_pem
    write_crl(tls, ca_pair)  # revokes nothing, but is stale
    checks = revocations(tls, FakeClock(NEXT_UPDATE + timedelta(seconds=1)))
    with caplog.at_level(logging.ERROR, logger="hub.auth"):
        for _ in range(2):
            with pytest.raises(Unauthenticated) as refused:
                checks.check(site)
            assert refused.value.code == "revocation_list_unusable"
            assert "next update was due 2026-01-31 00:00:00Z" in refused.value.message
            assert "a later revocation may be missing" in refused.value.message
            assert "oncofed-ops ca renew-crl" in refused.value.message
    stale_logs = [r for r in caplog.records if "next update was due" in r.getMessage()]
    assert len(stale_logs) == 1
    assert str(tls / CRL_FILE_NAME) in stale_logs[0].getMessage()


def test_a_fresh_crl_turns_stale_as_time_passes_and_a_renewal_restores_it(
    tls: Path, ca_pair: KeyPair
) -> None:
    site, other = (issue_certificate(ca_pair, n, "edge").cert_pem for n in ("site-a", "site-b"))
    write_crl(tls, ca_pair, revoked=(serial_of(site),))
    clock = FakeClock(NEXT_UPDATE - timedelta(seconds=1))
    checks = revocations(tls, clock)
    checks.check(other)
    with pytest.raises(Unauthenticated) as revoked:
        checks.check(site)
    assert revoked.value.code == "certificate_revoked"

    clock.advance(1)  # the file is unchanged; only the time moves past its next update
    with pytest.raises(Unauthenticated, match="next update was due") as stale:
        checks.check(other)
    assert stale.value.code == "revocation_list_unusable"

    # The CA renews the list (same entries, later next update); the hub picks it up.
    write_crl(
        tls,
        ca_pair,
        revoked=(serial_of(site),),
        signed_at=clock.now,
        next_update=clock.now + timedelta(days=365),
    )
    checks.check(other)
    with pytest.raises(Unauthenticated) as still_revoked:
        checks.check(site)
    assert still_revoked.value.code == "certificate_revoked"


def test_without_a_crl_nothing_is_revoked_whatever_the_time(tls: Path, ca_pair: KeyPair) -> None:
    site = issue_certificate(ca_pair, "site-a", "edge").cert_pem
    checks = revocations(tls, FakeClock(datetime(2100, 1, 1, tzinfo=UTC)))
    checks.check(site)
    # A stale list removed again: back to nothing revoked.
    write_crl(tls, ca_pair)
    with pytest.raises(Unauthenticated):
        checks.check(site)
    (tls / CRL_FILE_NAME).unlink()
    checks.check(site)


class _Aborted(Exception):
    pass


class _Context:
    """The two things the interceptor asks of a gRPC servicer context."""

    def __init__(self, cert_pem: bytes) -> None:
        self._cert_pem = cert_pem
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"x509_pem_cert": [self._cert_pem]}

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.aborted = (code, details)
        raise _Aborted


class _Call:
    method = "/oncofed.Node/Heartbeat"


def test_the_interceptor_refuses_a_call_under_a_stale_crl_and_logs_the_reason(
    tls: Path, ca_pair: KeyPair, caplog: pytest.LogCaptureFixture
) -> None:
    write_crl(tls, ca_pair)
    check = RevocationCheck(revocations(tls, FakeClock(NEXT_UPDATE + timedelta(days=1))))
    handled: list[Any] = []

    def behaviour(request: Any, context: Any) -> str:
        handled.append(request)
        return "answered"

    def continuation(details: Any) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(behaviour)

    handler = check.intercept_service(continuation, _Call())  # type: ignore[arg-type]
    assert handler is not None and handler.unary_unary is not None
    context = _Context(issue_certificate(ca_pair, "site-a", "edge").cert_pem)
    with caplog.at_level(logging.WARNING, logger="hub.auth"), pytest.raises(_Aborted):
        handler.unary_unary("ping", context)  # type: ignore[arg-type]
    assert handled == []
    assert context.aborted is not None
    code, details = context.aborted
    assert code is grpc.StatusCode.UNAUTHENTICATED
    assert details.startswith("revocation_list_unusable: ")
    assert "next update was due" in details
    refusals = [r for r in caplog.records if "/oncofed.Node/Heartbeat refused" in r.getMessage()]
    assert len(refusals) == 1 and "next update was due" in refusals[0].getMessage()
