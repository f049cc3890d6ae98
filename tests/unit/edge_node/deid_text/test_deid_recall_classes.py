"""Identifier classes added for recall, and the clinical words they must not take.

Each case is a class, not an instance from the annotated sets: names and numbers
here appear in neither dev.jsonl nor heldout.jsonl.
"""

from __future__ import annotations

import pytest

from edge_node.deid_text import detect
from tests.unit.edge_node.deid_text.deid_helpers import covered


def _found(text: str, lang: str) -> list[str]:
    return [text[s:e] for s, e, _ in detect(text, lang)]


CASES = [
    # ages over 89, spaced, hyphenated, abbreviated, labelled, in Chinese numerals
    ("en", "MDT: 92 yo female, cT2N0M0.", "92 yo"),
    ("en", "A 96 y.o. man with a cough.", "96 y.o."),
    ("en", "He is 103 yrs and frail.", "103 yrs"),
    ("en", "A 99-yr-old widow.", "99-yr-old"),
    ("en", "Lady aged 94, independent.", "94"),
    ("en", "Age 97. Lives alone.", "97"),
    ("en", "A ninety-one-year-old man.", "ninety-one-year-old"),
    ("en", "She is one hundred years old.", "one hundred years old"),
    ("en", "Widower, aged ninety seven, lives alone.", "ninety seven"),
    ("zh", "患者九十六岁，咳嗽两周。", "九十六岁"),
    ("zh", "患者，女，97 岁。", "97 岁"),
    # names by position: letter subject, sign-off, "patient, X,", titles with particles
    ("en", "Re: Ottoline Quarshie, DOB 4 May 1930", "Ottoline Quarshie"),
    ("en", "Regarding: Peregrine Adeyemi\nThank you.", "Peregrine Adeyemi"),
    ("en", "Kind regards,\nSeraphina Oyelaran\nOncology", "Seraphina Oyelaran"),
    ("en", "Yours faithfully,\n\nDr Leopold Nwachukwu", "Leopold Nwachukwu"),
    ("en", "Signed,\nPhilippa Ravenscroft\nConsultant", "Philippa Ravenscroft"),
    ("en", "The patient, Casimir Eze, was reviewed.", "Casimir Eze"),
    ("en", "Discussed with Dr van der Merwe today.", "van der Merwe"),
    ("en", "Seen by Dr D'Arcy and Dr Ffion Pryce-Vaughan.", "Ffion Pryce-Vaughan"),
    ("en", "Seen by Dr D'Arcy and Dr Ffion Pryce-Vaughan.", "D'Arcy"),
    ("en", "Quintus Obafemi (nephew) attended.", "Quintus Obafemi"),
    ("en", "Letter dictated by Wilhelmina Achterberg, MBChB.", "Wilhelmina Achterberg"),
    # "SURNAME, Given" by its shape, with neither word in the name lists
    ("en", "Ward round. QUARSHIE, Ottoline reviewed.", "QUARSHIE, Ottoline"),
    # Chinese: any role label ending in 人/者/员/医师 with a colon, relations, compound surnames
    ("zh", "随访人：岳鹏举\n", "岳鹏举"),
    ("zh", "谈话医师：邝志坚  记录员：柴晓彤", "邝志坚"),
    ("zh", "谈话医师：邝志坚  记录员：柴晓彤", "柴晓彤"),
    ("zh", "电话随访，患者聂振邦之女聂晓彤接听。", "聂振邦"),
    ("zh", "电话随访，患者聂振邦之女聂晓彤接听。", "聂晓彤"),
    ("zh", "参加人员：秦主任、慕容教授、皇甫医师。", "慕容"),
    ("zh", "参加人员：秦主任、慕容教授、皇甫医师。", "皇甫"),
    ("zh", "主治医师：端木蕻良  家属：令狐冲", "端木蕻良"),
    ("zh", "主治医师：端木蕻良  家属：令狐冲", "令狐冲"),
    # dates and record numbers in further spellings
    ("en", "Scan booked Sep-2024 after review.", "Sep-2024"),
    ("en", "Surgery on the 7th of October went well.", "7th of October"),
    ("en", "MR#: 5512398 on the request.", "5512398"),
]


@pytest.mark.parametrize(("lang", "text", "value"), CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_identifier_class_found(lang: str, text: str, value: str) -> None:
    assert covered(text, value, lang), detect(text, lang)


KEEP = [
    # an eponym after a label is the disease, not a person
    ("en", "Re: Pancoast tumour, follow-up scan."),
    ("en", "Patient Hodgkin lymphoma in remission; Wilms tumour excluded."),
    ("en", "Diagnosis: Horner's syndrome; Virchow node palpable."),
    # "WORD, Word" beside clinical words is not a name
    ("en", "EGFR, Exon 19 deletion. CEA, Ki-67 high. HODGKIN, Stage IV."),
    # ages under 90, doses, percentages, a year alone
    ("en", "Aged 88, 89 years old; dose 95 mg; saturation 92%; diagnosed in 2019."),
    # the treating hospital, departments, role words without a name
    ("en", "Kind regards,\nOncology Department\nHarbourview International Hospital"),
    ("zh", "随访医师查房，患者诉咳嗽。记录者：系统自动生成。"),
    ("zh", "患者之女诉患者咳嗽。主任医师：同意目前方案。"),
    # role words are not names, even where jieba's dictionary tags them so
    ("zh", "麻醉师查看患者，记录员在场。"),
    # 于 is a surname, but "患者于2019年…" holds no name (and the year stays)
    ("zh", "患者于2019年诊断为霍奇金淋巴瘤，予ABVD方案化疗，肿瘤科随访。"),
    ("zh", "东江市第一人民医院肿瘤科会诊，2019年确诊霍奇金淋巴瘤，Pancoast瘤，Horner综合征。"),
]


@pytest.mark.parametrize(("lang", "text"), KEEP)
def test_clinical_text_kept(lang: str, text: str) -> None:
    assert _found(text, lang) == []


def test_titled_eponym_surname_is_still_a_name() -> None:
    text = "Seen by Dr Hodgkin today; no Hodgkin lymphoma."
    found = detect(text, "en")
    assert (text.index("Hodgkin"), text.index("Hodgkin") + 7, "NAME") in found
    assert all(s != text.rindex("Hodgkin") for s, _, _ in found)
