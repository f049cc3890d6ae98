"""Clinical content survives: eponyms, TNM, drugs, markers, anatomy, hospital and departments."""

from __future__ import annotations

import pytest

from edge_node.deid_text import detect

KEEP = [
    ("en", "Pancoast tumour with Horner syndrome; history of Hodgkin lymphoma and Wilms tumour."),
    (
        "en",
        "pT3N2M0, stage IIIA. CEA 12.3 ng/mL, CA19-9 40 U/mL, "
        "PD-L1 TPS 50%, EGFR exon 19 deletion.",
    ),
    (
        "en",
        "Started osimertinib 80 mg daily; previously cisplatin and pemetrexed, then pembrolizumab.",
    ),
    ("en", "Mass in the right upper lobe and mediastinum; Ki-67 30%; ECOG 1."),
    ("zh", "右肺上叶腺癌 cT3N2M0 IIIB期，予奥希替尼治疗，CEA较前下降。"),
    ("zh", "予信迪利单抗联合培美曲塞、卡铂化疗，霍奇金淋巴瘤病史，Horner综合征。"),
    ("zh", "东江市第一人民医院肿瘤科，主治医师查房，胸外科会诊。"),
    ("zh", "免疫组化：TTF-1(+)，NapsinA(+)，CK7(+)，Ki-67约30%。"),
]


@pytest.mark.parametrize(("lang", "text"), KEEP)
def test_clinical_text_not_removed(lang: str, text: str) -> None:
    assert detect(text, lang) == []


def test_eponym_surname_with_title_is_still_a_name() -> None:
    text = "Reviewed by Dr. Wilson; no Wilson disease."
    spans = detect(text, "en")
    found = [text[s:e] for s, e, _ in spans]
    assert "Wilson" in found
    assert text.rindex("Wilson") not in [s for s, _, _ in spans]
