"""The link index without identifiers in clear: keyed hashes and sealed values.

Every hospital identifier that keys a row of the state database (patient IDs,
admission IDs, source row keys of quarantined rows) is stored as its link hash:
HMAC-SHA256 under a key derived from the site secret, with a per-kind label, in
hex. The same ID always gives the same hash at this site, so lookups and joins
work as before; nobody without the secret can test a guessed ID.

Where the pipeline or the honest broker needs an ID back (re-reading a source by
patient or admission ID, a CDM surrogate key derived from the admission ID, the
broker's answer) it is sealed, as are the connectors' watermarks (the last key
read may be a patient ID): an AES-GCM envelope under the vault key, whose
associated data names the purpose and the row (the pseudonym and hash), so a
ciphertext moved to another row fails its integrity check.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from edge_node.pipeline.deid import Pseudonymizer
from edge_node.security.vault import ENV_KEY, ENV_KEY_FILE, KEY_FILE, Vault, load_vault
from shared_cdm.errors import InvalidInput, Unauthenticated

_LINK_LABEL = b"oncofed-edge/link-index/v1"
_SEP = "\x1f"
PATIENT, ADMISSION, ROW = "patient", "admission", "row"
REID_AAD = "oncofed-edge/reid-map/v1"
ADMISSION_AAD = "oncofed-edge/admission-id/v1"
QUARANTINE_AAD = "oncofed-edge/quarantine/v1"
WATERMARK_AAD = "oncofed-edge/watermark/v1"


def require_sync_vault(home: Path) -> Vault:
    """The vault a sync needs: the link index is never written without one."""
    vault = load_vault(home)
    if vault is None:
        raise Unauthenticated(
            "no vault key: the re-identification map is stored encrypted, so a sync needs "
            f"one; run `oncofed-edge init` (writes HOME/{KEY_FILE}) or "
            f"`oncofed-edge vault init`, or set {ENV_KEY} or {ENV_KEY_FILE}",
            code="vault_key_missing",
        )
    return vault


def aad(purpose: str, *parts: str) -> bytes:
    return _SEP.join((purpose, *parts)).encode()


class IdentifierGuard:
    """Link hashes under the site secret, seals under the vault key."""

    __slots__ = ("_hashes", "vault")

    def __init__(self, secret: bytes, vault: Vault) -> None:
        self._hashes = Pseudonymizer(hmac.digest(secret, _LINK_LABEL, hashlib.sha256))
        self.vault = vault

    def __repr__(self) -> str:
        return f"IdentifierGuard({self.vault!r})"

    def link(self, kind: str, value: str) -> str:
        """The link hash of an identifier of `kind` (64 hex digits)."""
        return self._hashes.digest_hex(kind, value)

    def patient(self, patient_id: str) -> str:
        return self.link(PATIENT, patient_id)

    def admission(self, admission_id: str) -> str:
        return self.link(ADMISSION, admission_id)

    def row(self, source: str, table: str, key: str) -> str:
        return self.link(ROW, f"{source}/{table}/{key}")

    def seal(self, value: str, associated: bytes) -> str:
        return seal_with(self.vault, value, associated)

    def open(self, sealed: str, associated: bytes, *, what: str) -> str:
        return open_with(self.vault, sealed, associated, what=what)


def seal_with(vault: Vault, value: str, associated: bytes) -> str:
    """`value` encrypted under `vault`, bound to `associated`, as base64 text."""
    return base64.b64encode(vault.encrypt(value.encode(), associated)).decode("ascii")


def open_with(vault: Vault, sealed: str, associated: bytes, *, what: str) -> str:
    """The value sealed by `seal_with`; a wrong key or altered text raises, naming `what`."""
    try:
        envelope = base64.b64decode(sealed.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise InvalidInput(
            f"{what} is not sealed text (damaged)", code="vault_not_envelope"
        ) from None
    return vault.decrypt(envelope, associated, what=what).decode()


def seal_quarantine(
    guard: IdentifierGuard, row_hash: str, key: str, reason: str, record: dict[str, Any] | None
) -> tuple[str, dict[str, str]]:
    """(sealed reason, sealed record) of a quarantined row; the record keeps its source key."""
    sealed_reason = guard.seal(reason, aad(QUARANTINE_AAD, "reason", row_hash))
    payload = json.dumps({"key": key, "record": record}, sort_keys=True)
    return sealed_reason, {"sealed": guard.seal(payload, aad(QUARANTINE_AAD, "record", row_hash))}


def open_quarantine(vault: Vault, row: dict[str, Any]) -> dict[str, Any]:
    """A quarantine row with its reason, record and source row key in clear."""
    what = f"quarantined row {row['source']}/{row['source_table']} #{row.get('id')}"
    row_hash = str(row["row_key"])
    reason = open_with(
        vault, str(row["reason"]), aad(QUARANTINE_AAD, "reason", row_hash), what=what
    )
    sealed = row.get("record")
    if isinstance(sealed, str):  # JSON read as text (SQLite through raw SQL)
        sealed = json.loads(sealed)
    if not isinstance(sealed, dict) or not isinstance(sealed.get("sealed"), str):
        raise InvalidInput(f"{what} has no sealed record (damaged)", code="vault_not_envelope")
    payload = json.loads(
        open_with(vault, sealed["sealed"], aad(QUARANTINE_AAD, "record", row_hash), what=what)
    )
    return {**row, "row_key": payload["key"], "reason": reason, "record": payload["record"]}
