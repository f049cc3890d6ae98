"""Secure aggregation by pairwise masks that cancel in the sum.

Each site makes an X25519 key pair for a study and publishes the public half
(signed with its consortium certificate key, so a hub cannot swap keys in the
middle). For every pair of sites a shared seed is agreed; site i adds the mask
of every peer j > i and subtracts that of every j < i, modulo 2**128. The hub
adds the masked vectors and the masks cancel: it reads only the cross-site
total. Reals travel in fixed point (32 fractional bits); counts as integers.
A site that drops out after the keys went round makes the sum unreadable, so
the hub then restarts the key round without it.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import NameOID

from shared_cdm.errors import InvalidInput, Refused

MODULUS = 1 << 128
FRACTION_BITS = 32
_BYTES = 16
MIN_SITES = 3


def encode_fixed(x: float) -> int:
    return round(x * (1 << FRACTION_BITS)) % MODULUS


def decode_fixed(v: int) -> float:
    signed = v - MODULUS if v >= MODULUS // 2 else v
    return signed / (1 << FRACTION_BITS)


def decode_int(v: int) -> int:
    return v - MODULUS if v >= MODULUS // 2 else v


# Vectors mod 2**128 are held as (n, 2) uint64 arrays [low, high] so masking
# and summing run in numpy; the wire format is 16 little-endian bytes per value.
Lanes = np.ndarray


def to_lanes(values: Sequence[int] | Lanes) -> Lanes:
    if isinstance(values, np.ndarray):
        if values.ndim == 2 and values.shape[1] == 2 and values.dtype == np.uint64:
            return values.copy()
        return int_lanes(values)
    raw = b"".join((v % MODULUS).to_bytes(_BYTES, "little") for v in values)
    return np.frombuffer(raw, dtype="<u8").reshape(-1, 2).copy()


def int_lanes(values: np.ndarray) -> Lanes:
    """Signed 64-bit integers as two's-complement values mod 2**128."""
    signed = np.asarray(values, dtype=np.int64).ravel()
    lo = signed.view(np.uint64)
    hi = np.where(signed < 0, np.uint64(0xFFFFFFFFFFFFFFFF), np.uint64(0))
    return np.stack([lo, hi], axis=1)


_SAFE = float(1 << 62)


def encode_fixed_array(values: np.ndarray) -> Lanes:
    """Fixed-point encoding of a float array, vectorised; huge values take the exact path."""
    scaled = np.rint(np.asarray(values, dtype=float).ravel() * (1 << FRACTION_BITS))
    if not np.all(np.isfinite(scaled)):
        raise InvalidInput("cannot encode a non-finite value for secure aggregation")
    if np.all(np.abs(scaled) < _SAFE):
        return int_lanes(scaled.astype(np.int64))
    return to_lanes([encode_fixed(float(v)) for v in np.asarray(values, dtype=float).ravel()])


def from_lanes(lanes: Lanes) -> list[int]:
    lo, hi = lanes[:, 0].tolist(), lanes[:, 1].tolist()
    return [low | (high << 64) for low, high in zip(lo, hi, strict=True)]


def _add(a: Lanes, b: Lanes) -> Lanes:
    lo = a[:, 0] + b[:, 0]
    carry = (lo < a[:, 0]).astype(np.uint64)
    return np.stack([lo, a[:, 1] + b[:, 1] + carry], axis=1)


def _sub(a: Lanes, b: Lanes) -> Lanes:
    lo = a[:, 0] - b[:, 0]
    borrow = (a[:, 0] < b[:, 0]).astype(np.uint64)
    return np.stack([lo, a[:, 1] - b[:, 1] - borrow], axis=1)


def pack(values: Sequence[int] | Lanes) -> str:
    lanes = values if isinstance(values, np.ndarray) else to_lanes(values)
    return base64.b64encode(lanes.astype("<u8").tobytes()).decode("ascii")


def _unpack_lanes(text: str) -> Lanes:
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise InvalidInput(f"masked vector is not base64: {exc}") from exc
    if len(raw) % _BYTES:
        raise InvalidInput("masked vector has a truncated element")
    return np.frombuffer(raw, dtype="<u8").reshape(-1, 2).copy()


def unpack(text: str) -> list[int]:
    return from_lanes(_unpack_lanes(text))


@dataclass(frozen=True)
class SiteKeys:
    private_raw: bytes  # stays at the site (its state database)
    public_b64: str


def new_site_keys() -> SiteKeys:
    key = X25519PrivateKey.generate()
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    priv = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return SiteKeys(priv, base64.b64encode(pub).decode("ascii"))


def _announcement(site: str, context: str, public_b64: str) -> bytes:
    return f"oncofed-secagg|{site}|{context}|{public_b64}".encode()


def sign_public_key(site: str, context: str, public_b64: str, cert_key_pem: bytes) -> str:
    key = serialization.load_pem_private_key(cert_key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidInput("the site certificate key must be an EC key")
    sig = key.sign(_announcement(site, context, public_b64), ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(sig).decode("ascii")


def verify_peer(
    site: str, context: str, public_b64: str, signature_b64: str, cert_pem: str, ca_pem: bytes
) -> None:
    """Refuse a peer key that is not signed by that site's consortium certificate."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem))
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        if cn != site:
            raise Refused(f"secure aggregation: certificate for {cn!r} presented as {site!r}")
        pub = cert.public_key()
        if not isinstance(pub, ec.EllipticCurvePublicKey):
            raise Refused(f"secure aggregation: {site} certificate key is not EC")
        pub.verify(
            base64.b64decode(signature_b64),
            _announcement(site, context, public_b64),
            ec.ECDSA(hashes.SHA256()),
        )
    except (ValueError, InvalidSignature, IndexError) as exc:
        raise Refused(f"secure aggregation: key of site {site} fails verification") from exc


def _seed(own: X25519PrivateKey, peer_b64: str, context: str) -> bytes:
    shared = own.exchange(X25519PublicKey.from_public_bytes(base64.b64decode(peer_b64)))
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=context.encode()).derive(
        shared
    )


def _stream(seed: bytes, label: str, length: int) -> Lanes:
    raw = hashlib.shake_256(seed + label.encode()).digest(length * _BYTES)
    return np.frombuffer(raw, dtype="<u8").reshape(-1, 2)


def mask(
    values: Sequence[int] | Lanes,
    *,
    site: str,
    private_raw: bytes,
    peers: Mapping[str, str],
    context: str,
    label: str,
) -> str:
    """Mask one integer vector; `peers` maps every other site to its public key."""
    if len(peers) + 1 < MIN_SITES:
        raise Refused(
            f"secure aggregation needs at least {MIN_SITES} sites; this round has {len(peers) + 1}"
        )
    own = X25519PrivateKey.from_private_bytes(private_raw)
    out = to_lanes(values)
    for peer, pub in sorted(peers.items()):
        if peer == site:
            continue
        stream = _stream(_seed(own, pub, context), label, len(out))
        out = _add(out, stream) if peer > site else _sub(out, stream)
    return pack(out)


def aggregate(masked: Iterable[str]) -> list[int]:
    """Sum masked vectors modulo 2**128: the masks cancel, the total remains."""
    total: Lanes | None = None
    for text in masked:
        vec = _unpack_lanes(text)
        if total is None:
            total = vec
        elif len(vec) != len(total):
            raise InvalidInput("masked vectors differ in length")
        else:
            total = _add(total, vec)
    if total is None:
        raise InvalidInput("no masked vectors to aggregate")
    return from_lanes(total)
