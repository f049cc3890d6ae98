from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa

from hub.auth import authenticate, hash_token, list_users, parse_role, require_coordinator
from hub.bootstrap import Hub
from hub.db.models import Role, User
from shared_cdm.errors import Conflict, Forbidden, InvalidInput, Unauthenticated
from tests.unit.hub.hub_testkit import make_user


def test_token_is_stored_only_as_its_sha256(hub: Hub) -> None:
    user, token = make_user(hub, "rita", Role.RESEARCHER)
    assert len(token) >= 43  # 32 random bytes, URL-safe base64
    with hub.db.session() as session:
        stored = session.scalar(sa.select(User.token_hash).where(User.name == "rita"))
        assert stored == hashlib.sha256(token.encode()).hexdigest() == hash_token(token)
        assert token not in {stored, user.name}
        assert authenticate(session, token) == user


def test_tokens_are_unique_per_user(hub: Hub) -> None:
    _, first = make_user(hub, "a", Role.RESEARCHER)
    _, second = make_user(hub, "b", Role.RESEARCHER)
    assert first != second


def test_a_wrong_token_is_refused(hub: Hub) -> None:
    _, token = make_user(hub, "rita", Role.RESEARCHER)
    with hub.db.session() as session, pytest.raises(Unauthenticated):
        authenticate(session, token + "x")


def test_duplicate_or_malformed_users_are_refused(hub: Hub) -> None:
    make_user(hub, "rita", Role.RESEARCHER)
    with pytest.raises(Conflict):
        make_user(hub, "rita", Role.COORDINATOR)
    with pytest.raises(InvalidInput):
        make_user(hub, "rita smith", Role.RESEARCHER)
    with hub.db.session() as session:
        assert [(u.name, u.role) for u in list_users(session)] == [("rita", Role.RESEARCHER)]


def test_roles() -> None:
    assert parse_role("coordinator") is Role.COORDINATOR
    with pytest.raises(InvalidInput, match="researcher"):
        parse_role("admin")


def test_only_a_coordinator_passes_the_coordinator_check(hub: Hub) -> None:
    researcher, _ = make_user(hub, "rita", Role.RESEARCHER)
    coordinator, _ = make_user(hub, "carl", Role.COORDINATOR)
    assert require_coordinator(coordinator) == coordinator
    with pytest.raises(Forbidden):
        require_coordinator(researcher)
