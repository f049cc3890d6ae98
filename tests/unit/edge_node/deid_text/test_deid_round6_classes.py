"""Round 6 classes: employers and schools by their kind word or the verb before them,
towns before a US state, flat and unit numbers, Chinese city-district chains; people
after a labelled colon whatever their surname, after kin and role words, in lower-case
transcripts, greetings and one-line sign-offs; ages said in a sentence; short codes
after their word; and the clinical words (fusions, trials, prefixed TNM, products
before a serial, authors' scores) they must keep.

Every value here is invented for the test; none is copied from an annotated set.
"""

from __future__ import annotations

import pytest

from tests.unit.edge_node.deid_text.deid_helpers import covered, touched

FOUND = [
    # organisations by structure and by the verb before them
    (
        "en",
        "Her son is a porter; she retired from Quillfeather Logistics last May.",
        "Quillfeather Logistics",
    ),
    (
        "en",
        "Now lecturing at Brackenfold School of Nursing; stress high.",
        "Brackenfold School of Nursing",
    ),
    (
        "en",
        "Daughter studies at University of Tarnwick–Eastvale; visits monthly.",
        "University of Tarnwick–Eastvale",
    ),
    ("en", "He worked 25 years at Velmont Power Station.", "Velmont Power Station"),
    ("en", "Letter for the head of Oakridge Academy Trust, re absence.", "Oakridge Academy Trust"),
    ("zh", "联系人单位：博睿（中国）有限公司，电话另附。", "博睿（中国）有限公司"),
    ("zh", "下周他去江州大学医学院讲课。", "江州大学医学院"),
    ("zh", "（证明交青溪区明德实验学校人事处）", "青溪区明德实验学校"),
    # places
    ("en", "Works at a cannery in Pellston, MI. Smoker.", "Pellston"),
    ("en", "Home: 12 Orchard Row, Unit 804, Brackton, OR 97001.", "Unit 804"),
    ("en", "Flat: 2F1, 9 Larch Terrace, Dunmore EH3 9ZZ.", "2F1"),
    ("zh", "既往在洛川市北塘区某医院就诊。", "洛川市北塘区"),
    # Chinese people after a labelled colon, a glued role, a kin word, a formal name
    ("zh", "姓名：扎西多吉　性别：男", "扎西多吉"),
    ("zh", "科主任：仇\n", "仇"),
    ("zh", "受理：栾　2024.03.02", "栾"),
    ("zh", "电话通知值班护士霍敏：血钾偏高。", "霍敏"),
    ("zh", "我爸邢长根，最近胃口差。", "邢长根"),
    ("zh", "患儿乐乐（大名满天佑），5岁。", "满天佑"),
    ("zh", "朝鲁（蒙古族，男，58岁）复诊。", "朝鲁"),
    ("zh", "报告如上。\n蓝\n某某医院 放疗科", "蓝"),
    ("zh", "已电话通知栾医生（7712）。", "7712"),
    ("zh", "姓名：鄺家樂　男", "鄺家樂"),
    # English people by context
    ("en", "Handed over by Tamsin to Ifeoma at 20:00.", "Ifeoma"),
    ("en", "Hi Kelly, can I move my scan?", "Kelly"),
    ("en", "Yours faithfully, Keziah Morland — by post", "Keziah Morland"),
    ("en", "Member: Quist, Harriet L.   Member ID: ZZ1", "Quist, Harriet L."),
    ("en", "RECONCILIATION — Dunmore, Oisin T (MRN 0044)", "Dunmore, Oisin T"),
    ("en", '"hello this is ann marie kelly calling about my mum"', "ann marie kelly"),
    ("en", "Pt james okorafor adeyemi, 61M, walk-in.", "james okorafor adeyemi"),
    ("en", "Reviewed by Dr. TAN Wei Ming today.", "TAN Wei Ming"),
    # more shapes: a Singapore block, a town on its own line, a trailer, a foreign school,
    # FHIR-like JSON, an HL7 address, a Tibetan name after a bed or a surgeon's label,
    # a compound surname alone, an elder's age, a quarter of a year, a national number
    ("en", "Home: Blk 88 Tampines Ave 4 #07-231, Singapore.", "Blk 88 Tampines Ave 4 #07-231"),
    ("en", "Mr Odell Pratt\n41 Sage Row\nBoise Falls, ID 83702\nDear", "Boise Falls"),
    ("en", "Sent to 12 Creek Rd, Trailer 4, Hollins, VA 24019", "Trailer 4"),
    ("en", "Her son's school (Collège Saint-Rémi) was told.", "Collège Saint-Rémi"),
    ("en", '{"name":[{"family":"Quennell","given":["Orla","Bea"]}]}', "Quennell"),
    ("en", '{"name":[{"family":"Quennell","given":["Orla","Bea"]}]}', "Bea"),
    (
        "en",
        "PID|1||X||ROE^ANN||19500101|F|||7 ELM ST^^OAKTON^VA^22124||",
        "7 ELM ST^^OAKTON^VA^22124",
    ),
    ("zh", "12床 次仁央宗 术后第1天\n", "次仁央宗"),
    ("zh", "术者：端木 助手：扎西顿珠\n", "扎西顿珠"),
    ("zh", "病区　上官若兰　床号 8", "上官若兰"),
    ("zh", "5床 郑大爷 96 跌倒高危", "96"),
    ("zh", "会议纪要（2024年第二季度）", "2024年第二季度"),
    ("en", "Medicare 4417 20931 2 / DVA none", "4417 20931 2"),
    ("en", "Hospice intake, the third of February, 2024, at home.", "the third of February, 2024"),
    # ages said in a sentence, codes after their word, a share path
    ("en", "Son says she is 93 and lives alone.", "93"),
    ("en", "Key safe code 5813 by the door.", "5813"),
    ("en", "Messages via (pager 6620).", "6620"),
    ("en", "Our ref: ONC/LTR/88213", "ONC/LTR/88213"),
    (
        "en",
        "Plan saved to \\\\plans-srv\\rt\\2024\\case17 overnight.",
        "\\\\plans-srv\\rt\\2024\\case17",
    ),
]


