"""The pipeline's tables in the edge's state database (the identified zone).

Nothing here ever reaches the analysis database. No hospital identifier is
stored in clear (see `sealed.py`): the link index keys patients and stays by
their link hashes, the re-identification map and the quarantine's reasons and
rows are sealed under the vault key. Each table is keyed so that re-processing a batch overwrites
instead of adding (the sync's idempotence rests on that).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from edge_node.store.models import Base

ID = sa.String(100)


class PipelineRun(Base):
    __tablename__ = "pipeline_runs"

    run_id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(sa.String(16))  # running, finished, failed
    mapping_fingerprint: Mapped[str] = mapped_column(sa.String(64))
    summary: Mapped[dict[str, Any] | None]


class Watermark(Base):
    """How far each source table has been loaded; opaque to everyone but its connector."""

    __tablename__ = "pipeline_watermarks"

    source: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    source_table: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    watermark: Mapped[str] = mapped_column(sa.Text)
    updated_at: Mapped[datetime]


class QuarantinedRecord(Base):
    """A rejected source row with its reason; the latest verdict per row."""

    __tablename__ = "pipeline_quarantine"
    __table_args__ = (sa.UniqueConstraint("source", "source_table", "row_key"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(sa.String(100))
    source_table: Mapped[str] = mapped_column(sa.String(200))
    row_key: Mapped[str] = mapped_column(sa.String(255))  # the source key's link hash
    code: Mapped[str] = mapped_column(sa.String(64), index=True)
    reason: Mapped[str] = mapped_column(sa.Text)  # sealed
    field: Mapped[str | None] = mapped_column(sa.String(100))
    record: Mapped[dict[str, Any] | None]  # {"sealed": the row and its source key}
    run_id: Mapped[int] = mapped_column(sa.Integer, index=True)
    quarantined_at: Mapped[datetime]


class PipelinePerson(Base):
    """One person (duplicate patient IDs folded together) and whether the CDM
    must hold them and is up to date about them."""

    __tablename__ = "pipeline_persons"

    person_key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    is_cancer: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    dirty: Mapped[bool] = mapped_column(sa.Boolean, default=True, index=True)
    # became a cancer patient after some event tables had been read: fetch their older rows
    needs_backfill: Mapped[bool] = mapped_column(sa.Boolean, default=False, index=True)
    in_cdm: Mapped[bool] = mapped_column(sa.Boolean, default=False)


class PatientLink(Base):
    """A patient master row: the link hash of the hospital's patient ID, the person
    it belongs to, and what the person row and death record are built from."""

    __tablename__ = "pipeline_patients"

    patient_id: Mapped[str] = mapped_column(ID, primary_key=True)  # link hash
    person_key: Mapped[str] = mapped_column(sa.String(64), index=True)
    completeness: Mapped[int] = mapped_column(sa.Integer)
    sex: Mapped[str | None] = mapped_column(sa.String(8))
    birth_date: Mapped[date | None] = mapped_column(sa.Date)
    source: Mapped[str] = mapped_column(sa.String(100))
    source_table: Mapped[str] = mapped_column(sa.String(200))
    row_key: Mapped[str] = mapped_column(sa.String(255))  # the row's pseudonym (src_row)
    run_id: Mapped[int] = mapped_column(sa.Integer, index=True)
    first_run: Mapped[int] = mapped_column(sa.Integer)  # the run that first saw this ID
    # from the follow-up table, by patient ID
    last_contact_date: Mapped[date | None] = mapped_column(sa.Date)
    vital_status: Mapped[str | None] = mapped_column(sa.String(8))
    death_date: Mapped[date | None] = mapped_column(sa.Date)
    follow_up_row: Mapped[str | None] = mapped_column(sa.String(255))


class AdmissionLink(Base):
    __tablename__ = "pipeline_admissions"

    admission_id: Mapped[str] = mapped_column(ID, primary_key=True)  # link hash
    patient_id: Mapped[str] = mapped_column(ID, index=True)  # link hash
    admit_date: Mapped[date] = mapped_column(sa.Date)
    discharge_date: Mapped[date | None] = mapped_column(sa.Date)
    department: Mapped[str | None] = mapped_column(sa.String(100))
    # dates out of order: the stay links its records to the patient but is not loaded
    valid: Mapped[bool] = mapped_column(sa.Boolean)
    source: Mapped[str] = mapped_column(sa.String(100))
    source_table: Mapped[str] = mapped_column(sa.String(200))
    row_key: Mapped[str] = mapped_column(sa.String(255))  # the row's pseudonym
    run_id: Mapped[int] = mapped_column(sa.Integer, index=True)
    # the admission ID sealed (the CDM's visit keys and re-reads derive from it)
    sealed_id: Mapped[str | None] = mapped_column(sa.Text)


class DiagnosisLink(Base):
    __tablename__ = "pipeline_diagnoses"

    source: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    source_table: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    row_key: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    patient_id: Mapped[str | None] = mapped_column(ID, index=True)  # link hash
    admission_id: Mapped[str | None] = mapped_column(ID)  # link hash
    icd10: Mapped[str | None] = mapped_column(sa.String(16))
    diagnosis_date: Mapped[date | None] = mapped_column(sa.Date)
    confidence: Mapped[float] = mapped_column(sa.Float)
    is_cancer: Mapped[bool] = mapped_column(sa.Boolean)
    run_id: Mapped[int] = mapped_column(sa.Integer, index=True)


class ReidEntry(Base):
    """The honest broker's map: a hospital patient ID sealed under the vault key,
    bound to its pseudonym and link hash (one row per patient ID)."""

    __tablename__ = "pipeline_reid_map"

    patient_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    person_key: Mapped[str] = mapped_column(sa.String(64), index=True)  # the pseudonym
    sealed_id: Mapped[str] = mapped_column(sa.Text)


class MergeConflict(Base):
    """Two sources gave different values for one field of one fact; the kept value
    is the better-ranked source's."""

    __tablename__ = "pipeline_conflicts"
    __table_args__ = (sa.UniqueConstraint("cdm_table", "row_id", "field", "other_source"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    cdm_table: Mapped[str] = mapped_column(sa.String(50))
    row_id: Mapped[int] = mapped_column(sa.BigInteger)
    field: Mapped[str] = mapped_column(sa.String(50))
    kept_value: Mapped[str | None] = mapped_column(sa.Text)
    kept_source: Mapped[str] = mapped_column(sa.String(255))
    other_value: Mapped[str | None] = mapped_column(sa.Text)
    other_source: Mapped[str] = mapped_column(sa.String(255))
    run_id: Mapped[int] = mapped_column(sa.Integer)
