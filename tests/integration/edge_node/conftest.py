"""The edge integration tests' vault key: the link index is only written sealed, so
every sync needs one (an operator's `oncofed-edge init` writes HOME/vault.key).

Set when this file is imported, before the test modules build their child
processes' environments (which pass it on explicitly: `child_env` drops every
ONCOFED_EDGE_ variable)."""

from __future__ import annotations

import os
import secrets

from edge_node.security.vault import ENV_KEY

os.environ.setdefault(ENV_KEY, secrets.token_hex(32))
