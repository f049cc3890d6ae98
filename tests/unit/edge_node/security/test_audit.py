"""The hash-chained audit log: appends, and `verify` finding edited, removed and
reordered entries (the database is edited directly, as an intruder would)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import typer
from sqlalchemy import Engine
from typer.testing import CliRunner

from edge_node.security.audit import GENESIS_HASH, AuditLog, entry_hash
from edge_node.security.models import AuditEntry
from edge_node.security.users import Role, add_user
from edge_node.store.database import open_state_db

T0 = datetime(2026, 12, 1, 8, 30, 0, 123456, tzinfo=UTC)
runner = CliRunner()


@pytest.fixture
def state(db_url: str) -> Iterator[Engine]:
    engine = open_state_db(db_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _fill(log: AuditLog, n: int = 5) -> None:
    for i in range(n):
        log.append(
            actor=f"user{i}",
            role="clinician",
            action="dataset.read",
            target=f"t{i}",
            details={"outcome": "granted", "n": i, "note": "王"},
            at=T0 + timedelta(minutes=i),
        )


def _problems(log: AuditLog) -> list[tuple[int, str]]:
    return [(p.seq, p.problem) for p in log.verify().problems]


def test_entries_chain_from_genesis_and_verify(state: Engine) -> None:
    log = AuditLog(state)
    assert log.verify().ok
    _fill(log)
    entries = log.entries()
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    first = entries[0]
    assert first.hash == entry_hash(
        seq=1,
        at=T0,
        actor="user0",
        role="clinician",
        action="dataset.read",
        target="t0",
        details={"outcome": "granted", "n": 0, "note": "王"},
        prev_hash=GENESIS_HASH,
    )
    report = log.verify()
    assert report.ok
    assert (report.entries, report.head_seq, report.head_hash) == (5, 5, entries[-1].hash)
    assert [e.seq for e in log.entries(limit=2)] == [4, 5]


@pytest.mark.parametrize(
    "change",
    [
        {"actor": "someone-else"},
        {"target": "t9"},
        {"details": {"outcome": "refused", "n": 2, "note": "王"}},
        {"at": T0 + timedelta(hours=1)},
    ],
)
def test_an_edited_entry_is_named(state: Engine, change: dict[str, object]) -> None:
    log = AuditLog(state)
    _fill(log)
    with state.begin() as conn:
        conn.execute(sa.update(AuditEntry).where(AuditEntry.seq == 3).values(**change))
    problems = _problems(log)
    assert problems
    assert problems[0][0] == 3
    assert "does not match its hash" in problems[0][1]
    assert {seq for seq, _ in problems} == {3}


def test_an_edit_with_its_hash_recomputed_breaks_the_next_link(state: Engine) -> None:
    log = AuditLog(state)
    _fill(log)
    third = log.entries()[2]
    forged = entry_hash(
        seq=3,
        at=third.at,
        actor="someone-else",
        role=third.role,
        action=third.action,
        target=third.target,
        details=third.details,
        prev_hash=third.prev_hash,
    )
    with state.begin() as conn:
        conn.execute(
            sa.update(AuditEntry)
            .where(AuditEntry.seq == 3)
            .values(actor="someone-else", hash=forged)
        )
    assert _problems(log)[0][0] == 4


def test_a_removed_entry_is_found(state: Engine) -> None:
    log = AuditLog(state)
    _fill(log)
    with state.begin() as conn:
        conn.execute(sa.delete(AuditEntry).where(AuditEntry.seq == 2))
    problems = _problems(log)
    assert problems[0] == (3, "entry 2 is missing (removed)")
    assert any("does not follow" in p for _, p in problems)


def test_a_removed_entry_with_the_rest_renumbered_is_found(state: Engine) -> None:
    log = AuditLog(state)
    _fill(log)
    with state.begin() as conn:
        conn.execute(sa.delete(AuditEntry).where(AuditEntry.seq == 2))
        for seq in (3, 4, 5):
            conn.execute(sa.update(AuditEntry).where(AuditEntry.seq == seq).values(seq=seq - 1))
    problems = _problems(log)
    assert problems[0][0] == 2
    assert "does not follow" in problems[0][1]


def test_swapped_entries_are_found(state: Engine) -> None:
    log = AuditLog(state)
    _fill(log)
    with state.begin() as conn:
        conn.execute(sa.update(AuditEntry).where(AuditEntry.seq == 2).values(seq=-2))
        conn.execute(sa.update(AuditEntry).where(AuditEntry.seq == 3).values(seq=2))
        conn.execute(sa.update(AuditEntry).where(AuditEntry.seq == -2).values(seq=3))
    problems = _problems(log)
    assert problems[0][0] == 2
    assert {seq for seq, _ in problems} >= {2, 3}


def test_swapped_contents_are_found(state: Engine) -> None:
    log = AuditLog(state)
    _fill(log)
    a, b = log.entries()[1], log.entries()[2]
    columns = ("at", "actor", "role", "action", "target", "details", "prev_hash", "hash")
    with state.begin() as conn:
        for row, other in ((a, b), (b, a)):
            conn.execute(
                sa.update(AuditEntry)
                .where(AuditEntry.seq == row.seq)
                .values({c: getattr(other, c) for c in columns})
            )
    assert _problems(log)[0][0] == 2


def test_appends_continue_the_chain_after_reopening(db_url: str) -> None:
    engine = open_state_db(db_url)
    _fill(AuditLog(engine), 2)
    engine.dispose()
    engine = open_state_db(db_url)
    try:
        _fill(AuditLog(engine), 2)
        report = AuditLog(engine).verify()
        assert report.ok
        assert report.entries == 4
    finally:
        engine.dispose()


def test_audit_verify_command_fails_naming_the_first_bad_entry(
    cli: typer.Typer, edge_home: Path, db_url: str
) -> None:
    engine = open_state_db(db_url)
    try:
        _, token = add_user(engine, "op", [Role.SITE_OPERATOR], token=None)
        _fill(AuditLog(engine), 3)
        args = ["audit", "verify", "--home", str(edge_home), "--token", token]
        ok = runner.invoke(cli, args)
        assert ok.exit_code == 0, ok.output
        assert "audit log intact: 5 entries" in ok.stdout  # users.add, 3, audit.verify

        listed = runner.invoke(
            cli, ["audit", "list", "--home", str(edge_home)], env={"ONCOFED_EDGE_TOKEN": token}
        )
        assert listed.exit_code == 0, listed.output
        assert "dataset.read\tt1" in listed.stdout

        with engine.begin() as conn:
            conn.execute(sa.update(AuditEntry).where(AuditEntry.seq == 3).values(target="x"))
        bad = runner.invoke(cli, args)
        assert bad.exit_code == 6
        assert "broken at entry 3" in bad.output
        assert "Traceback" not in bad.output
    finally:
        engine.dispose()