@pytest.mark.parametrize(("lang", "text", "value"), FOUND)
def test_round6_class_is_found(lang: str, text: str, value: str) -> None:
    assert covered(text, value, lang), value


KEPT = [
    ("en", "Biopsy: EML4::ALK fusion detected.", "EML4::ALK"),
    ("en", "Staging MRI: mrT3b mrN1c, EMVI positive.", "mrN1c"),
    ("en", "She is on the CheckMate-816 arm.", "CheckMate-816"),
    ("en", "Randomised in RTOG 0617 style dosing.", "RTOG 0617"),
    ("en", "CrCl 51 mL/min by Cockcroft-Gault.", "Cockcroft-Gault"),
    ("en", "Pump CADD-Solis SN QX9-118822 connected.", "CADD-Solis"),
    ("en", "Diffuse large B-cell lymphoma, stage IIIA, IPI 2.", "IIIA"),
    ("en", "Serous carcinoma of Müllerian origin.", "Müllerian"),
    ("en", "Helicobacter pylori positive on biopsy.", "Helicobacter pylori"),
    ("en", "Workaround: export the plan again.", "Workaround"),
    (
        "en",
        "Ordering: Dr. Quarry, Eastvale Cancer Institute Thoracic Oncology",
        "Eastvale Cancer Institute",
    ),
    ("en", "Yours sincerely, Outpatient Booking Office", "Outpatient Booking Office"),
    ("zh", "门静脉癌栓（程氏III型），CNLC IIIa期。", "程氏III型"),
    ("zh", "滑膜肉瘤（SS18::SSX2融合）。", "SS18::SSX2"),
    ("zh", "亚叶酸钙400mg/m²，5-FU2400mg/m² 46h泵入。", "5-FU"),
    ("zh", "接收单位：青山肿瘤医院乳腺外科\n", "青山肿瘤医院"),
    ("zh", "会诊意见（心血管内科 欧阳主任）：同意。", "主任"),
    ("en", "Nadia Fenwick, Uro-oncology CNS\n", "Uro-oncology"),
    ("zh", "防压疮，Braden评分 12分。", "Braden评分"),
    ("zh", "腰痛，已在洛川市北塘区社区医院拍片。", "社区医院"),
    ("zh", "加速器：TrueBeam SN K102938　物理师：略", "TrueBeam"),
    ("zh", "主持人：上官明远主任医师（胸外科）", "主任医师"),
]


@pytest.mark.parametrize(("lang", "text", "value"), KEPT)
def test_round6_clinical_words_are_kept(lang: str, text: str, value: str) -> None:
    assert not touched(text, value, lang), value


def test_list_of_names_stops_at_an_institution() -> None:
    text = "Ordering: Dr. Quarry, Eastvale Cancer Institute Thoracic Oncology\n"
    assert covered(text, "Quarry", "en")
    assert not touched(text, "Thoracic Oncology", "en")


def test_a_university_medical_centre_is_not_an_employer() -> None:
    text = "在读研究生（青山理工大学材料学院）。转诊至青山大学医学中心 肿瘤科。"
    assert covered(text, "青山理工大学", "zh")
    assert not touched(text, "青山大学医学中心", "zh")
