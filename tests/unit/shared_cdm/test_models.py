"""Writing and reading CDM rows through the models, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared_cdm.db import make_engine, session_factory, upgrade
from shared_cdm.models import (
    CONDITION_OCCURRENCE_ID_FIELD_CONCEPT_ID,
    ConditionOccurrence,
    LungCancerDataset,
    Measurement,
    Person,
)

# Concept ids are opaque to the schema; local ones keep these tests self-contained.
LUNG_CANCER_CONCEPT_ID = 2_000_000_101
T_STAGE_CONCEPT_ID = 2_000_000_102
LAB_CONCEPT_ID = 2_000_000_103
EHR_TYPE_CONCEPT_ID = 32817  # OMOP type concept "EHR"


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    upgrade(db_url)
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def _person(**overrides: object) -> Person:
    values: dict[str, object] = {
        "gender_concept_id": 8507,
        "year_of_birth": 1958,
        "race_concept_id": 0,
        "ethnicity_concept_id": 0,
        "person_source_value": "9f2c" * 16,  # an HMAC-SHA256 hex pseudonym (64 chars)
    }
    values.update(overrides)
    return Person(**values)


def test_condition_with_a_cancer_modifier_round_trips(engine: sa.Engine) -> None:
    new_session = session_factory(engine)
    with new_session() as session:
        person = _person()
        session.add(person)
        session.flush()
        diagnosis = ConditionOccurrence(
            person_id=person.person_id,
            condition_concept_id=LUNG_CANCER_CONCEPT_ID,
            condition_start_date=date(2023, 3, 14),
            condition_type_concept_id=EHR_TYPE_CONCEPT_ID,
            condition_source_value="C34.1",
            src_system="EMR",
            src_table="diagnosis",
            src_row="row-17",
        )
        session.add(diagnosis)
        session.flush()
        session.add(
            Measurement(
                person_id=person.person_id,
                measurement_concept_id=T_STAGE_CONCEPT_ID,
                measurement_date=date(2023, 3, 20),
                measurement_type_concept_id=EHR_TYPE_CONCEPT_ID,
                value_source_value="pT2a",
                measurement_event_id=diagnosis.condition_occurrence_id,
                meas_event_field_concept_id=CONDITION_OCCURRENCE_ID_FIELD_CONCEPT_ID,
                src_system="PATHOLOGY",
                confidence=0.92,
            )
        )
        session.commit()
        person_id = person.person_id

    with new_session() as session:
        row = session.execute(
            sa.select(ConditionOccurrence, Measurement)
            .join(
                Measurement,
                sa.and_(
                    Measurement.measurement_event_id == ConditionOccurrence.condition_occurrence_id,
                    Measurement.meas_event_field_concept_id
                    == CONDITION_OCCURRENCE_ID_FIELD_CONCEPT_ID,
                ),
            )
            .where(ConditionOccurrence.person_id == person_id)
        ).one()
        condition, modifier = row
        assert condition.condition_source_value == "C34.1"
        assert condition.condition_start_date == date(2023, 3, 14)
        assert condition.confidence is None  # structured source
        assert modifier.value_source_value == "pT2a"
        assert modifier.confidence == pytest.approx(0.92)
        stored = session.get(Person, person_id)
        assert stored is not None
        assert stored.person_source_value == "9f2c" * 16


def test_condition_must_belong_to_an_existing_person(engine: sa.Engine) -> None:
    with session_factory(engine)() as session:
        session.add(
            ConditionOccurrence(
                person_id=424242,
                condition_concept_id=LUNG_CANCER_CONCEPT_ID,
                condition_start_date=date(2023, 1, 1),
                condition_type_concept_id=EHR_TYPE_CONCEPT_ID,
            )
        )
        with pytest.raises(IntegrityError):
            session.commit()


@pytest.mark.parametrize("confidence", [1.5, -0.1])
def test_confidence_outside_0_1_is_refused(engine: sa.Engine, confidence: float) -> None:
    with session_factory(engine)() as session:
        person = _person()
        session.add(person)
        session.flush()
        session.add(
            Measurement(
                person_id=person.person_id,
                measurement_concept_id=LAB_CONCEPT_ID,
                measurement_date=date(2023, 1, 1),
                measurement_type_concept_id=EHR_TYPE_CONCEPT_ID,
                confidence=confidence,
            )
        )
        with pytest.raises(IntegrityError):
            session.commit()


def test_year_of_birth_out_of_range_is_refused(engine: sa.Engine) -> None:
    with session_factory(engine)() as session:
        session.add(_person(year_of_birth=1066))
        with pytest.raises(IntegrityError):
            session.commit()


def test_lung_dataset_holds_one_row_per_tumour(engine: sa.Engine) -> None:
    with session_factory(engine)() as session:
        person = _person()
        session.add(person)
        session.flush()
        session.add(
            LungCancerDataset(person_id=person.person_id, histology="adenocarcinoma", ecog=1)
        )
        session.add(LungCancerDataset(person_id=person.person_id, tumour_number=2))
        session.commit()
        assert session.scalar(sa.select(sa.func.count()).select_from(LungCancerDataset)) == 2

        session.add(LungCancerDataset(person_id=person.person_id, tumour_number=2))
        with pytest.raises(IntegrityError):
            session.commit()


def test_lung_dataset_refuses_pdl1_above_100_percent(engine: sa.Engine) -> None:
    with session_factory(engine)() as session:
        person = _person()
        session.add(person)
        session.flush()
        session.add(LungCancerDataset(person_id=person.person_id, pdl1_tps_percent=120.0))
        with pytest.raises(IntegrityError):
            session.commit()


def test_in_memory_sqlite_is_one_database_for_every_session() -> None:
    engine = make_engine("sqlite://")
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("CREATE TABLE t (x INTEGER)"))
        with Session(engine) as session:
            assert session.execute(sa.text("SELECT count(*) FROM t")).scalar() == 0
            assert session.execute(sa.text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        engine.dispose()
