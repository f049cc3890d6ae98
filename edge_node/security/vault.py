"""The edge's vault: AES-256-GCM encryption at rest under a key the operator controls.

The vault key (32 bytes) comes from, in order:

1. `ONCOFED_EDGE_VAULT_KEY`: the key itself, as 64 hex digits or base64;
2. `ONCOFED_EDGE_VAULT_KEY_FILE`: a file holding it (must exist when set);
3. `HOME/vault.key`, written (mode 0600) by `oncofed-edge vault init`.

With none of them there is no vault and `load_vault` returns None. The key is never
printed, logged or put in an error message; only its key id (an HMAC of a fixed
label under the key) is shown, so two keys can be told apart.

An envelope is `b"OFV" | version (1 byte) | key id (8) | nonce (12) | tag (16) |
ciphertext`. The header and the caller's `aad` (what the bytes are for, e.g.
`b"oncofed-edge/site-secret/v1"`) are authenticated, so an envelope cannot be
moved to another purpose. A wrong key raises `Unauthenticated`, altered bytes
`InvalidInput`, each naming what failed.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from Crypto.Cipher import AES

from shared_cdm.errors import InvalidInput, Unauthenticated

ENV_KEY = "ONCOFED_EDGE_VAULT_KEY"
ENV_KEY_FILE = "ONCOFED_EDGE_VAULT_KEY_FILE"
KEY_FILE = "vault.key"
KEY_BYTES = 32
MAGIC = b"OFV"
VERSION = 1
KEY_ID_BYTES = 8
NONCE_BYTES = 12
TAG_BYTES = 16
HEADER_BYTES = len(MAGIC) + 1 + KEY_ID_BYTES
OVERHEAD = HEADER_BYTES + NONCE_BYTES + TAG_BYTES
_KEY_ID_LABEL = b"oncofed-edge vault key id v1"
_MAX_KEY_FILE = 1024


def key_id_of(key: bytes) -> bytes:
    """A public fingerprint of the key: it tells keys apart and reveals nothing of them."""
    return hmac.digest(key, _KEY_ID_LABEL, "sha256")[:KEY_ID_BYTES]


class Vault:
    """Encrypts and decrypts envelopes under one vault key."""

    __slots__ = ("_key", "key_id", "source")

    def __init__(self, key: bytes, source: str = "a given key") -> None:
        if len(key) != KEY_BYTES:
            raise InvalidInput(
                f"a vault key is {KEY_BYTES} bytes, not {len(key)}", code="bad_vault_key"
            )
        self._key = bytes(key)
        self.key_id = key_id_of(self._key)
        # Where the key came from (an env var's or a file's name), for messages.
        self.source = source

    def __repr__(self) -> str:
        return f"Vault(key_id={self.key_id.hex()}, source={self.source!r})"  # never the key

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        """A fresh envelope of `plaintext`, bound to `aad`."""
        header = MAGIC + bytes([VERSION]) + self.key_id
        nonce = secrets.token_bytes(NONCE_BYTES)
        cipher = AES.new(self._key, AES.MODE_GCM, nonce=nonce, mac_len=TAG_BYTES)
        cipher.update(header + aad)
        ciphertext, tag = cipher.encrypt_and_digest(plaintext)
        return header + nonce + tag + ciphertext

    def decrypt(self, envelope: bytes, aad: bytes, *, what: str = "the encrypted data") -> bytes:
        """The plaintext of `envelope`; raises, naming `what`, on a wrong key or altered bytes."""
        if not is_envelope(envelope):
            raise InvalidInput(
                f"{what} is not a vault envelope (damaged, or never encrypted)",
                code="vault_not_envelope",
            )
        version = envelope[len(MAGIC)]
        if version != VERSION:
            raise InvalidInput(
                f"{what} uses vault format version {version}; this edge reads version {VERSION}",
                code="vault_unknown_version",
            )
        header = envelope[:HEADER_BYTES]
        key_id = header[len(MAGIC) + 1 :]
        if not hmac.compare_digest(key_id, self.key_id):
            raise Unauthenticated(
                f"{what} was encrypted under another vault key (key id {key_id.hex()}; "
                f"the key from {self.source} has id {self.key_id.hex()}): "
                f"configure the right key ({ENV_KEY}, {ENV_KEY_FILE} or HOME/{KEY_FILE})",
                code="vault_wrong_key",
            )
        nonce = envelope[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES]
        tag = envelope[HEADER_BYTES + NONCE_BYTES : OVERHEAD]
        cipher = AES.new(self._key, AES.MODE_GCM, nonce=nonce, mac_len=TAG_BYTES)
        cipher.update(header + aad)
        try:
            return cipher.decrypt_and_verify(envelope[OVERHEAD:], tag)
        except ValueError:
            raise InvalidInput(
                f"{what} failed its integrity check (AES-GCM tag mismatch): it was altered "
                "or damaged, or belongs to something else; restore it from backup",
                code="vault_tampered",
            ) from None


def is_envelope(data: bytes) -> bool:
    """True for bytes shaped like a vault envelope (says nothing of their integrity)."""
    return len(data) >= OVERHEAD and data.startswith(MAGIC)


def parse_key(text: str, where: str) -> bytes:
    """A 32-byte key from 64 hex digits or base64 (standard or URL-safe, padding optional).

    Messages name `where` the key came from, never the key.
    """
    value = "".join(text.split())
    if len(value) == 2 * KEY_BYTES and all(c in "0123456789abcdefABCDEF" for c in value):
        return bytes.fromhex(value)
    try:
        padded = value.replace("-", "+").replace("_", "/") + "=" * (-len(value) % 4)
        key = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise InvalidInput(
            f"{where} must hold a {KEY_BYTES}-byte key as 64 hex digits or base64",
            code="bad_vault_key",
        )
    return key


def key_file_path(home: Path) -> Path:
    """Where the vault key file is (or would be written): $ONCOFED_EDGE_VAULT_KEY_FILE
    or HOME/vault.key."""
    configured = os.environ.get(ENV_KEY_FILE)
    return Path(configured).expanduser() if configured else Path(home) / KEY_FILE


def _read_key_file(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise InvalidInput(
            f"vault key file {path} cannot be read: {exc.strerror}", code="bad_vault_key"
        ) from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise InvalidInput(f"vault key file {path} is not a regular file", code="bad_vault_key")
        if os.name == "posix" and info.st_mode & 0o077:
            raise InvalidInput(
                f"vault key file {path} is accessible to group or others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); "
                f"restrict it with `chmod 600 {path}` and run again",
                code="insecure_vault_key",
            )
        data = f.read(_MAX_KEY_FILE)
    if len(data) == KEY_BYTES:
        return data  # the raw bytes
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        text = ""
    return parse_key(text, f"vault key file {path}")


def load_vault(home: Path) -> Vault | None:
    """The vault configured for the edge in `home`, or None when no key is configured."""
    env_key = os.environ.get(ENV_KEY)
    if env_key is not None:
        return Vault(parse_key(env_key, f"${ENV_KEY}"), source=f"${ENV_KEY}")
    path = key_file_path(home)
    if os.environ.get(ENV_KEY_FILE) or path.exists():
        return Vault(_read_key_file(path), source=str(path))
    return None


def require_vault(home: Path) -> Vault:
    vault = load_vault(home)
    if vault is None:
        raise Unauthenticated(
            f"no vault key: set {ENV_KEY} or {ENV_KEY_FILE}, or run `oncofed-edge vault init`",
            code="vault_key_missing",
        )
    return vault


@dataclass(frozen=True)
class VaultInit:
    vault: Vault
    created: Path | None  # the key file written, or None when a key was configured already


def init_vault(home: Path) -> VaultInit:
    """The configured vault, or a new random key written to the key file (mode 0600).

    Never replaces a key: of two concurrent runs, one key file wins.
    """
    existing = load_vault(home)
    if existing is not None:
        return VaultInit(existing, None)
    path = key_file_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(KEY_BYTES)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(base64.b64encode(key) + b"\n")
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    vault = load_vault(home)
    if vault is None:  # pragma: no cover - the file was just written
        raise InvalidInput(f"vault key file {path} was not written", code="bad_vault_key")
    created = path if hmac.compare_digest(vault.key_id, key_id_of(key)) else None
    return VaultInit(vault, created)
