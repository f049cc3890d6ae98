"""Round 5 classes: ages in words beside a name, internal extensions, login handles and
chat speakers, role abbreviations and capitalised titles before names, bare streets,
Canadian and Irish postcodes, Chinese relatives, nicknames, lone surnames, employers;
and the clinical words (brand names, regimens, techniques, devices) they must keep.

Every value here is invented for the test; none is copied from an annotated set.
"""

from __future__ import annotations

import pytest

from tests.unit.edge_node.deid_text.deid_helpers import covered, touched

FOUND = [
    # ages over 89 in words or with a qualifier, and the traditional 歲
    ("en", "Ward round: Rosalind Quayle, ninety-four, for review.", "ninety-four"),
    ("en", "Seen with Mr Oduro (ninety one) today.", "ninety one"),
    ("en", "Age at admission: 96\n", "96"),
    ("zh", "病人：某某  女  93歲  門診", "93"),
    # short internal numbers
    ("en", "Contact the SHO, bleep 4471, overnight.", "4471"),
    ("zh", "社工：电话 5126（内线）", "5126"),
    ("zh", "個管師：分機 71820", "71820"),
    ("zh", "值班：值班医生 6634 随叫", "6634"),
    # people known by a handle or a role
    ("en", "Order amended by tkirwan.\n", "tkirwan"),
    ("en", "[22:05] mo_h: bed 4 needs fluids\n", "mo_h"),
    ("en", "Plan agreed with NP Wren Tolliver today.", "Wren Tolliver"),
    ("en", "Message sent: Dear Mrs K Oyelowo, please call.", "K Oyelowo"),
    ("en", "SPECIMEN REVIEWED WITH DR ASHCROFT-MBEKI TODAY.", "ASHCROFT-MBEKI"),
    ("en", "Pria Venn, Liaison Nurse, will phone.", "Pria Venn"),
    # places
    ("en", "He works nights at the depot on Wexcombe Rd, near the river.", "Wexcombe Rd"),
    ("en", "Lives at 40 Quarry Lane, Ottawa, ON K2P 3B7 with family.", "K2P 3B7"),
    ("en", "Postal: 3 Hollin Road, Ennis, V95 T2K4.", "V95 T2K4"),
    ("en", "Home: 12 Wattle Cres, Bendigo VIC.", "12 Wattle Cres"),
    # Chinese relatives, nicknames, lone surnames and employers
    ("zh", "紧急联系人：其父滕国栋 电话见上。", "滕国栋"),
    ("zh", "今天老公阿勇陪我来的。", "阿勇"),
    ("zh", "患儿小名“糖糖”，4岁。", "糖糖"),
    ("zh", "今天护士小柏来换药。", "小柏"),
    ("zh", "核对人：柏文静 / 姬晓燕\n", "姬晓燕"),
    ("zh", "主治 柏 医生 查房。", "柏"),
    ("zh", "3床 柏 禁食\n", "柏"),
    ("zh", "医嘱：随访　核对/发药：姬\n", "姬"),
    ("zh", "晓雯（闺蜜）陪同就诊。", "晓雯"),
    ("zh", "讨论：内科柏明远：建议化疗。", "柏明远"),
    ("zh", "儿子在上饶高新物流公司上班。", "上饶高新物流公司"),
    ("zh", "患者为东岳航空乘务员。", "东岳航空"),
    # a date's time with a meridiem or zone, an ISO time; particles of Malaysian names;
    # street numbers as ranges or with a unit letter, a compass point after the street
    ("en", "Signed 03-02-2024 07:15 EST by the registrar.", "03-02-2024 07:15 EST"),
    ("en", "Sent Mar 3, 2024, 8:05 PM from the ward.", "Mar 3, 2024, 8:05 PM"),
    ("en", '"lastSeen":"2024-03-02T06:07:08Z"', "2024-03-02T06:07:08Z"),
    ("en", "Interpreter: Devi a/p Subramaniam\n", "Devi a/p Subramaniam"),
    ("en", "Office: 12-16 Larkin Road, Leeds.", "12-16 Larkin Road"),
    ("en", "Mail to 440-B Harrow St NW, Denver.", "440-B Harrow St NW"),
    ("en", "Name: LAM, KIT YEE  Sex: F\n", "LAM, KIT YEE"),
]


