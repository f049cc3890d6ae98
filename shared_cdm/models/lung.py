"""The lung-cancer dataset: what a lung study needs that OMOP does not hold flat.

One row per person per primary lung tumour. Values are codes, not free text:
TNM and stage groups are AJCC 8th strings ("T2a", "IIIB"), biomarker statuses
are "positive" / "negative" / "unknown" or a variant name ("L858R").
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from shared_cdm.models.base import Base, ProvenanceMixin, confidence_check
from shared_cdm.models.clinical import person_ref, surrogate_key

TNM = String(10)
STATUS = String(50)


class LungCancerDataset(ProvenanceMixin, Base):
    """OncoFed extension table. `tumour_number` counts a person's primary lung
    tumours (1 for the first) so one row per tumour is enforced."""

    __tablename__ = "lung_cancer_dataset"
    __table_args__ = (
        UniqueConstraint("person_id", "tumour_number"),
        CheckConstraint(
            "pdl1_tps_percent IS NULL OR (pdl1_tps_percent >= 0 AND pdl1_tps_percent <= 100)",
            name="pdl1_tps_percent_range",
        ),
        CheckConstraint("ecog IS NULL OR (ecog >= 0 AND ecog <= 5)", name="ecog_range"),
        confidence_check(),
    )

    lung_cancer_dataset_id: Mapped[int] = surrogate_key()
    person_id: Mapped[int] = person_ref()
    tumour_number: Mapped[int] = mapped_column(Integer, default=1)
    condition_occurrence_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("condition_occurrence.condition_occurrence_id")
    )
    diagnosis_date: Mapped[date | None] = mapped_column(Date, index=True)
    histology: Mapped[str | None] = mapped_column(String(50))
    icdo3_morphology: Mapped[str | None] = mapped_column(String(10))
    laterality: Mapped[str | None] = mapped_column(String(20))
    lobe: Mapped[str | None] = mapped_column(String(20))
    clinical_t: Mapped[str | None] = mapped_column(TNM)
    clinical_n: Mapped[str | None] = mapped_column(TNM)
    clinical_m: Mapped[str | None] = mapped_column(TNM)
    clinical_stage_group: Mapped[str | None] = mapped_column(TNM)
    pathological_t: Mapped[str | None] = mapped_column(TNM)
    pathological_n: Mapped[str | None] = mapped_column(TNM)
    pathological_m: Mapped[str | None] = mapped_column(TNM)
    pathological_stage_group: Mapped[str | None] = mapped_column(TNM)
    egfr_status: Mapped[str | None] = mapped_column(STATUS)
    alk_status: Mapped[str | None] = mapped_column(STATUS)
    ros1_status: Mapped[str | None] = mapped_column(STATUS)
    pdl1_tps_percent: Mapped[float | None] = mapped_column(Float)
    smoking_status: Mapped[str | None] = mapped_column(String(20))
    ecog: Mapped[int | None] = mapped_column(Integer)
    first_treatment: Mapped[str | None] = mapped_column(String(50))
