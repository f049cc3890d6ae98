"""De-identification primitives: the site secret, keyed pseudonyms and surrogate
keys, per-patient date shifting and what of a birth date reaches the CDM.

Everything is a keyed HMAC-SHA256 under the site secret (`pipeline.key` in the
edge home), so the same source key always gives the same pseudonym, surrogate
key and date offset at this site, and nobody without the secret can link them
back. Losing or replacing the secret changes every pseudonym: the analysis
database must then be rebuilt from the sources.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import stat
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge_node.security.vault import (
    ENV_KEY,
    ENV_KEY_FILE,
    KEY_FILE,
    Vault,
    is_envelope,
    load_vault,
)
from shared_cdm.errors import InvalidInput, Unauthenticated

SECRET_FILE = "pipeline.key"
SECRET_BYTES = 32
PSEUDONYM_HEX_CHARS = 32
# What the encrypted secret file is bound to (the AES-GCM associated data).
SECRET_AAD = b"oncofed-edge/site-secret/v1"
_MAX_SECRET_FILE = 4096
# Kind and value are joined by ASCII "unit separator", which no kind may contain.
_SEP = "\x1f"
_MASK_63 = (1 << 63) - 1
_SHIFT_KIND = "date_shift"
_BLOCK = 64  # SHA-256 block size in bytes

DateLike = TypeVar("DateLike", date, datetime)


class SiteSecret:
    """The site's HMAC key: 32 random bytes in a 0600 file, created on first use.

    Encrypted at rest when the edge has a vault key (see `edge_node.security.vault`:
    `ONCOFED_EDGE_VAULT_KEY`, `ONCOFED_EDGE_VAULT_KEY_FILE`, or `vault.key` beside the
    secret): the file then holds an AES-GCM envelope of the secret, never the secret.
    The rules, so a secret is never silently left or read in clear:

    - no vault key: the file holds the 32 bytes in clear (as before the vault existed);
    - vault key, no file: a new secret is written encrypted;
    - vault key, file in clear: refused until `oncofed-edge vault init` encrypts it;
    - file encrypted: the vault key is required, and a wrong key or altered file
      fails loudly (`Unauthenticated` / `InvalidInput`), never yielding a new secret.
    """

    @staticmethod
    def path_in(home: Path) -> Path:
        """Where the secret lives under an edge home."""
        return Path(home) / SECRET_FILE

    @staticmethod
    def load_or_create(path: Path) -> bytes:
        """The secret in `path`, created (mode 0600) if there is no file yet.

        The only place the secret is read; decrypted here when stored encrypted.
        """
        path = Path(path)
        vault = load_vault(path.parent)
        if not path.exists():
            secret = secrets.token_bytes(SECRET_BYTES)
            _create_secret(path, secret if vault is None else vault.encrypt(secret, SECRET_AAD))
        return _read_secret(path, vault)

    @staticmethod
    def is_encrypted(path: Path) -> bool:
        """Whether the secret file holds an encrypted envelope (False when in clear)."""
        return is_envelope(_read_secret_file(Path(path)))

    @staticmethod
    def encrypt_in_place(path: Path, vault: Vault) -> bool:
        """Encrypt a secret stored in clear under `vault` (atomically); False when it
        already was encrypted, after checking that `vault` opens it."""
        path = Path(path)
        data = _read_secret_file(path)
        if is_envelope(data):
            _decrypt_secret(path, data, vault)
            return False
        _check_length(path, data)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.enc.tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(vault.encrypt(data, SECRET_AAD))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return True


def _create_secret(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)  # left by a crashed run with the same pid
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        # link() never replaces: of two concurrent first runs, one secret wins.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_secret_file(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as f:
        # fstat on the open file: the mode checked is the file's whose bytes are read.
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise InvalidInput(f"site secret {path} is not a regular file", code="bad_site_secret")
        if os.name == "posix" and info.st_mode & 0o077:
            raise InvalidInput(
                f"site secret {path} is accessible to group or others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); "
                f"restrict it with `chmod 600 {path}` and run again",
                code="insecure_site_secret",
            )
        return f.read(_MAX_SECRET_FILE)


def _check_length(path: Path, data: bytes) -> None:
    if len(data) != SECRET_BYTES:
        raise InvalidInput(
            f"site secret {path} holds {len(data)} bytes, not {SECRET_BYTES}: it is damaged; "
            "restore it from backup (a new secret changes every pseudonym)",
            code="bad_site_secret",
        )


def _decrypt_secret(path: Path, data: bytes, vault: Vault) -> bytes:
    secret = vault.decrypt(data, SECRET_AAD, what=f"site secret {path}")
    _check_length(path, secret)
    return secret


def _read_secret(path: Path, vault: Vault | None) -> bytes:
    data = _read_secret_file(path)
    if len(data) != SECRET_BYTES and is_envelope(data):
        if vault is None:
            raise Unauthenticated(
                f"site secret {path} is encrypted and no vault key is configured: set "
                f"{ENV_KEY} or {ENV_KEY_FILE}, or restore {path.parent / KEY_FILE}",
                code="vault_key_missing",
            )
        return _decrypt_secret(path, data, vault)
    _check_length(path, data)
    if vault is not None:
        raise InvalidInput(
            f"site secret {path} is stored in clear but a vault key is configured "
            f"(from {vault.source}): run `oncofed-edge vault init --home {path.parent}` "
            "to encrypt it",
            code="site_secret_not_encrypted",
        )
    return data


class Pseudonymizer:
    """Keyed pseudonyms and surrogate keys: HMAC-SHA256(secret, kind + US + value)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the pseudonymization secret must be at least 16 bytes")
        # RFC 2104 with the padded-key states hashed once: about twice as fast per
        # call as hmac.digest, which sets the key up again every time.
        key = hashlib.sha256(secret).digest() if len(secret) > _BLOCK else bytes(secret)
        key = key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def __repr__(self) -> str:
        return "Pseudonymizer(<secret>)"  # never show the key

    def _mac(self, kind: str, value: str) -> bytes:
        if _SEP in kind:
            raise ValueError(f"pseudonym kind must not contain \\x1f: {kind!r}")
        inner = self._inner.copy()
        inner.update(f"{kind}{_SEP}{value}".encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def digest_hex(self, kind: str, value: str) -> str:
        """The whole HMAC in hex (64 characters), e.g. for the link index's hashes."""
        return self._mac(kind, value).hex()

    def pseudonym(self, kind: str, value: str) -> str:
        """32 hex characters (128 bits), e.g. for person_source_value and src_row."""
        return self._mac(kind, value)[: PSEUDONYM_HEX_CHARS // 2].hex()

    def surrogate_id(self, kind: str, value: str) -> int:
        """A stable key in [1, 2**63 - 1] (fits PostgreSQL BIGINT and SQLite INTEGER)."""
        return int.from_bytes(self._mac(kind, value)[:8], "big") & _MASK_63 or 1

    def date_shift_days(self, person_key: str, max_days: int) -> int:
        """A per-person offset in [-max_days, max_days], never 0, uniform over those."""
        if max_days < 1:
            raise ValueError("max_days must be at least 1")
        n = int.from_bytes(self._mac(_SHIFT_KIND, person_key)[:8], "big") % (2 * max_days)
        # 0..max-1 -> -max..-1, max..2max-1 -> 1..max: zero is skipped.
        return n - max_days if n < max_days else n - max_days + 1


class DeidPolicy(BaseModel):
    """The `[deidentification]` section of the site policy."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    dates: Literal["shift", "keep"] = "shift"
    max_shift_days: int = Field(default=180, ge=1, le=3650)
    birth: Literal["year", "year_month", "date"] = "year"
    # Notes enter the CDM de-identified (pipeline/notes.py), or with no text at all.
    note_text: Literal["scrubbed", "omit"] = "scrubbed"
    note_identifiers: Literal["tags", "surrogates"] = "tags"

    @model_validator(mode="before")
    @classmethod
    def _retired_keep_note_text(cls, data: Any) -> Any:
        # Older policy files say `keep_note_text = false`: raw note text was never
        # copied and still is not, so the line means nothing now.
        if isinstance(data, dict) and "keep_note_text" in data:
            if data["keep_note_text"] is not False:
                raise ValueError(
                    "keep_note_text is retired: note text is never copied as written; "
                    'set note_text = "scrubbed" or "omit"'
                )
            data = {k: v for k, v in data.items() if k != "keep_note_text"}
        return data


class Deidentifier:
    """Applies a `DeidPolicy` with a `Pseudonymizer`: person keys, dates, births."""

    __slots__ = ("_shifts", "policy", "pseudonymizer")
    SHIFT_CACHE = 100_000

    def __init__(self, pseudonymizer: Pseudonymizer, policy: DeidPolicy | None = None) -> None:
        self.pseudonymizer = pseudonymizer
        self.policy = policy or DeidPolicy()
        self._shifts: dict[str, int] = {}

    def person_key(self, canonical_patient_key: str) -> str:
        """The patient's pseudonym (person_source_value, and the date shift's key)."""
        return self.pseudonymizer.pseudonym("person", canonical_patient_key)

    def shift_days(self, person_key: str) -> int:
        """The person's date offset in days (0 when the policy keeps dates)."""
        if self.policy.dates == "keep":
            return 0
        # One person's rows come together: a bounded cache saves most of the HMACs.
        days = self._shifts.get(person_key)
        if days is None:
            if len(self._shifts) >= self.SHIFT_CACHE:
                self._shifts.clear()
            days = self.pseudonymizer.date_shift_days(person_key, self.policy.max_shift_days)
            self._shifts[person_key] = days
        return days

    def text_pseudonymizer(self) -> Pseudonymizer:
        """The pseudonymizer for the free-text de-identifier: the same keys, and date
        shifts that are this Deidentifier's, so a note's dates move as the person's
        CDM dates do (not at all when the policy keeps dates)."""
        return _PolicyShifts(self)

    @overload
    def shift(self, d: DateLike, person_key: str) -> DateLike: ...
    @overload
    def shift(self, d: None, person_key: str) -> None: ...
    def shift(self, d: DateLike | None, person_key: str) -> DateLike | None:
        """`d` moved by the person's offset; a datetime keeps its time of day."""
        if d is None or self.policy.dates == "keep":
            return d
        return d + timedelta(days=self.shift_days(person_key))

    def birth_fields(
        self, birth_date: date, person_key: str
    ) -> tuple[int, int | None, int | None, datetime | None]:
        """(year_of_birth, month_of_birth, day_of_birth, birth_datetime) for `person`.

        All come from the shifted birth date, so the year is the same whatever
        `birth` keeps and ages computed on shifted dates are exact to the day
        ("date"), the month ("year_month") or within a year ("year").
        """
        shifted = birth_date + timedelta(days=self.shift_days(person_key))
        keep = self.policy.birth
        month = shifted.month if keep in ("year_month", "date") else None
        if keep != "date":
            return shifted.year, month, None, None
        # OMOP: midnight when only the date is known.
        if isinstance(shifted, datetime):
            when = shifted
        else:
            when = datetime(shifted.year, shifted.month, shifted.day)
        return shifted.year, shifted.month, shifted.day, when


class _PolicyShifts(Pseudonymizer):
    """A Deidentifier's pseudonymizer whose `date_shift_days` is the Deidentifier's
    `shift_days` (the caller's `max_days` is ignored: the policy's applies)."""

    __slots__ = ("_deid",)

    def __init__(self, deid: Deidentifier) -> None:
        base = deid.pseudonymizer
        self._inner, self._outer = base._inner, base._outer
        self._deid = deid

    def date_shift_days(self, person_key: str, max_days: int) -> int:
        return self._deid.shift_days(person_key)
