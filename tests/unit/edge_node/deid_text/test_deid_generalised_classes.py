"""Classes of identifier that no single example rule caught (`generic.py`, name and
address joining in `pipeline.bridge_names`, institutions in `pipeline._institutions`),
and the clinical content and other institutions they must leave alone.

Every value here is invented for the test; none is copied from an annotated set.
"""

from __future__ import annotations

import pytest

from edge_node.deid_text import detect
from tests.unit.edge_node.deid_text.deid_helpers import covered, touched

FOUND = [
    # numbers in groups: OCR spaces, hand grouping, hyphens, slashes
    ("en", "Pension no 4417 58203 6 on file.", "4417 58203 6"),
    ("en", "D O B: 2 9 / 1 1 / 1 9 4 8\n", "2 9 / 1 1 / 1 9 4 8"),
    ("en", "Ref 6 81 04 22 301 559 07 noted.", "6 81 04 22 301 559 07"),
    ("en", "ID card 770412-10-6631 seen.", "770412-10-6631"),
    ("en", "Call 1-877-555-0148 for results.", "1-877-555-0148"),
    ("zh", "影像号 ：MR 23 1107 0452\n", "MR 23 1107 0452"),
    ("zh", "银行卡 6217 8800 1234 5678 901\n", "6217 8800 1234 5678 901"),
    # labels broken by OCR
    ("en", "PAT IENT NAME : Ab ernethy , Rosa lind\n", "Ab ernethy , Rosa lind"),
    ("en", "Ad dress : 17 Thorn bury Cl ose,\nKes wick CA12 4QP\n", "Kes wick CA12 4QP"),
    ("zh", "姓 名 ：谷 雨 桐  性别：女\n", "谷 雨 桐"),
    # addresses on the network and contact details
    ("en", "Upload from fe80::1c2a:9bff:fe41:7d20 failed.", "fe80::1c2a:9bff:fe41:7d20"),
    ("en", "Portal login from 203.0.113.77.", "203.0.113.77"),
    ("en", "Bleep the registrar on ext 5-3318 tonight.", "5-3318"),
    ("zh", "请拨手术室分机 7402 通知。", "7402"),
    ("en", "Report printed by user kmorrow7 at 09:12.", "kmorrow7"),
    # devices: the make and model before a serial, lot or catalogue label
    ("en", "Pump Medira Flow 300 SN 55810273 alarmed.", "Medira Flow 300 SN 55810273"),
    ("en", "Port: Voxa PortLite REF 2204411 LOT KQP2210 flushed.", "Voxa PortLite REF 2204411"),
    ("en", "Console TRX-88 (asset tag 00917734) rebooted.", "TRX-88 (asset tag 00917734)"),
    ("zh", "测序仪：GenoRead 9 序列号 B77120 运行正常", "GenoRead 9 序列号 B77120"),
    ("en", "Image pushed from workstation RADWS-12 overnight.", "RADWS-12"),
    # dates: month-day with a time, Chinese numerals, the ROC calendar, other languages
    ("zh", "用药  11-03 14:30  已核对", "11-03 14:30"),
    ("zh", "患者于十二月三日入院。", "十二月三日"),
    ("zh", "出生：民國52年7月19日", "民國52年7月19日"),
    ("zh", "入院：113年9月4日", "113年9月4日"),
    ("en", "DOB ROC 61/03/08, smoker", "ROC 61/03/08"),
    ("en", "Opname 14 mei 2024 via SEH.", "14 mei 2024"),
    ("en", "Died 03/02/2024 @ 2317 with family present.", "03/02/2024 @ 2317"),
    ("en", "Date: Tue, 4 Jun 2024 10:11:12 +0100\n", "Tue, 4 Jun 2024 10:11:12 +0100"),
    ("zh", "时间：2024年6月4日（周二）下午3点 会议室", "2024年6月4日（周二）下午3点"),
    ("zh", "复诊定于周五（11.08）上午。", "周五（11.08）"),
    # ages in words before y/o; Chinese numerals before 了
    ("en", "Pt Hollis Ward, ninety-six y/o, DNR.", "ninety-six"),
    ("zh", "我外婆九十四了，还能化疗吗？", "九十四"),
    # names: parts found apart, particles, Gaelic prefixes, nicknames, capitals
    ("en", "Name Costa de Almeida, Rui Miguel   Hosp# 5567", "Costa de Almeida, Rui Miguel"),
    ("en", "Patient: Niamh Ní Bhraonáin, born 1950", "Niamh Ní Bhraonáin"),
    ("en", 'Wilhelmina "Billie" Achterberg, 19, reviewed.', 'Wilhelmina "Billie" Achterberg'),
    ("en", "Page 2 for OYELARAN-\nFROST, DESMOND MRN", "FROST, DESMOND"),
    ("en", "Ana (pref name; legal Ottilie Varga) attended.", "Ottilie Varga"),
    ("en", "Obs stable.\n— KMcD RN\n", "KMcD"),
    ("en", "Chemo verified: QX 08:15\n", "QX"),
    # Chinese names: masked, before an ethnic group, after a role, in a list, bare
    ("zh", "【某医院】范*婷您好，报告已出。", "范*婷"),
    ("zh", "超声检查\n尼玛 次仁（藏族） 男 52岁", "尼玛 次仁"),
    ("zh", "诊断医师 宓 2024-05-06\n", "宓"),
    ("zh", "与会：臧、郦文、冷\n", "郦文"),
    ("zh", "病例2：患者訾国栋，男，61岁。", "訾国栋"),
    ("zh", "3床 邴晓霞 宫颈癌 术后第2天", "邴晓霞"),
    ("zh", "医生：Dr. Lam Wai Kit 林偉傑\n", "林偉傑"),
    ("zh", "患儿 豆豆（乳名），4岁。", "豆豆"),
    ("zh", "药学门诊\n厍大爷 93岁 CLL", "厍"),
    ("zh", "交班：注意引流\n—— 郜\n", "郜"),
    # addresses without the usual street word, abroad, Hong Kong, house names
    ("en", "Lives 2210 NW Alder Ave, Salem, OR 97301.", "2210 NW Alder Ave, Salem"),
    (
        "en",
        "Moved from Belgium (9 rue des Tilleuls, 75011 Paris).",
        "9 rue des Tilleuls, 75011 Paris",
    ),
    ("en", "Home: Prinsengracht 210-III, 1016 HK Amsterdam\n", "Prinsengracht 210-III, 1016 HK"),
    ("en", "Address Flat B, 22/F, Block 5, Ravana Court, HK", "Flat B, 22/F, Block 5"),
    ("en", "Eircode is T12 K8W3 for the taxi.", "T12 K8W3"),
    ("en", "of The Willows Care Home, 3 Mill Lane, Ely CB7 4HU", "The Willows Care Home"),
    ("zh", "住址：南京市鼓楼区湖南路12号附3号", "南京市鼓楼区湖南路12号附3号"),
    ("zh", "住杭州市西湖区文三路88幢1单元602\n", "杭州市西湖区文三路88幢1单元602"),
    # employers and schools
    ("zh", "证明供武汉市江岸区教育局请假使用。", "武汉市江岸区教育局"),
    ("en", "Her employer Maison LTC arranged leave.", "Maison LTC"),
    ("en", "Lost his job at Riverside General Hospital kitchen.", "Riverside General Hospital"),
]


