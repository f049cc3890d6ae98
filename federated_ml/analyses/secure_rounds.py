"""Round parameters shared by analyses that release vectors through secure aggregation.

A keys round asks every site for a signed X25519 public key (the site's runner
adds it to its payload under `SECAGG_KEYS`); a mask round hands every site the
others' keys, and the runner masks each vector the analysis puts under
`SECURE` before anything leaves. The analysis itself never sees a key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from federated_ml import secure_agg
from federated_ml.analyses.base import SitePayloads
from shared_cdm.errors import InvalidInput

SECAGG = "secagg"  # key in round params
SECAGG_KEYS = "secagg_keys"  # key in a keys-round payload
SECURE = "secure"  # key in a mask-round payload: {label: vector}


def keys_round(context: str) -> dict[str, Any]:
    return {SECAGG: {"phase": "keys", "context": context}}


def mask_round(context: str, payloads: SitePayloads) -> dict[str, Any]:
    peers = {}
    for site, payload in payloads.items():
        keys = payload.get(SECAGG_KEYS)
        if not isinstance(keys, Mapping):
            raise InvalidInput(f"site {site} sent no secure-aggregation key")
        peers[site] = dict(keys)
    if len(peers) < secure_agg.MIN_SITES:
        raise InvalidInput(
            f"secure aggregation needs at least {secure_agg.MIN_SITES} sites; "
            f"{len(peers)} took part"
        )
    return {SECAGG: {"phase": "mask", "context": context, "peers": peers}}


def phase(params: Mapping[str, Any]) -> str | None:
    sec = params.get(SECAGG)
    return str(sec.get("phase")) if isinstance(sec, Mapping) else None


def same_sites(state: Mapping[str, Any], payloads: SitePayloads) -> bool:
    """The masks cancel only if every site that received keys answered."""
    return sorted(payloads) == sorted(state.get("peers", []))


def unmask(payloads: SitePayloads) -> dict[str, list[int]]:
    labels = {label for p in payloads.values() for label in p.get(SECURE, {})}
    out = {}
    for label in sorted(labels):
        parts = []
        for site, p in payloads.items():
            vec = p.get(SECURE, {}).get(label)
            if not isinstance(vec, str):
                raise InvalidInput(f"site {site} sent no masked vector {label!r}")
            parts.append(vec)
        out[label] = [secure_agg.decode_int(v) for v in secure_agg.aggregate(parts)]
    return out


def site_side(
    payload: dict[str, Any],
    params: Mapping[str, Any],
    *,
    site: str,
    study_id: str,
    keys: secure_agg.SiteKeys | None,
    cert_pem: bytes,
    cert_key_pem: bytes,
    ca_pem: bytes,
) -> tuple[dict[str, Any], secure_agg.SiteKeys | None]:
    """What a site adds to (keys round) or does to (mask round) its payload.

    Returns the payload to release and the key pair to keep for the next round.
    """
    sec = params.get(SECAGG)
    if not isinstance(sec, Mapping):
        if SECURE in payload:
            raise InvalidInput("a payload with secure vectors needs a mask round")
        return payload, keys
    context = f"{study_id}|{sec.get('context', '')}"
    if sec.get("phase") == "keys":
        new = secure_agg.new_site_keys()
        signature = secure_agg.sign_public_key(site, context, new.public_b64, cert_key_pem)
        payload = {
            **payload,
            SECAGG_KEYS: {
                "public_key": new.public_b64,
                "signature": signature,
                "cert_pem": cert_pem.decode("ascii"),
            },
        }
        return payload, new
    if keys is None:
        raise InvalidInput("mask round without this site's key from the keys round")
    peers: dict[str, str] = {}
    for peer, info in dict(sec.get("peers", {})).items():
        if peer == site:
            if info.get("public_key") != keys.public_b64:
                raise InvalidInput("the hub relayed a different key for this site")
            continue
        secure_agg.verify_peer(
            peer, context, info["public_key"], info["signature"], info["cert_pem"], ca_pem
        )
        peers[peer] = info["public_key"]
    masked = {
        label: secure_agg.mask(
            vec if isinstance(vec, np.ndarray) else [int(v) for v in vec],
            site=site,
            private_raw=keys.private_raw,
            peers=peers,
            context=context,
            label=label,
        )
        for label, vec in payload.get(SECURE, {}).items()
    }
    return {**payload, SECURE: masked}, keys
