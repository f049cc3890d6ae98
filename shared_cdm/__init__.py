"""The common data model: OMOP-shaped tables, vocabularies, validation and the cohort tree."""

CDM_VERSION = "5.4-oncofed.1"
