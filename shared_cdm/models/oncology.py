"""OMOP oncology extension (episode, episode_event) and the note tables that
pathology and imaging reports land in before NLP turns them into facts."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shared_cdm.models.base import (
    SOURCE_VALUE,
    Base,
    ProvenanceMixin,
    confidence_check,
)
from shared_cdm.models.clinical import person_ref, surrogate_key, visit_ref

# OMOP "field" concepts for measurement.meas_event_field_concept_id: the
# modified record is a condition_occurrence (cancer diagnosis).
CONDITION_OCCURRENCE_ID_FIELD_CONCEPT_ID = 1147127


class Specimen(Base):
    __tablename__ = "specimen"

    specimen_id: Mapped[int] = surrogate_key()
    person_id: Mapped[int] = person_ref()
    specimen_concept_id: Mapped[int] = mapped_column(Integer)
    specimen_type_concept_id: Mapped[int] = mapped_column(Integer)
    specimen_date: Mapped[date] = mapped_column(Date, index=True)
    specimen_datetime: Mapped[datetime | None] = mapped_column(DateTime)
    quantity: Mapped[float | None] = mapped_column(Float)
    unit_concept_id: Mapped[int | None] = mapped_column(Integer)
    anatomic_site_concept_id: Mapped[int | None] = mapped_column(Integer)
    disease_status_concept_id: Mapped[int | None] = mapped_column(Integer)
    specimen_source_id: Mapped[str | None] = mapped_column(String(50))
    specimen_source_value: Mapped[str | None] = mapped_column(SOURCE_VALUE)
    unit_source_value: Mapped[str | None] = mapped_column(SOURCE_VALUE)
    anatomic_site_source_value: Mapped[str | None] = mapped_column(SOURCE_VALUE)
    disease_status_source_value: Mapped[str | None] = mapped_column(SOURCE_VALUE)


class Note(Base):
    __tablename__ = "note"

    note_id: Mapped[int] = surrogate_key()
    person_id: Mapped[int] = person_ref()
    note_date: Mapped[date] = mapped_column(Date, index=True)
    note_datetime: Mapped[datetime | None] = mapped_column(DateTime)
    note_type_concept_id: Mapped[int] = mapped_column(Integer)
    note_class_concept_id: Mapped[int] = mapped_column(Integer)
    note_title: Mapped[str | None] = mapped_column(String(250))
    note_text: Mapped[str] = mapped_column(Text)
    encoding_concept_id: Mapped[int] = mapped_column(Integer)
    language_concept_id: Mapped[int] = mapped_column(Integer)
    provider_id: Mapped[int | None] = mapped_column(BigInteger)
    visit_occurrence_id: Mapped[int | None] = visit_ref()
    visit_detail_id: Mapped[int | None] = mapped_column(BigInteger)
    note_source_value: Mapped[str | None] = mapped_column(SOURCE_VALUE)
    note_event_id: Mapped[int | None] = mapped_column(BigInteger)
    note_event_field_concept_id: Mapped[int | None] = mapped_column(Integer)


class NoteNlp(ProvenanceMixin, Base):
    """One term found in a note; `confidence` is the extractor's score."""

    __tablename__ = "note_nlp"
    __table_args__ = (confidence_check(),)

    note_nlp_id: Mapped[int] = surrogate_key()
    note_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("note.note_id"), index=True)
    section_concept_id: Mapped[int | None] = mapped_column(Integer)
    snippet: Mapped[str | None] = mapped_column(String(250))
    offset: Mapped[str | None] = mapped_column(String(50))
    lexical_variant: Mapped[str] = mapped_column(String(250))
    note_nlp_concept_id: Mapped[int | None] = mapped_column(Integer)
    note_nlp_source_concept_id: Mapped[int | None] = mapped_column(Integer)
    nlp_system: Mapped[str | None] = mapped_column(String(250))
    nlp_date: Mapped[date] = mapped_column(Date)
    nlp_datetime: Mapped[datetime | None] = mapped_column(DateTime)
    term_exists: Mapped[str | None] = mapped_column(String(1))
    term_temporal: Mapped[str | None] = mapped_column(String(50))
    term_modifiers: Mapped[str | None] = mapped_column(String(2000))


class Episode(Base):
    """A disease phase or treatment line (first occurrence, recurrence, regimen)."""

    __tablename__ = "episode"

    episode_id: Mapped[int] = surrogate_key()
    person_id: Mapped[int] = person_ref()
    episode_concept_id: Mapped[int] = mapped_column(Integer)
    episode_start_date: Mapped[date] = mapped_column(Date, index=True)
    episode_start_datetime: Mapped[datetime | None] = mapped_column(DateTime)
    episode_end_date: Mapped[date | None] = mapped_column(Date)
    episode_end_datetime: Mapped[datetime | None] = mapped_column(DateTime)
    episode_parent_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("episode.episode_id")
    )
    episode_number: Mapped[int | None] = mapped_column(Integer)
    episode_object_concept_id: Mapped[int] = mapped_column(Integer)
    episode_type_concept_id: Mapped[int] = mapped_column(Integer)
    episode_source_value: Mapped[str | None] = mapped_column(SOURCE_VALUE)
    episode_source_concept_id: Mapped[int | None] = mapped_column(Integer)


class EpisodeEvent(Base):
    """Links an episode to a clinical event (a drug, procedure, condition row);
    `episode_event_field_concept_id` names the table of `event_id`."""

    __tablename__ = "episode_event"

    episode_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("episode.episode_id"), primary_key=True, autoincrement=False
    )
    event_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    episode_event_field_concept_id: Mapped[int] = mapped_column(
        Integer, primary_key=True, autoincrement=False
    )
