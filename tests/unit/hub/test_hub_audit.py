from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from hub import audit
from hub.db.session import Database

T0 = datetime(2026, 1, 5, 9, 0, 0, 123456, tzinfo=UTC)


def _fill(db: Database, n: int = 4) -> None:
    for i in range(n):
        with db.transaction() as session:
            audit.append(
                session,
                at=T0 + timedelta(seconds=i),
                actor=f"user:u{i}",
                action="study.submitted",
                object_id=f"study-{i}",
                details={"sites": ["A", "B"], "i": i},
            )


def _verify(db: Database) -> audit.ChainReport:
    with db.session() as session:
        return audit.verify(session)


def test_appended_entries_form_a_chain_that_verifies(hub_db: Database) -> None:
    _fill(hub_db)
    report = _verify(hub_db)
    assert report == audit.ChainReport(ok=True, entries=4)
    with hub_db.session() as session:
        entries = list(reversed(audit.recent(session)))
    assert [e.id for e in entries] == [1, 2, 3, 4]
    assert entries[0].prev_hash == audit.GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    # Timestamps survive the round trip exactly, or the hashes would not match.
    assert entries[0].at == T0


def test_empty_log_verifies(hub_db: Database) -> None:
    assert _verify(hub_db) == audit.ChainReport(ok=True, entries=0)


def test_edited_entry_is_found(hub_db: Database) -> None:
    _fill(hub_db)
    with hub_db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_log SET actor = 'user:mallory' WHERE id = 2"))
    report = _verify(hub_db)
    assert (report.ok, report.first_bad_id) == (False, 2)
    assert "hash" in report.reason


def test_edited_details_are_found(hub_db: Database) -> None:
    _fill(hub_db)
    with hub_db.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE audit_log SET details = :d WHERE id = 3"),
            {"d": '{"sites": ["A"], "i": 2}'},
        )
    assert _verify(hub_db).first_bad_id == 3


def test_removed_entry_is_found(hub_db: Database) -> None:
    _fill(hub_db)
    with hub_db.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_log WHERE id = 2"))
    report = _verify(hub_db)
    assert (report.ok, report.first_bad_id) == (False, 3)


@pytest.mark.parametrize("columns", ["content", "ids"])
def test_swapped_entries_are_found(hub_db: Database, columns: str) -> None:
    _fill(hub_db)
    with hub_db.engine.begin() as conn:
        if columns == "ids":
            # Reorder by renumbering: 2 becomes 3 and 3 becomes 2.
            conn.execute(sa.text("UPDATE audit_log SET id = 1000 WHERE id = 2"))
            conn.execute(sa.text("UPDATE audit_log SET id = 2 WHERE id = 3"))
            conn.execute(sa.text("UPDATE audit_log SET id = 3 WHERE id = 1000"))
        else:
            # Swap what two entries say, keeping their places and hashes.
            rows = {
                r.id: r
                for r in conn.execute(
                    sa.text("SELECT id, actor, object_id FROM audit_log WHERE id IN (2, 3)")
                )
            }
            for a, b in ((2, 3), (3, 2)):
                conn.execute(
                    sa.text("UPDATE audit_log SET actor = :actor, object_id = :obj WHERE id = :id"),
                    {"actor": rows[b].actor, "obj": rows[b].object_id, "id": a},
                )
    report = _verify(hub_db)
    assert (report.ok, report.first_bad_id) == (False, 2)


def test_a_forked_chain_is_refused_by_the_database(hub_db: Database) -> None:
    _fill(hub_db, 2)
    with hub_db.engine.connect() as conn:
        last = conn.execute(sa.text("SELECT hash FROM audit_log WHERE id = 2")).scalar_one()
        first = conn.execute(sa.text("SELECT hash FROM audit_log WHERE id = 1")).scalar_one()
    assert last != first
    with pytest.raises(sa.exc.IntegrityError), hub_db.engine.begin() as conn:
        # A second entry claiming entry 1 as predecessor.
        conn.execute(
            sa.text(
                "INSERT INTO audit_log (id, at, actor, action, object_id, details, prev_hash, hash)"
                " VALUES (3, :at, 'x', 'x', '', '{}', :prev, :h)"
            ),
            {"at": T0.replace(tzinfo=None), "prev": first, "h": "f" * 64},
        )
