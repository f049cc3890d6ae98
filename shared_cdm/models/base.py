"""Declarative base, naming convention and shared column types for the CDM tables.

No engine and no settings here: the base only describes tables. Constraint and
index names come from the naming convention so they are identical on SQLite and
PostgreSQL (and stay under PostgreSQL's 63-character identifier limit).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Float, Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only autoincrements a column declared exactly INTEGER PRIMARY KEY;
# PostgreSQL gets BIGINT (BIGSERIAL for surrogate keys).
BigIntId = BigInteger().with_variant(Integer(), "sqlite")

# OMOP source values are varchar(50); kept so an OMOP export fits unchanged.
SOURCE_VALUE = String(50)


class Base(DeclarativeBase):
    """Base class of every CDM table; `Base.metadata` is what Alembic compares."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ProvenanceMixin:
    """OncoFed extension (not in OMOP): where a fact came from and how sure we are.

    `src_system`, `src_table` and `src_row` name the source system (e.g. "LIS"),
    its table or document type, and the row or document key, so a fact can be
    traced back inside the hospital. `confidence` is 0..1 for facts extracted by
    NLP or OCR; null means the fact came from a structured source.
    """

    src_system: Mapped[str | None] = mapped_column(String(100))
    src_table: Mapped[str | None] = mapped_column(String(100))
    src_row: Mapped[str | None] = mapped_column(String(255))
    confidence: Mapped[float | None] = mapped_column(Float)


def confidence_check() -> CheckConstraint:
    """The check every provenance-carrying table adds to its `__table_args__`."""
    return CheckConstraint(
        "confidence IS NULL OR (confidence >= 0 AND confidence <= 1)",
        name="confidence_range",
    )
