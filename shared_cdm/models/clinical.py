"""OMOP CDM v5.4 clinical, health-system and vocabulary tables.

Table and column names follow the OMOP v5.4 DDL. Deviations, all deliberate:
surrogate keys are BIGINT (OMOP says integer); *_concept_id columns carry no
foreign key to `concept`, because a site may load only part of the vocabulary;
`death` and `cdm_source` get primary keys (OMOP has none, the ORM needs one);
provider, location and visit_detail tables are not held, so their id columns
exist without foreign keys.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, MappedColumn, mapped_column

from shared_cdm.models.base import (
    SOURCE_VALUE,
    Base,
    BigIntId,
    ProvenanceMixin,
    confidence_check,
)


def surrogate_key() -> MappedColumn[int]:
    return mapped_column(BigIntId, primary_key=True, autoincrement=True)


def person_ref() -> MappedColumn[int]:
    return mapped_column(BigInteger, ForeignKey("person.person_id"), index=True)


def visit_ref() -> MappedColumn[int | None]:
    return mapped_column(BigInteger, ForeignKey("visit_occurrence.visit_occurrence_id"))


class CareSite(Base):
    __tablename__ = "care_site"

    care_site_id: Mapped[int] = surrogate_key()
    care_site_name: Mapped[str | None] = mapped_column(String(255))
    place_of_service_concept_id: Mapped[int | None] = mapped_column(Integer)
    location_id: Mapped[int | None] = mapped_column(BigInteger)
    care_site_source_value: Mapped[str | None] = mapped_column(SOURCE_VALUE)
    place_of_service_source_value: Mapped[str | None] = mapped_column(SOURCE_VALUE)


class Person(Base):
    """One patient. OncoFed: `person_source_value` holds the site's pseudonym
    (a keyed HMAC), never a hospital ID; it is 100 wide, not OMOP's 50, so a
    hex SHA-256 digest fits."""

    __tablename__ = "person"
    __table_args__ = (
        CheckConstraint("year_of_birth BETWEEN 1850 AND 2100", name="year_of_birth_range"),
    )

    person_id: Mapped[int] = surrogate_key()
    gender_concept_id: Mapped[int] = mapped_column(Integer)
    year_of_birth: Mapped[int] = mapped_column(Integer)
    month_of_birth: Mapped[int | None] = mapped_column(Integer)
    day_of_birth: Mapped[int | None] = mapped_column(Integer)
    birth_datetime: Mapped[datetime | None] = mapped_column(DateTime)
    race_concept_id: Mapped[int] = mapped_column(Integer)
    ethnicity_concept_id: Mapped[int] = mapped_column(Integer)
    location_id: Mapped[int | None] = mapped_column(BigInteger)
    provider_id: Mapped[int | None] = mapped_column(BigInteger)
    care_site_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("care_site.care_site_id")
    )
    person_source_value: Mapped[str | None] = mapped_column(String(100))
    gender_source_value: Mapped[str | None] = mapped_column(SOURCE_VALUE)
    gender_source_concept_id: Mapped[int | None] = mapped_column(Integer)
    race_source_value: Mapped[str | None] = mapped_column(SOURCE_VALUE)
    race_source_concept_id: Mapped[int | None] = mapped_column(Integer)
    ethnicity_source_value: Mapped[str | None] = mapped_column(SOURCE_VALUE)
    ethnicity_source_concept_id: Mapped[int | None] = mapped_column(Integer)


class ObservationPeriod(Base):
    __tablename__ = "observation_period"

    observation_period_id: Mapped[int] = surrogate_key()
    person_id: Mapped[int] = person_ref()
    observation_period_start_date: Mapped[date] = mapped_column(Date, index=True)
    observation_period_end_date: Mapped[date] = mapped_column(Date)
    period_type_concept_id: Mapped[int] = mapped_column(Integer)


class VisitOccurrence(Base):
    __tablename__ = "visit_occurrence"

    visit_occurrence_id: Mapped[int] = surrogate_key()
    person_id: Mapped[int] = person_ref()
    visit_concept_id: Mapped[int] = mapped_column(Integer)
    visit_start_date: Mapped[date] = mapped_column(Date, index=True)
    visit_start_datetime: Mapped[datetime | None] = mapped_column(DateTime)
    visit_end_date: Mapped[date] = mapped_column(Date)
    visit_end_datetime: Mapped[datetime | None] = mapped_column(DateTime)
    visit_type_concept_id: Mapped[int] = mapped_column(Integer)
    provider_id: Mapped[int | None] = mapped_column(BigInteger)
    care_site_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("care_site.care_site_id")
    )
    visit_source_value: Mapped[str | None] = mapped_column(SOURCE_VALUE)
    visit_source_concept_id: Mapped[int | None] = mapped_column(Integer)
    admitted_from_concept_id: Mapped[int | None] = mapped_column(Integer)
    admitted_from_source_value: Mapped[str | None] = mapped_column(SOURCE_VALUE)
    discharged_to_concept_id: Mapped[int | None] = mapped_column(Integer)
    discharged_to_source_value: Mapped[str | None] = mapped_column(SOURCE_VALUE)
    preceding_visit_occurrence_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("visit_occurrence.visit_occurrence_id")
    )


class ConditionOccurrence(ProvenanceMixin, Base):
    """A diagnosis. Cancer diagnoses carry their modifiers (stage, grade, ...) as
    `measurement` rows pointing back here; see `Measurement`."""

    __tablename__ = "condition_occurrence"
    __table_args__ = (confidence_check(),)

    condition_occurrence_id: Mapped[int] = surrogate_key()
    person_id: Mapped[int] = person_ref()
    condition_concept_id: Mapped[int] = mapped_column(Integer)
    condition_start_date: Mapped[date] = mapped_column(Date, index=True)
    condition_start_datetime: Mapped[datetime | None] = mapped_column(DateTime)
    condition_end_date: Mapped[date | None] = mapped_column(Date)
    condition_end_datetime: Mapped[datetime | None] = mapped_column(DateTime)
    condition_type_concept_id: Mapped[int] = mapped_column(Integer)
    condition_status_concept_id: Mapped[int | None] = mapped_column(Integer)
    stop_reason: Mapped[str | None] = mapped_column(String(20))
    provider_id: Mapped[int | None] = mapped_column(BigInteger)
    visit_occurrence_id: Mapped[int | None] = visit_ref()
    visit_detail_id: Mapped[int | None] = mapped_column(BigInteger)
    condition_source_value: Mapped[str | None] = mapped_column(SOURCE_VALUE)
    condition_source_concept_id: Mapped[int | None] = mapped_column(Integer)
    condition_status_source_value: Mapped[str | None] = mapped_column(SOURCE_VALUE)


class ProcedureOccurrence(ProvenanceMixin, Base):
    __tablename__ = "procedure_occurrence"
    __table_args__ = (confidence_check(),)

    procedure_occurrence_id: Mapped[int] = surrogate_key()
    person_id: Mapped[int] = person_ref()
    procedure_concept_id: Mapped[int] = mapped_column(Integer)
    procedure_date: Mapped[date] = mapped_column(Date, index=True)
    procedure_datetime: Mapped[datetime | None] = mapped_column(DateTime)
    procedure_end_date: Mapped[date | None] = mapped_column(Date)
    procedure_end_datetime: Mapped[datetime | None] = mapped_column(DateTime)
    procedure_type_concept_id: Mapped[int] = mapped_column(Integer)
    modifier_concept_id: Mapped[int | None] = mapped_column(Integer)
    quantity: Mapped[int | None] = mapped_column(Integer)
    provider_id: Mapped[int | None] = mapped_column(BigInteger)
    visit_occurrence_id: Mapped[int | None] = visit_ref()
    visit_detail_id: Mapped[int | None] = mapped_column(BigInteger)
    procedure_source_value: Mapped[str | None] = mapped_column(SOURCE_VALUE)
    procedure_source_concept_id: Mapped[int | None] = mapped_column(Integer)
    modifier_source_value: Mapped[str | None] = mapped_column(SOURCE_VALUE)


class DrugExposure(ProvenanceMixin, Base):
    __tablename__ = "drug_exposure"
    __table_args__ = (confidence_check(),)

    drug_exposure_id: Mapped[int] = surrogate_key()
    person_id: Mapped[int] = person_ref()
    drug_concept_id: Mapped[int] = mapped_column(Integer)
    drug_exposure_start_date: Mapped[date] = mapped_column(Date, index=True)
    drug_exposure_start_datetime: Mapped[datetime | None] = mapped_column(DateTime)
    drug_exposure_end_date: Mapped[date] = mapped_column(Date)
    drug_exposure_end_datetime: Mapped[datetime | None] = mapped_column(DateTime)
    verbatim_end_date: Mapped[date | None] = mapped_column(Date)
    drug_type_concept_id: Mapped[int] = mapped_column(Integer)
    stop_reason: Mapped[str | None] = mapped_column(String(20))
    refills: Mapped[int | None] = mapped_column(Integer)
    quantity: Mapped[float | None] = mapped_column(Float)
    days_supply: Mapped[int | None] = mapped_column(Integer)
    sig: Mapped[str | None] = mapped_column(Text)
    route_concept_id: Mapped[int | None] = mapped_column(Integer)
    lot_number: Mapped[str | None] = mapped_column(String(50))
    provider_id: Mapped[int | None] = mapped_column(BigInteger)
    visit_occurrence_id: Mapped[int | None] = visit_ref()
    visit_detail_id: Mapped[int | None] = mapped_column(BigInteger)
    drug_source_value: Mapped[str | None] = mapped_column(SOURCE_VALUE)
    drug_source_concept_id: Mapped[int | None] = mapped_column(Integer)
    route_source_value: Mapped[str | None] = mapped_column(SOURCE_VALUE)
    dose_unit_source_value: Mapped[str | None] = mapped_column(SOURCE_VALUE)


class Measurement(ProvenanceMixin, Base):
    """A lab value or finding. Cancer modifiers (TNM, grade, tumour size,
    metastasis site) are measurements whose `measurement_event_id` is the
    condition_occurrence_id (or episode_id) they modify and whose
    `meas_event_field_concept_id` names that id field, e.g.
    `CONDITION_OCCURRENCE_ID_FIELD_CONCEPT_ID` (1147127)."""

    __tablename__ = "measurement"
    __table_args__ = (
        confidence_check(),
        Index(None, "measurement_event_id", "meas_event_field_concept_id"),
    )

    measurement_id: Mapped[int] = surrogate_key()
    person_id: Mapped[int] = person_ref()
    measurement_concept_id: Mapped[int] = mapped_column(Integer)
    measurement_date: Mapped[date] = mapped_column(Date, index=True)
    measurement_datetime: Mapped[datetime | None] = mapped_column(DateTime)
    measurement_time: Mapped[str | None] = mapped_column(String(10))
    measurement_type_concept_id: Mapped[int] = mapped_column(Integer)
    operator_concept_id: Mapped[int | None] = mapped_column(Integer)
    value_as_number: Mapped[float | None] = mapped_column(Float)
    value_as_concept_id: Mapped[int | None] = mapped_column(Integer)
    unit_concept_id: Mapped[int | None] = mapped_column(Integer)
    range_low: Mapped[float | None] = mapped_column(Float)
    range_high: Mapped[float | None] = mapped_column(Float)
    provider_id: Mapped[int | None] = mapped_column(BigInteger)
    visit_occurrence_id: Mapped[int | None] = visit_ref()
    visit_detail_id: Mapped[int | None] = mapped_column(BigInteger)
    measurement_source_value: Mapped[str | None] = mapped_column(SOURCE_VALUE)
    measurement_source_concept_id: Mapped[int | None] = mapped_column(Integer)
    unit_source_value: Mapped[str | None] = mapped_column(SOURCE_VALUE)
    unit_source_concept_id: Mapped[int | None] = mapped_column(Integer)
    value_source_value: Mapped[str | None] = mapped_column(SOURCE_VALUE)
    measurement_event_id: Mapped[int | None] = mapped_column(BigInteger)
    meas_event_field_concept_id: Mapped[int | None] = mapped_column(Integer)


class Death(Base):
    """At most one row per person (person_id is the primary key here)."""

    __tablename__ = "death"

    person_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("person.person_id"), primary_key=True, autoincrement=False
    )
    death_date: Mapped[date] = mapped_column(Date, index=True)
    death_datetime: Mapped[datetime | None] = mapped_column(DateTime)
    death_type_concept_id: Mapped[int | None] = mapped_column(Integer)
    cause_concept_id: Mapped[int | None] = mapped_column(Integer)
    cause_source_value: Mapped[str | None] = mapped_column(SOURCE_VALUE)
    cause_source_concept_id: Mapped[int | None] = mapped_column(Integer)


class CdmSource(Base):
    """One row describing this CDM instance (keyed by its abbreviation)."""

    __tablename__ = "cdm_source"

    cdm_source_name: Mapped[str] = mapped_column(String(255))
    cdm_source_abbreviation: Mapped[str] = mapped_column(String(25), primary_key=True)
    cdm_holder: Mapped[str] = mapped_column(String(255))
    source_description: Mapped[str | None] = mapped_column(Text)
    source_documentation_reference: Mapped[str | None] = mapped_column(String(255))
    cdm_etl_reference: Mapped[str | None] = mapped_column(String(255))
    source_release_date: Mapped[date] = mapped_column(Date)
    cdm_release_date: Mapped[date] = mapped_column(Date)
    cdm_version: Mapped[str | None] = mapped_column(String(10))
    cdm_version_concept_id: Mapped[int] = mapped_column(Integer)
    vocabulary_version: Mapped[str] = mapped_column(String(20))


class Concept(Base):
    """The OMOP `concept` table (minimal: no relationships or ancestors).
    Ids are OMOP's; OncoFed-local concepts use 2,000,000,000 and up."""

    __tablename__ = "concept"

    concept_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    concept_name: Mapped[str] = mapped_column(String(255))
    domain_id: Mapped[str] = mapped_column(String(20))
    vocabulary_id: Mapped[str] = mapped_column(String(20), index=True)
    concept_class_id: Mapped[str] = mapped_column(String(20))
    standard_concept: Mapped[str | None] = mapped_column(String(1))
    concept_code: Mapped[str] = mapped_column(String(50), index=True)
    valid_start_date: Mapped[date] = mapped_column(Date)
    valid_end_date: Mapped[date] = mapped_column(Date)
    invalid_reason: Mapped[str | None] = mapped_column(String(1))
