"""Fixtures for the hub's unit tests: a migrated database, a settable clock, wired services."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.auth import UserView
from hub.bootstrap import Hub, build_hub
from hub.db.models import Role
from hub.db.session import Database, upgrade_database
from hub.settings import HubSettings, load_settings
from tests.unit.hub.hub_testkit import FakeClock, make_user


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def hub_db(db_url: str) -> Iterator[Database]:
    upgrade_database(db_url)
    db = Database.from_url(db_url)
    yield db
    db.dispose()


# Lifecycle tests run count and describe on one or two sites; the default minimum
# of three sites per result has its own tests (test_hub_min_sites.py).
ONE_SITE_ENOUGH = {"count": 1, "describe": 1}


@pytest.fixture
def hub_settings(tmp_path: Path, db_url: str) -> HubSettings:
    return load_settings(
        tmp_path / "hub-home", db_url=db_url, task_deadline_s=600, min_sites=ONE_SITE_ENOUGH
    )


@pytest.fixture
def hub(hub_settings: HubSettings, hub_db: Database, clock: FakeClock) -> Hub:
    return build_hub(hub_settings, db=hub_db, clock=clock)


@pytest.fixture
def researcher(hub: Hub) -> UserView:
    return make_user(hub, "rita", Role.RESEARCHER)[0]


@pytest.fixture
def coordinator(hub: Hub) -> UserView:
    return make_user(hub, "carl", Role.COORDINATOR)[0]
