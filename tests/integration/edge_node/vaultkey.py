"""The vault key of the edge integration tests (fixed, so every import agrees)."""

from __future__ import annotations

import hashlib

VAULT_KEY = hashlib.sha256(b"oncofed edge integration tests: vault key").hexdigest()
