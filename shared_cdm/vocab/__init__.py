"""Vocabularies shipped with OncoFed: ICD-10 neoplasms, ICD-O-3 morphologies,
AJCC 8th lung TNM and stage groups, and lab analytes with LOINC codes."""

from shared_cdm.vocab.codes import (
    Analyte,
    Concept,
    Icd10Code,
    Morphology,
    TnmValue,
    loinc_check_digit_ok,
    normalize_icd10,
    normalize_morphology,
)
from shared_cdm.vocab.loader import (
    Vocabulary,
    load_concepts_into_db,
    load_default,
    load_vocabulary,
)
from shared_cdm.vocab.omop import LOCAL_CONCEPT_ID_START

__all__ = [
    "LOCAL_CONCEPT_ID_START",
    "Analyte",
    "Concept",
    "Icd10Code",
    "Morphology",
    "TnmValue",
    "Vocabulary",
    "load_concepts_into_db",
    "load_default",
    "load_vocabulary",
    "loinc_check_digit_ok",
    "normalize_icd10",
    "normalize_morphology",
]