@pytest.mark.parametrize(("lang", "text", "value"), FOUND)
def test_identifier_class_is_covered(lang: str, text: str, value: str) -> None:
    assert covered(text, value, lang)


KEPT = [
    # other hospitals, cancer centres and departments are scenery, not PHI
    (
        "en",
        "Second opinion from Rosemount Cancer Centre Glasgow, then home.",
        "Rosemount Cancer Centre Glasgow",
    ),
    ("en", "Transferred from Hospital Tengku Ampuan — ward 3.", "Hospital Tengku Ampuan"),
    ("en", "Records from the Alder Hey NHS Foundation Trust.", "Alder Hey NHS Foundation Trust"),
    ("en", "Referred to Interventional Radiology for a drain.", "Interventional Radiology"),
    ("en", "Reviewed by Dr Amara Osei and Supportive Care today.", "Supportive Care"),
    ("en", "Seen in Otolaryngology clinic.", "Otolaryngology"),
    # eponymous grading systems and clinical abbreviations
    ("zh", "Fuhrman-Nucleolar III级，无坏死。", "Fuhrman-Nucleolar"),
    ("en", "Chemo-RT: CCRT planned for week 2.", "CCRT"),
    ("en", "Liver Child-Pugh A5, no ascites.", "Child-Pugh A5"),
    ("zh", "形态学编码 M8140/3，腺癌。", "M8140/3"),
    # Chinese anatomy and drugs that start with a surname character
    ("zh", "左乳外上象限肿块，行左乳改良根治术。", "左乳"),
    ("zh", "全喉切除术后第3天。", "全喉"),
    ("zh", "长春花碱 6 mg 静推。", "长春花碱"),
    ("zh", "补充白蛋白 10 g。", "白蛋白"),
    ("zh", "照射髂外淋巴引流区 45 Gy。", "髂外淋巴引流区"),
]


