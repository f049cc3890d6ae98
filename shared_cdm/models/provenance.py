"""OncoFed extension (not in OMOP): where each value of a merged fact came from.

A CDM row's own `src_system` / `src_table` / `src_row` name the source that gave
the row. When the merge fills a field from another source (the best-ranked source
lacked it), that field's origin is a `value_provenance` row, so every value can be
traced back inside the hospital.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from shared_cdm.models.base import Base


class ValueProvenance(Base):
    """The source of one field of one CDM row. No foreign key: `row_id` is the
    primary key of whichever table `table_name` names (e.g. "measurement")."""

    __tablename__ = "value_provenance"

    table_name: Mapped[str] = mapped_column(String(50), primary_key=True)
    row_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    field_name: Mapped[str] = mapped_column(String(50), primary_key=True)
    src_system: Mapped[str] = mapped_column(String(100))
    src_table: Mapped[str | None] = mapped_column(String(100))
    src_row: Mapped[str | None] = mapped_column(String(255))
