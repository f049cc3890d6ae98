"""Helpers shared by the hub's unit tests (fixtures themselves are in conftest.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.auth import UserView, add_user
from hub.bootstrap import Hub
from hub.db.models import Role
from protocol.messages import DatasetInfo, Registration


@dataclass
class FakeClock:
    now: datetime = field(default_factory=lambda: datetime(2026, 1, 5, 9, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def make_user(hub: Hub, name: str, role: Role) -> tuple[UserView, str]:
    with hub.db.transaction() as session:
        return add_user(session, name, role, now=datetime.now(UTC))


def register_nodes(hub: Hub, *names: str, version: str = "v1") -> None:
    for name in names:
        hub.nodes.register(
            name,
            Registration(
                software_version="0.1.0",
                cdm_version="5.4",
                datasets=(DatasetInfo("default", "flat", version, ("age", "sex")),),
            ),
        )


def contract_sites(envelope: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The envelope's `sites[]` cut to the contract's keys (name, n, status)."""
    return [{k: s[k] for k in ("name", "n", "status")} for s in envelope["sites"]]
