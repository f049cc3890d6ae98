"""The site's half of secure aggregation, after disclosure control.

A keys round adds this site's signed public key to the payload and keeps the key
pair for the study; a mask round checks every relayed peer key (signed by that
peer's consortium certificate, an edge certificate, named as the peer) and masks
the payload's vectors. Anything wrong is REFUSED: the hub gets nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge_node.store.secagg_keys import SecaggKeyStore
from federated_ml.analyses import secure_rounds as sr
from protocol.tls import TlsFiles, identity_from_cert_pem
from shared_cdm.errors import InvalidInput, Refused


@dataclass(frozen=True)
class SiteIdentity:
    """The site's name and its consortium certificate, key and CA (PEM)."""

    site: str
    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes

    @classmethod
    def from_files(cls, site: str, files: TlsFiles) -> SiteIdentity:
        ca, cert, key = files.read()
        return cls(site=site, cert_pem=cert, key_pem=key, ca_pem=ca)


def _refuse(message: str) -> Refused:
    return Refused(f"secure aggregation: {message}; nothing is released", code="secagg_refused")


def check_peers(params: Mapping[str, Any], site: str) -> None:
    """Every relayed peer is an edge certificate's owner with a complete announcement."""
    sec = params.get(sr.SECAGG)
    peers = sec.get("peers") if isinstance(sec, Mapping) else None
    if not isinstance(peers, Mapping) or site not in peers:
        raise _refuse("the mask round does not list this site among its peers")
    for peer, info in peers.items():
        fields = ("public_key", "signature", "cert_pem")
        if not isinstance(info, Mapping) or not all(isinstance(info.get(f), str) for f in fields):
            raise _refuse(f"the key relayed for {peer} is incomplete")
        if peer == site:
            continue
        try:
            identity = identity_from_cert_pem(str(info["cert_pem"]).encode())
        except (InvalidInput, ValueError) as exc:
            raise _refuse(f"the certificate relayed for {peer} cannot be read") from exc
        if identity.role != "edge" or identity.common_name != peer:
            raise _refuse(f"the certificate relayed for {peer} is not that site's edge certificate")


def secure_step(
    payload: dict[str, Any],
    params: Mapping[str, Any],
    *,
    identity: SiteIdentity | None,
    study_id: str,
    keys: SecaggKeyStore,
) -> dict[str, Any]:
    """The payload as it leaves: with this site's public key, or masked, or unchanged."""
    if sr.SECAGG not in params:
        if sr.SECURE in payload:
            raise _refuse("per-time vectors need a mask round")
        return payload
    if identity is None:
        raise _refuse("this site has no certificate configured for it")
    phase = sr.phase(params)
    if phase == "mask":
        check_peers(params, identity.site)
        existing = keys.get(study_id)
        if existing is None:
            raise _refuse("this site holds no key from the study's keys round (expired?)")
    elif phase == "keys":
        existing = None
    else:
        raise _refuse(f"unknown phase {phase!r}")
    try:
        out, kept = sr.site_side(
            payload,
            params,
            site=identity.site,
            study_id=study_id,
            keys=existing,
            cert_pem=identity.cert_pem,
            cert_key_pem=identity.key_pem,
            ca_pem=identity.ca_pem,
        )
    except InvalidInput as exc:
        raise _refuse(exc.message) from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise _refuse(f"the round's keys are malformed ({type(exc).__name__})") from exc
    if phase == "keys" and kept is not None:
        keys.put(study_id, kept)
    if not all(isinstance(v, str) for v in dict(out.get(sr.SECURE, {})).values()):
        raise _refuse("a vector would have left unmasked")
    return out
