"""One test per identifier class, in Chinese and English: the span is found."""

from __future__ import annotations

import pytest

from edge_node.deid_text import detect
from edge_node.deid_text.rules import cn_id_valid
from tests.unit.edge_node.deid_text.deid_helpers import covered

CASES = [
    # names
    ("zh", "姓名：张三  性别：男", "张三"),
    ("zh", "王主任查房后同意出院", "王"),
    ("zh", "今日李医生查看患者", "李"),
    ("zh", "主治医师：张淑琳  住院医师：刘永", "张淑琳"),
    ("zh", "患者家属（配偶 上官秀英，电话 13800001111）", "上官秀英"),
    ("en", "Seen by Dr. Smith in clinic.", "Smith"),
    ("en", "Patient John Smith attended.", "John Smith"),
    ("en", "Name: SMITH, John    MRN: MRN0001234", "SMITH, John"),
    ("en", "Signed out by M. Xie, MD, 12 Mar 2021.", "M. Xie"),
    ("en", "Liang Li (husband) was present.", "Liang Li"),
    # ID numbers: a wrong check digit is still found
    ("zh", "身份证号：510107194205226897", "510107194205226897"),
    ("zh", "身份证 11010119710809394X 已核对", "11010119710809394X"),
    ("zh", "证件 510107194205226890 有误", "510107194205226890"),
    ("en", "National ID: 440106195406252442", "440106195406252442"),
    ("en", "SSN 123-45-6789 on file", "123-45-6789"),
    # phones, all common spellings
    ("zh", "电话 138-1234-5678", "138-1234-5678"),
    ("zh", "手机13812345678。", "13812345678"),
    ("zh", "联系 +86 138 1234 5678 即可", "+86 138 1234 5678"),
    ("zh", "座机(010) 8888-6666", "(010) 8888-6666"),
    ("zh", "科室电话0755-12345678转", "0755-12345678"),
    ("en", "Tel: +44 20 7946 0958", "+44 20 7946 0958"),
    ("en", "call (617) 555-0134 today", "(617) 555-0134"),
    # addresses
    (
        "zh",
        "现住址：成都市武侯区解放路60号23栋4单元1202室",
        "成都市武侯区解放路60号23栋4单元1202室",
    ),
    ("zh", "患者居住于四川省成都市武侯区人民南路4号", "成都市武侯区人民南路4号"),
    ("zh", "家住石桥镇红星村3组", "石桥镇红星村3组"),
    (
        "en",
        "Address: Flat 3B, Block 14, No. 285 Jiefang Rd, Tianhe District, Guangzhou",
        "Flat 3B, Block 14, No. 285 Jiefang Rd, Tianhe District, Guangzhou",
    ),
    ("en", "lives at 221 Baker Street, London", "221 Baker Street, London"),
    # record numbers of every kind
    ("zh", "住院号：A000000001", "A000000001"),
    ("zh", "门诊号 12345678", "12345678"),
    ("zh", "病案号:3100002", "3100002"),
    ("zh", "病理号:B2018 00001 姓名", "B2018 00001"),
    ("en", "MRN: MRN0000001", "MRN0000001"),
    ("en", "Accession No: S21-00001", "S21-00001"),
    ("en", "Acc#: BX000000002", "BX000000002"),
    # dates, Chinese and English formats, with times
    ("zh", "于2021年3月4日入院", "2021年3月4日"),
    ("zh", "入院日期：2021-03-04", "2021-03-04"),
    ("zh", "复查2021/3/4", "2021/3/4"),
    ("zh", "3月4日行手术", "3月4日"),
    ("zh", "2021-03-04 14:30 抽血", "2021-03-04 14:30"),
    ("en", "seen on 04/03/2021", "04/03/2021"),
    ("en", "admitted March 4, 2021", "March 4, 2021"),
    ("en", "admitted 4 Mar 2021 at 09:15", "4 Mar 2021 at 09:15"),
    ("en", "scan on 08-MAR-2021.", "08-MAR-2021"),
    # ages over 89
    ("zh", "患者，92岁，因咳嗽入院", "92岁"),
    ("en", "A 94-year-old woman", "94-year-old"),
    ("en", "Age: 101", "101"),
    # contact and network identifiers
    ("en", "email jane.doe@example.com please", "jane.doe@example.com"),
    ("en", "see https://portal.example.org/p/123", "https://portal.example.org/p/123"),
    ("en", "login from 192.168.10.24 noted", "192.168.10.24"),
    ("en", "Pacemaker serial PM123456X checked", "PM123456X"),
    ("zh", "工作单位：成都天府软件有限公司", "成都天府软件有限公司"),
    ("en", "Works at Acme Widgets Ltd as a clerk", "Acme Widgets Ltd"),
    ("zh", "微信号：wxid_abc123", "wxid_abc123"),
]


@pytest.mark.parametrize(("lang", "text", "value"), CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_identifier_found(lang: str, text: str, value: str) -> None:
    assert covered(text, value, lang), detect(text, lang)


def test_resident_id_check_digit() -> None:
    assert cn_id_valid("11010119710809394X")
    assert not cn_id_valid("110101197108093940")


def test_year_alone_is_kept() -> None:
    text = "Diagnosed in 2019, relapsed 2021年。"
    assert not detect(text, "en")
