"""The CDM tables. Importing this package registers every table on `Base.metadata`."""

from shared_cdm.models.base import NAMING_CONVENTION, Base, ProvenanceMixin
from shared_cdm.models.clinical import (
    CareSite,
    CdmSource,
    Concept,
    ConditionOccurrence,
    Death,
    DrugExposure,
    Measurement,
    ObservationPeriod,
    Person,
    ProcedureOccurrence,
    VisitOccurrence,
)
from shared_cdm.models.lung import LungCancerDataset
from shared_cdm.models.oncology import (
    CONDITION_OCCURRENCE_ID_FIELD_CONCEPT_ID,
    Episode,
    EpisodeEvent,
    Note,
    NoteNlp,
    Specimen,
)
from shared_cdm.models.provenance import ValueProvenance

__all__ = [
    "CONDITION_OCCURRENCE_ID_FIELD_CONCEPT_ID",
    "NAMING_CONVENTION",
    "Base",
    "CareSite",
    "CdmSource",
    "Concept",
    "ConditionOccurrence",
    "Death",
    "DrugExposure",
    "Episode",
    "EpisodeEvent",
    "LungCancerDataset",
    "Measurement",
    "Note",
    "NoteNlp",
    "ObservationPeriod",
    "Person",
    "ProcedureOccurrence",
    "ProvenanceMixin",
    "Specimen",
    "ValueProvenance",
    "VisitOccurrence",
]