@pytest.mark.parametrize(("lang", "text", "value"), KEPT)
def test_clinical_and_institution_terms_are_kept(lang: str, text: str, value: str) -> None:
    assert not touched(text, value, lang)


NOT_FOUND = [
    # spans of years, doses and vital signs in columns are not grouped numbers
    ("en", "Smoked 1998-2012, quit since.", "1998-2012"),
    ("en", "Dose 1200 1500 mg over two days.", "1200 1500"),
    ("en", "HR  88  20  132/78 stable", "88  20  132/78"),
    # a list of complications after a colon is not a list of people
    ("zh", "风险包括但不限于：出血、肺漏气、乳糜胸。", "肺漏气"),
    # a hospital number label is not a hospital name
    ("en", "Patient: Orla Keane   Hospital number: K227019", "Orla Keane"),
]


@pytest.mark.parametrize(("lang", "text", "value"), NOT_FOUND[:4])
def test_clinical_shapes_are_not_flagged(lang: str, text: str, value: str) -> None:
    assert not touched(text, value, lang)


def test_a_name_before_hospital_number_is_not_an_institution() -> None:
    lang, text, value = NOT_FOUND[4]
    assert covered(text, value, lang)


def test_device_label_alone_keeps_only_the_number() -> None:
    text = "Assay kit lot QV5518K used."
    spans = [text[s:e] for s, e, _ in detect(text, "en")]
    assert "QV5518K" in spans


def test_name_parts_joined_into_one_span() -> None:
    text = "Clinic list: Valdés, Maria Inés   Q5510293\n"
    spans = [(text[s:e], t) for s, e, t in detect(text, "en")]
    assert ("Valdés, Maria Inés", "NAME") in spans


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Claim no. 55812 filed with the insurer.", "55812"),
        ("Interpreter ID 7731 booked for Tuesday.", "7731"),
        ("Locker # 4471 holds her bag.", "4471"),
        ("Ticket No: TK-8812 raised.", "TK-8812"),
    ],
)
def test_numbers_after_any_no_or_id_label(text: str, value: str) -> None:
    assert covered(text, value, "en")


def test_school_by_number_but_not_performance_status() -> None:
    text = "Son at P.S. 118 Maurice Sendak; ECOG PS 1, KPS 80."
    assert covered(text, "P.S. 118 Maurice Sendak", "en")
    assert not touched(text, "PS 1", "en")


def test_long_hyphenated_run_is_scanned_in_linear_time() -> None:
    import time

    short, long = "-".join(["Xy"] * 2000), "-".join(["Xy"] * 8000)
    t0 = time.process_time()
    detect(short, "en")
    t_short = time.process_time() - t0
    t0 = time.process_time()
    detect(long, "en")
    t_long = time.process_time() - t0
    # four times the text: a quadratic scan takes sixteen times as long
    assert t_long < 8 * t_short + 0.5
