"""The edge integration tests' vault key: the link index is only written sealed, so
every sync needs one (an operator's `oncofed-edge init` writes HOME/vault.key).

Set per module and removed after it, so that tests elsewhere (unit tests of the
vault and the site secret) see the environment they expect. Child processes get
it explicitly: `child_env` drops every ONCOFED_EDGE_ variable."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from edge_node.security.vault import ENV_KEY
from tests.integration.edge_node.vaultkey import VAULT_KEY


@pytest.fixture(scope="module", autouse=True)
def _vault_key() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ENV_KEY, VAULT_KEY)
        yield
