"""Vocabularies shipped with OncoFed: ICD-10 neoplasms, ICD-O-3 morphologies,
AJCC 8th lung TNM and stage groups, lab analytes with LOINC codes and plausible
ranges, oncology drugs (ATC), procedures (ICD-9-CM-3) and diagnosis-text rules."""

from shared_cdm.vocab.codes import (
    Analyte,
    Concept,
    Drug,
    Icd10Code,
    Icd10TextRule,
    Morphology,
    Procedure,
    TnmValue,
    alias_key,
    fold,
    loinc_check_digit_ok,
    normalize_atc,
    normalize_icd9cm3,
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
    "Drug",
    "Icd10Code",
    "Icd10TextRule",
    "Morphology",
    "Procedure",
    "TnmValue",
    "Vocabulary",
    "alias_key",
    "fold",
    "load_concepts_into_db",
    "load_default",
    "load_vocabulary",
    "loinc_check_digit_ok",
    "normalize_atc",
    "normalize_icd9cm3",
    "normalize_icd10",
    "normalize_morphology",
]