@pytest.mark.parametrize(("lang", "text", "value"), FOUND)
def test_round5_class_is_found(lang: str, text: str, value: str) -> None:
    assert covered(text, value, lang), value


KEPT = [
    ("en", "Started Keytruda and Lenvima last cycle.", "Keytruda"),
    ("en", "Started Keytruda and Lenvima last cycle.", "Lenvima"),
    ("en", "Bactrim DS prophylaxis; Percocet for pain.", "Bactrim DS"),
    ("en", "Completed 4 cycles of ABVD, then VMAT with DIBH.", "VMAT"),
    ("en", "Mallampati II, Macintosh 3 blade.", "Mallampati"),
    ("en", "Jackson-Pratt drain removed; Port-a-Cath flushed.", "Jackson-Pratt"),
    ("en", "CBC and LFT normal today.", "LFT"),
    ("en", "Dressing: Mepilex Border over the wound.", "Mepilex Border"),
    ("en", "Age at diagnosis: 54, stage IIA.", "54"),
    ("en", "She walked on the ward, ninety minutes after the dose.", "ninety minutes"),
    ("zh", "诱导：丙泊酚 + 罗库溴铵。", "罗库溴铵"),
    ("zh", "支气管镜：右主支气管通畅。", "右主支气管"),
    ("zh", "营养筛查 NRS2002 评分 3 分。", "NRS2002"),
    ("zh", "在公司工作，无特殊。", "公司"),
    ("en", "Plan: chemoradiation then IMRT 66 Gy.", "IMRT"),
    ("en", "Reviewed at the Mayo Clinic last year.", "Mayo Clinic"),
]


@pytest.mark.parametrize(("lang", "text", "value"), KEPT)
def test_round5_clinical_words_are_kept(lang: str, text: str, value: str) -> None:
    assert not touched(text, value, lang), value


def test_hl7_fields_name_identifier_and_phone_are_found() -> None:
    msg = (
        "MSH|^~\\&|RIS|SITE|||202401020304||ADT^A08|X1|P|2.5\n"
        "PID|1||77120443^^^SITE^MR||QUILTER^ROWAN^J^^^^L||19500101|F|||"
        "||^PRN^PH^^1^555^0143987|||\n"
        "NK1|1|柏^文静|SPO\n"
    )
    for value in ("77120443^^^SITE^MR", "QUILTER^ROWAN^J^^^^L", "1^555^0143987", "柏^文静"):
        assert covered(msg, value, "en"), value
    assert not touched(msg, "ADT^A08", "en")


@pytest.mark.parametrize(
    ("lang", "text", "value"),
    [
        ("zh", "随访电话 一 五 八 零 一 二 三 四 四 五 六。", "一 五 八 零 一 二 三 四 四 五 六"),
        ("zh", "住院号 三七零八二一四五九，", "三七零八二一四五九"),
        ("zh", "案号：（2024）粤0305民初1234号。", "（2024）粤0305民初1234号"),
        ("zh", "请登录 portal.example.cn/r/Ab12Cd 查看。", "portal.example.cn/r/Ab12Cd"),
    ],
)
def test_round5_number_and_link_shapes(lang: str, text: str, value: str) -> None:
    assert covered(text, value, lang), value


def test_trial_registration_number_is_kept() -> None:
    assert not touched("Enrolled in NCT01234567 (phase 3).", "NCT01234567", "en")
    assert not touched("随机入组 ChiCTR2000012345 研究。", "ChiCTR2000012345", "zh")
