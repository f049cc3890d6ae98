"""The value_provenance extension table, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from shared_cdm.db import current_revision, downgrade, make_engine, session_factory, upgrade
from shared_cdm.models import Base, ValueProvenance

BIG_ROW_ID = 2**63 - 1  # surrogate keys use the whole BIGINT range


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    upgrade(db_url)
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def _provenance(field: str, row_id: int = BIG_ROW_ID, **overrides: str | None) -> ValueProvenance:
    values: dict[str, object] = {
        "table_name": "measurement",
        "row_id": row_id,
        "field_name": field,
        "src_system": "LIS",
        "src_table": "lab_results",
        "src_row": "3f" * 16,
    }
    values.update(overrides)
    return ValueProvenance(**values)


def test_model_has_the_specified_columns_and_key() -> None:
    table = Base.metadata.tables["value_provenance"]
    assert [c.name for c in table.columns] == [
        "table_name",
        "row_id",
        "field_name",
        "src_system",
        "src_table",
        "src_row",
    ]
    assert [c.name for c in table.primary_key.columns] == ["table_name", "row_id", "field_name"]
    assert table.primary_key.name == "pk_value_provenance"
    assert isinstance(table.c.row_id.type, sa.BigInteger)
    lengths = {c.name: getattr(c.type, "length", None) for c in table.columns}
    assert lengths == {
        "table_name": 50,
        "row_id": None,
        "field_name": 50,
        "src_system": 100,
        "src_table": 100,
        "src_row": 255,
    }


def test_fields_of_one_row_round_trip_with_a_full_bigint_key(engine: sa.Engine) -> None:
    new_session = session_factory(engine)
    with new_session() as session:
        session.add_all(
            [
                _provenance("value_as_number"),
                _provenance("unit_source_value", src_system="HIS", src_table="检验结果"),
                _provenance("value_as_number", row_id=7),
            ]
        )
        session.commit()

    with new_session() as session:
        rows = session.scalars(
            sa.select(ValueProvenance)
            .where(ValueProvenance.table_name == "measurement")
            .where(ValueProvenance.row_id == BIG_ROW_ID)
            .order_by(ValueProvenance.field_name)
        ).all()

    assert [(r.field_name, r.src_system, r.src_table) for r in rows] == [
        ("unit_source_value", "HIS", "检验结果"),
        ("value_as_number", "LIS", "lab_results"),
    ]
    assert rows[0].row_id == BIG_ROW_ID


def test_one_field_of_one_row_has_one_provenance(engine: sa.Engine) -> None:
    new_session = session_factory(engine)
    with new_session() as session:
        session.add(_provenance("value_as_number"))
        session.commit()
    with new_session() as session:
        session.add(_provenance("value_as_number", src_system="HIS"))
        with pytest.raises(IntegrityError):
            session.commit()


def test_source_system_is_required(engine: sa.Engine) -> None:
    with session_factory(engine)() as session:
        session.add(_provenance("value_as_number", src_system=None))
        with pytest.raises(IntegrityError):
            session.commit()


def test_migration_0002_adds_and_removes_only_this_table(db_url: str) -> None:
    upgrade(db_url, revision="0001")
    assert "value_provenance" not in _tables(db_url)

    upgrade(db_url)
    assert current_revision(db_url) == "0002"
    assert "value_provenance" in _tables(db_url)

    downgrade(db_url, revision="0001")
    tables = _tables(db_url)
    assert "value_provenance" not in tables
    assert {"person", "measurement"} <= tables
    assert current_revision(db_url) == "0001"


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
