"""Identifier classes found by context (context.py and the wider rules), each on
examples written for this test, and the clinical shapes that must survive them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edge_node.deid_text import context, detect


def spans(text: str, lang: str | None = None) -> list[str]:
    return [text[s:e] for s, e, _ in detect(text, lang)]


def covered(text: str, value: str, lang: str | None = None) -> bool:
    """Every non-space character of `value` (first occurrence) lies in a found span."""
    start = text.index(value)
    marks = [False] * len(text)
    for s, e, _ in detect(text, lang):
        for i in range(s, e):
            marks[i] = True
    return all(marks[i] or text[i].isspace() for i in range(start, start + len(value)))


# --- English names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Attendees: Drs Quarrie, Lindqvist (Radiology), Abeyratne; M. Tolliver.", "Lindqvist"),
        ("Attendees: Drs Quarrie, Lindqvist (Radiology), Abeyratne; M. Tolliver.", "Abeyratne"),
        ("Signed by Søren Håkonsen-Lie, MD at noon.", "Søren Håkonsen-Lie"),
        ("Witness: Thandiwe Mokoena (HCA).", "Thandiwe Mokoena"),
        ("Parents: Idris Fenwright and Maja Olesen - both present.", "Maja Olesen"),
        ("Dear Rosalind,\nThank you for the referral.", "Rosalind"),
        ("Ordering MD: Quiroga, Benedikt\nSpecimen: core", "Quiroga, Benedikt"),
        ("Bed 4, Trelawny, Ottilie (97): agitated overnight.", "Trelawny, Ottilie"),
        ("Esperanza Villalobos, 58, attends with cough.", "Esperanza Villalobos"),
        ("Seen with her brother Casimir Wenzel today.", "Casimir Wenzel"),
        ("Lab called by P. Hargitay (BMS) at 10:00.", "P. Hargitay"),
        ("Trial screening. Initials: R.T.V.   Consent signed.", "R.T.V."),
        ("Note written by Mr. DeMarco Fairweather, 52, yesterday.", "DeMarco Fairweather"),
        ("Name: Pieter van der Walt  Age: 70", "Pieter van der Walt"),
        ('Re: Josephine "Jo" Marchetti, DOB 1/2/1950', 'Josephine "Jo" Marchetti'),
        ("Marguerite Osei-Tutu, Specialist Dietitian, 2/3/24", "Marguerite Osei-Tutu"),
    ],
)
def test_english_names_by_context(text: str, name: str) -> None:
    assert covered(text, name, "en"), (name, spans(text, "en"))


def test_age_after_a_name() -> None:
    assert "93" in spans("Patient: Idris Fenwright, 93, on treatment.", "en")
    assert "96" in spans("Trelawny, Ottilie (96): stable.", "en")


# --- Chinese names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("会议记录\n出席：公孙教授（肿瘤科）、郝建（放疗科）、单于青（病理科）", "郝建"),
        ("会议记录\n出席：公孙教授（肿瘤科）、郝建（放疗科）、单于青（病理科）", "单于青"),
        ("入院记录\n库尔班·吐尔逊，男，55岁，因咳嗽入院。", "库尔班·吐尔逊"),
        ("出院小结\n卓嘎，女，62岁，住院号123456。", "卓嘎"),
        ("患者由侄女古丽娜尔陪同就诊。", "古丽娜尔"),
        ("复诊：患者司徒兰（81岁）诉乏力。", "司徒兰"),
        ("护理记录：生命体征平稳              邝小燕\n", "邝小燕"),
        ("报告医生：令狐晓\n", "令狐晓"),
        ("Progress note\nDr. 邝\n", "邝"),
        ("Patient: Chan Tai-man (陈大文), 60.", "陈大文"),
    ],
)
def test_chinese_names_by_context(text: str, name: str) -> None:
    assert covered(text, name, "zh"), (name, spans(text, "zh"))


# --- dates -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Clinic on Thursday 9th May for review.", "Thursday 9th May"),
        ("MDT - Monday, 3 June 2024, 08:15\nChair", "Monday, 3 June 2024, 08:15"),
        ("Consent: the 7th of August 2023 in clinic", "the 7th of August 2023"),
        ("Radiotherapy Sep 2-6, 2024 completed.", "Sep 2-6, 2024"),
        ("PSA trend: Feb-23 4.1 -> May-23 6.0", "Feb-23"),
        ("Scan 12.04.23 showed progression.", "12.04.23"),
        ("Restaged on 3/11 after two cycles.", "3/11"),
        ("Next review 14/09.", "14/09"),
        ("No change at 11/2022 imaging.", "11/2022"),
        ("Repeat CT early-March 2025.", "early-March 2025"),
        ("Seen 05/06/2024 1430: afebrile.", "05/06/2024 1430"),
        ("3月上旬曾外院就诊。", "3月上旬"),
        ("化疗于5月3、10、17日完成。", "5月3、10、17日"),
        ("就诊日期：２０２３年１１月２日", "２０２３年１１月２日"),
        ("预约11月5日（周三）下午2:30 复诊。", "11月5日（周三）下午2:30"),
    ],
)
def test_dates_by_context(text: str, value: str) -> None:
    assert covered(text, value), (value, spans(text))


def test_scores_and_ratios_are_not_dates() -> None:
    assert spans("Pain 3/10 at rest; nodes 2/14 positive.", "en") == []


# --- addresses, organisations, numbers --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (
            "Home: 7 Mill Lane, Otley, West Yorkshire LS21 3AB. Tel",
            "7 Mill Lane, Otley, West Yorkshire LS21 3AB",
        ),
        ("Address: Apt 5, 300 W. Harbor Ave, Suite 2, Tacoma, WA 98402.", "300 W. Harbor Ave"),
        ("GP: Dr X, Lindenstraße 4, 50674 Köln.", "Lindenstraße 4, 50674 Köln"),
        ("She lives with her daughter in Keswick.", "Keswick"),
        ("Retired, moved from Little Wittenham, Oxfordshire.", "Little Wittenham, Oxfordshire"),
    ],
)
def test_addresses_by_context(text: str, value: str) -> None:
    assert covered(text, value, "en"), (value, spans(text, "en"))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Works as a porter at Fairholme Logistics Ltd, part time.", "Fairholme Logistics"),
        ("Former welder at Tyneside Shipyard until 1990.", "Tyneside Shipyard"),
        ("Second-year student (University of Exeter).", "University of Exeter"),
        ("Cleaner at Northgate General Hospital; no sick pay.", "Northgate General Hospital"),
        ("原在某县水泥制品厂工作。", "某县水泥制品厂"),
        ("工作单位：中国建设银行江北支行", "中国建设银行江北支行"),
    ],
)
def test_workplaces(text: str, value: str) -> None:
    assert covered(text, value), (value, spans(text))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("NI number AB 12 34 56 D on file.", "AB 12 34 56 D"),
        ("Submitted with NPI 1234567893, today.", "1234567893"),
        ("Mobile 07911 123 456 or home 01632 960 001.", "07911 123 456"),
        ("Mobile 07911 123 456 or home 01632 960 001.", "01632 960 001"),
        ("Samples BB-XY-001234-P2 and S22-004411-B1 sent.", "BB-XY-001234-P2"),
        ("Samples BB-XY-001234-P2 and S22-004411-B1 sent.", "S22-004411-B1"),
        ("The CRF for subject QRS-0192 is late.", "QRS-0192"),
        ("Port LOT ABCD1234 implanted.", "ABCD1234"),
        ("导管产品批号 XK2231 已登记。", "XK2231"),
        ("银行卡 6222 **** **** 1234 已退费。", "6222 **** **** 1234"),
        ("网盘提取码：8k2p", "8k2p"),
        ("Analyser a55-SN-4401-9 flagged.", "a55-SN-4401-9"),
        ("Admission IP#2023-554411 closed.", "2023-554411"),
    ],
)
def test_numbers_by_context(text: str, value: str) -> None:
    assert covered(text, value), (value, spans(text))


# --- what must survive -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Umbilical nodule (Sister Mary Joseph) noted.",
        "Interim PET Deauville 2; continue ABVD.",
        "乳腺癌家族史：母亲48岁患乳腺癌。",
        "予盐酸帕洛诺司琼 0.25mg 止吐。",
        "口服复方甘草口服液 10ml tid。",
        "予紫杉醇（白蛋白结合型）及注射用紫杉醇脂质体。",
        "单位      结果\n癌胚抗原(CEA)    5.1",
        "送检单位：某市人民医院病理科",
        "行预防性全脑照射。",
        "Case discussed: breast cancer at 44, mother at 51.",
    ],
)
def test_clinical_content_survives(text: str) -> None:
    assert spans(text) == [], spans(text)


def test_full_width_folding_keeps_offsets() -> None:
    text = "电话：１３８１２３４５６７８　日期：２０２４年１月２日"
    folded = context.fold_width(text)
    assert len(folded) == len(text)
    assert "13812345678" in folded
    assert covered(text, "１３８１２３４５６７８")


# --- start-up cost -----------------------------------------------------------------------


def test_cli_registration_imports_nothing_heavy() -> None:
    code = (
        "import sys; import edge_node.deid_text.cli, edge_node.deid_text; "
        "print(sorted(m for m in ('spacy', 'jieba', 'torch', 'thinc') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_jieba_is_quiet() -> None:
    code = "from edge_node.deid_text import detect; detect('患者王明，男，60岁。', 'zh')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Building prefix dict" not in out.stderr
    assert "DEBUG" not in out.stderr
