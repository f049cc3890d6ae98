"""Generator of the annotated de-identification development and held-out sets.

Provenance: every note is synthetic, written by this script for the OncoFed
de-identification work (no real patient, clinician or address is used; names and
places are drawn from public lists of common names and place names, numbers are
random). Each identifier is inserted through `Note.phi`, so its offsets and type
are exact by construction; clinical words are inserted through `Note.keep`.

Held-out split: a different seed, note templates that the dev split never uses
(`HELDOUT_ONLY`), and name/place pools that are disjoint from the dev pools and
partly outside the detector's lexicons. The detector was tuned on `dev` only.

    python -m edge_node.deid_text.devset.generate   # rewrites dev.jsonl, heldout.jsonl
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

OUT_DIR = Path(__file__).parent
DEV_NOTES = 300
HELDOUT_NOTES = 200

ZH_SURNAMES = {
    "dev": list(
        "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程魏苏吕丁任"
    ),
    "heldout": [
        *list(
            "沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛段雷侯龙史陶黎贺顾毛郝龚邵万钱严"
        ),
        "欧阳",
        "司马",
        "诸葛",
    ],
}
ZH_GIVEN = {
    "dev": list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建文辉力"),
    "heldout": list("鹏飞晓燕志刚海波春梅雪莲国栋宏伟佳琪子涵宇轩欣怡浩然梓萱俊杰"),
}
EN_GIVEN = {
    "dev": [
        "John",
        "Mary",
        "David",
        "Susan",
        "James",
        "Linda",
        "Robert",
        "Helen",
        "Wei",
        "Mei",
        "Ravi",
        "Siti",
    ],
    "heldout": [
        "Oluwaseun",
        "Magnus",
        "Ingrid",
        "Tobias",
        "Anneliese",
        "Bartholomew",
        "Xiuying",
        "Haruto",
        "Aroha",
    ],
}
EN_SURNAMES = {
    "dev": [
        "Smith",
        "Johnson",
        "Brown",
        "Taylor",
        "Wilson",
        "Chen",
        "Wang",
        "Patel",
        "Kumar",
        "Tan",
        "Miller",
    ],
    "heldout": [
        "Thackeray",
        "Okonkwo",
        "Villanueva",
        "Brannigan",
        "Yusupova",
        "Lindqvist",
        "Abernathy",
        "Zhuang",
    ],
}
ZH_PLACES = {
    "dev": [
        ("四川省", "成都市", "武侯区"),
        ("广东省", "广州市", "天河区"),
        ("", "北京市", "海淀区"),
        ("湖北省", "武汉市", "洪山区"),
    ],
    "heldout": [
        ("江苏省", "盐城市", "亭湖区"),
        ("河南省", "周口市", "川汇区"),
        ("", "重庆市", "万州区"),
        ("甘肃省", "张掖市", "甘州区"),
    ],
}
ZH_ROADS = {
    "dev": ["解放路", "人民南路", "中山大道", "建设路"],
    "heldout": ["迎宾大道", "青年路", "胜利街", "文化巷"],
}
EN_STREETS = {
    "dev": ["Oak Street", "Station Road", "Maple Avenue", "Church Lane"],
    "heldout": ["Wexford Crescent", "Tamarind Drive", "Kestrel Close"],
}
EN_TOWNS = {
    "dev": ["Guangzhou", "London", "Boston"],
    "heldout": ["Chengdu", "Manchester", "Seattle"],
}
ZH_HOSPITAL = "东江市第一人民医院"
EN_HOSPITAL = "Harbourview International Hospital"
ZH_DRUGS = [
    "顺铂",
    "培美曲塞",
    "奥希替尼",
    "帕博利珠单抗",
    "信迪利单抗",
    "贝伐珠单抗",
    "卡培他滨",
    "奥沙利铂",
]
EN_DRUGS = [
    "cisplatin",
    "pemetrexed",
    "osimertinib",
    "pembrolizumab",
    "carboplatin",
    "paclitaxel",
    "trastuzumab",
]
MARKERS = ["CEA", "CA19-9", "CA125", "CYFRA21-1", "NSE", "AFP", "PSA", "Ki-67"]
TNM = ["cT2aN0M0", "pT3N2M0", "cT4N3M1c", "ypT1bN0M0", "pT2 N1 M0"]
ZH_EPONYMS = ["霍奇金淋巴瘤", "Wilms瘤", "Horner综合征", "Pancoast瘤", "尤文肉瘤"]
EN_EPONYMS = [
    "Hodgkin lymphoma",
    "Wilms tumour",
    "Horner syndrome",
    "Pancoast tumour",
    "Ewing sarcoma",
    "Virchow node",
]
ZH_ANATOMY = ["右肺上叶", "左肺下叶", "纵隔", "肝脏", "乳腺", "直肠"]
EN_ANATOMY = ["right upper lobe", "left lower lobe", "mediastinum", "liver", "breast", "rectum"]
EN_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]  # fmt: skip  # noqa: E501


class Note:
    def __init__(self) -> None:
        self.text = ""
        self.phi: list[dict[str, Any]] = []
        self.keep: list[dict[str, Any]] = []

    def t(self, s: str) -> Note:
        self.text += s
        return self

    def p(self, s: str, kind: str) -> Note:
        self.phi.append({"start": len(self.text), "end": len(self.text) + len(s), "type": kind})
        self.text += s
        return self

    def k(self, s: str) -> Note:
        self.keep.append({"start": len(self.text), "end": len(self.text) + len(s), "term": s})
        self.text += s
        return self


class Ctx:
    def __init__(self, rng: random.Random, split: str) -> None:
        self.r = rng
        self.split = split
        self.base = date(2015, 1, 1) + timedelta(days=rng.randrange(3000))

    def pick(self, pool: dict[str, list[Any]]) -> Any:
        return self.r.choice(pool[self.split])

    def zh_name(self) -> str:
        return self.pick(ZH_SURNAMES) + "".join(
            self.pick(ZH_GIVEN) for _ in range(self.r.choice([1, 2, 2]))
        )

    def en_name(self) -> str:
        return f"{self.pick(EN_GIVEN)} {self.pick(EN_SURNAMES)}"

    def day(self, offset: int = 0) -> date:
        return self.base + timedelta(days=offset)

    def zh_date(self, d: date) -> str:
        return self.r.choice(
            [
                f"{d.year}年{d.month}月{d.day}日",
                f"{d:%Y-%m-%d}",
                f"{d.year}/{d.month}/{d.day}",
                f"{d.year}.{d.month}.{d.day}",
                f"{d.month}月{d.day}日",
                f"{d:%Y-%m-%d} {self.r.randrange(7, 20):02d}:{self.r.randrange(60):02d}",
                f"{d.year}年{d.month:02d}月{d.day:02d}日",
            ]
        )

    def en_date(self, d: date) -> str:
        m = EN_MONTHS[d.month - 1]
        return self.r.choice(
            [
                f"{d.day} {m[:3]} {d.year}",
                f"{m} {d.day}, {d.year}",
                f"{d:%d/%m/%Y}",
                f"{d:%Y-%m-%d}",
                f"{d.day} {m} {d.year}",
                f"{d:%d-%b-%Y}".upper(),
                f"{m[:3]} {d.day}",
                f"{d:%d/%m/%Y} {self.r.randrange(7, 20):02d}:{self.r.randrange(60):02d}",
            ]
        )

    def cn_id(self, born: date) -> str:
        area = self.r.choice(["510107", "440106", "110108", "420111", "320902", "411602"])
        body = f"{area}{born:%Y%m%d}{self.r.randrange(1000):03d}"
        weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
        check = "10X98765432"[sum(int(c) * w for c, w in zip(body, weights, strict=True)) % 11]
        if self.r.random() < 0.15:  # a mistyped check digit must still be caught
            check = str((int(check) + 1) % 10) if check.isdigit() else "0"
        return body + check

    def mobile(self) -> str:
        n = f"1{self.r.choice('3589')}{self.r.randrange(10)}{self.r.randrange(10**8):08d}"
        return self.r.choice(
            [
                n,
                f"{n[:3]}-{n[3:7]}-{n[7:]}",
                f"{n[:3]} {n[3:7]} {n[7:]}",
                f"+86 {n[:3]} {n[3:7]} {n[7:]}",
                f"+86-{n}",
            ]
        )

    def landline(self) -> str:
        a = self.r.choice(["010", "021", "0755", "028", "020"])
        n = f"{self.r.randrange(2, 9)}{self.r.randrange(10**7):07d}"
        return self.r.choice(
            [f"({a}) {n[:4]}-{n[4:]}", f"{a}-{n}", f"（{a}）{n}", f"{a} {n[:4]} {n[4:]}"]
        )

    def zh_address(self) -> str:
        prov, city, dist = self.pick(ZH_PLACES)
        road = self.pick(ZH_ROADS)
        r = self.r
        tail = r.choice(
            [
                f"{road}{r.randrange(1, 300)}号{r.randrange(1, 30)}栋{r.randrange(1, 6)}单元{r.randrange(1, 30)}0{r.randrange(1, 5)}室",  # noqa: E501
                f"{road}{r.randrange(1, 300)}号",
                f"{r.choice(['幸福', '锦绣', '阳光'])}小区{r.randrange(1, 20)}号楼{r.randrange(1, 20)}0{r.randrange(1, 4)}室",  # noqa: E501
                f"{r.choice(['石桥镇', '新华乡'])}{r.choice(['红星村', '柳树村'])}{r.randrange(1, 9)}组",  # noqa: E501
            ]
        )
        return r.choice([prov, ""]) + city + dist + tail

    def en_address(self) -> str:
        r = self.r
        street = f"{r.randrange(1, 400)} {self.pick(EN_STREETS)}"
        return r.choice(
            [
                f"{street}, {self.pick(EN_TOWNS)}",
                f"Flat {r.randrange(1, 20)}{r.choice('ABC')}, {street}",
                f"{street}, Tianhe District, Guangzhou",
                f"{street}, {self.pick(EN_TOWNS)} SW1A 2AA",
            ]
        )

    def age(self, zh: bool) -> tuple[str, bool]:
        a = self.r.choice([45, 58, 63, 71, 79, 86, 91, 94, 97, 101])
        return (f"{a}岁" if zh else str(a)), a > 89


Template = Callable[[Note, Ctx], None]


def zh_discharge(n: Note, c: Ctx) -> None:
    r = c.r
    n.t(f"{ZH_HOSPITAL}出院记录\n姓名：").p(c.zh_name(), "NAME").t("  性别：男  年龄：")
    a, old = c.age(True)
    n.p(a, "AGE") if old else n.t(a)
    n.t("  科室：肿瘤科  住院号：").p(f"ZY{r.randrange(10**8):08d}", "MRN").t("\n入院日期：")
    n.p(c.zh_date(c.day()), "DATE").t("  出院日期：").p(c.zh_date(c.day(9)), "DATE")
    n.t("\n联系电话：").p(c.mobile(), "PHONE").t("  现住址：").p(c.zh_address(), "ADDRESS")
    n.t("\n出院诊断：").k(r.choice(ZH_ANATOMY)).t("腺癌 ").k(r.choice(TNM)).t(" IIIA期。予")
    n.k(r.choice(ZH_DRUGS)).t("联合").k(r.choice(ZH_DRUGS)).t("方案化疗，").k(r.choice(MARKERS)).t(
        "较前下降。\n"
    )
    n.t("主治医师：").p(c.zh_name(), "NAME").t("  住院医师：").p(c.zh_name(), "NAME").t(
        "\n记录日期："
    )
    n.p(c.zh_date(c.day(9)), "DATE").t("\n")


def zh_pathology(n: Note, c: Ctx) -> None:
    r = c.r
    n.t("病理诊断报告单\n病理号：").p(f"P{c.day().year}-{r.randrange(10**5):05d}", "MRN").t(
        "  姓名："
    )
    n.p(c.zh_name(), "NAME").t("  门诊号：").p(str(r.randrange(10**7, 10**8)), "MRN").t(
        "\n送检医师："
    )
    n.p(c.zh_name(), "NAME").t("  送检日期：").p(c.zh_date(c.day(2)), "DATE").t("\n病理诊断：（")
    n.k(r.choice(ZH_ANATOMY)).t("）浸润性腺癌，免疫组化：TTF-1(+)，").k("Ki-67").t("约30%，")
    n.k("PD-L1").t("(22C3) TPS 5%。pTNM：").k(r.choice(TNM)).t("。\n诊断医师：").p(
        c.zh_name(), "NAME"
    )
    n.t("  报告日期：").p(c.zh_date(c.day(5)), "DATE").t("\n")


def zh_ward_round(n: Note, c: Ctx) -> None:
    r = c.r
    sur = c.pick(ZH_SURNAMES)
    n.p(c.zh_date(c.day(3)), "DATE").t(" ").p(sur, "NAME").t(
        r.choice(["主任", "主任医师", "副主任"])
    ).t("查房：患者")
    n.p(c.zh_name(), "NAME").t("一般情况可，诉轻度咳嗽。复查").k(r.choice(MARKERS)).t("正常。")
    n.p(c.pick(ZH_SURNAMES), "NAME").t(r.choice(["医生", "医师", "大夫"])).t("建议继续")
    n.k(r.choice(ZH_DRUGS)).t("治疗，注意排除").k(r.choice(ZH_EPONYMS)).t("。\n")


def zh_contact(n: Note, c: Ctx) -> None:
    r = c.r
    rel = r.choice(["配偶", "儿子", "女儿", "长子", "丈夫", "妻子"])
    n.t("患者家属（").t(rel).t(" ").p(c.zh_name(), "NAME").t("，电话 ").p(c.mobile(), "PHONE").t(
        "）已知情同意。"
    )
    n.t("家庭电话：").p(c.landline(), "PHONE").t("。身份证号：").p(
        c.cn_id(c.day(-365 * 60)), "ID_NUMBER"
    )
    n.t("。工作单位：").p(
        r.choice(["成都天府软件有限公司", "华西中学", "长江银行"]), "ORGANIZATION"
    ).t("。\n")


def zh_outpatient(n: Note, c: Ctx) -> None:
    r = c.r
    n.t("门诊病历  就诊日期：").p(c.zh_date(c.day(40)), "DATE").t("\n患者").p(c.zh_name(), "NAME")
    a, old = c.age(True)
    n.t("，")
    n.p(a, "AGE") if old else n.t(a)
    n.t("，病案号").p(str(r.randrange(10**6, 10**7)), "MRN").t("，因").k(r.choice(ZH_ANATOMY)).t(
        "占位复诊。"
    )
    n.t("既往于").p(c.zh_date(c.day(-30)), "DATE").t("行").k("胸腔镜").t("手术。邮箱：")
    n.p(f"pt{r.randrange(1000)}@163.com", "EMAIL").t("。\n接诊医生：").p(c.zh_name(), "NAME").t(
        "\n"
    )


def zh_radiology(n: Note, c: Ctx) -> None:
    r = c.r
    n.t("检查号：").p(f"CT{r.randrange(10**7):07d}", "MRN").t(" 影像号：").p(
        f"{r.randrange(10**6):06d}", "MRN"
    )
    n.t(" 检查日期：").p(c.zh_date(c.day(1)), "DATE").t("\n").k(r.choice(ZH_ANATOMY)).t(
        "见软组织结节，"
    )
    n.t("考虑恶性，").k(r.choice(TNM)).t("。报告医师：").p(c.zh_name(), "NAME").t(" 审核医师：")
    n.p(c.zh_name(), "NAME").t("\n")


def zh_followup_call(n: Note, c: Ctx) -> None:  # held-out only
    r = c.r
    n.t("随访记录：").p(c.zh_date(c.day(200)), "DATE").t("电话随访，患者").p(c.zh_name(), "NAME")
    n.t("之女").p(c.zh_name(), "NAME").t("接听（").p(c.mobile(), "PHONE").t("），诉患者现居")
    n.p(c.zh_address(), "ADDRESS").t("，仍口服").k(r.choice(ZH_DRUGS)).t("，医保卡号：")
    n.p(f"{r.randrange(10**9, 10**10)}", "ID_NUMBER").t("。随访人：").p(c.zh_name(), "NAME").t("\n")


def zh_mdt(n: Note, c: Ctx) -> None:  # held-out only
    r = c.r
    n.t("MDT讨论（").p(c.zh_date(c.day(20)), "DATE").t("）：参加人员 ").p(
        c.pick(ZH_SURNAMES), "NAME"
    )
    n.t("主任、").p(c.pick(ZH_SURNAMES), "NAME").t("教授、").p(c.zh_name(), "NAME").t("医师。患者")
    a, old = c.age(True)
    n.p(a, "AGE") if old else n.t(a)
    n.t("，").k(r.choice(TNM)).t("，建议").k(r.choice(ZH_DRUGS)).t("。住院号").p(
        f"{r.randrange(10**6):06d}", "MRN"
    )
    n.t("，联系电话").p(c.landline(), "PHONE").t("。\n")


def en_discharge(n: Note, c: Ctx) -> None:
    r = c.r
    given, sur = c.pick(EN_GIVEN), c.pick(EN_SURNAMES)
    n.t(f"{EN_HOSPITAL}\nDISCHARGE SUMMARY\nName: ")
    if r.random() < 0.5:
        n.p(f"{sur.upper()}, {given}", "NAME")
    else:
        n.p(f"{given} {sur}", "NAME")
    n.t("    MRN: ").p(f"MRN{r.randrange(10**7):07d}", "MRN").t("    DOB: ").p(
        c.en_date(c.day(-365 * 70)), "DATE"
    )
    a, old = c.age(False)
    n.t("    Age: ")
    n.p(a, "AGE") if old else n.t(a)
    n.t("\nAdmitted: ").p(c.en_date(c.day()), "DATE").t("    Discharged: ").p(
        c.en_date(c.day(6)), "DATE"
    )
    n.t("\nDiagnosis: adenocarcinoma of the ").k(r.choice(EN_ANATOMY)).t(" (").k(r.choice(TNM)).t(
        "). Treated with "
    )
    n.k(r.choice(EN_DRUGS)).t(" and ").k(r.choice(EN_DRUGS)).t(". ").k(r.choice(MARKERS)).t(
        " falling.\n"
    )
    n.t("Attending: Dr ").p(c.en_name(), "NAME").t("    Resident: Dr. ").p(
        c.pick(EN_SURNAMES), "NAME"
    ).t("\n")


def en_pathology(n: Note, c: Ctx) -> None:
    r = c.r
    n.t("SURGICAL PATHOLOGY REPORT\nAccession No: ").p(
        f"S{c.day().year % 100}-{r.randrange(10**5):05d}", "MRN"
    )
    n.t("\nPatient: ").p(c.en_name(), "NAME").t(", ").p(f"MRN{r.randrange(10**7):07d}", "MRN")
    n.t("\nReceived: ").p(c.en_date(c.day(1)), "DATE").t("\nSpecimen: ").k(r.choice(EN_ANATOMY))
    n.t(". Diagnosis: ").k(r.choice(EN_EPONYMS)).t(" excluded; adenocarcinoma, ").k(
        r.choice(TNM)
    ).t(". ")
    n.k("PD-L1").t(" TPS 20%, ").k("EGFR").t(" wild type.\nElectronically signed out by ")
    n.p(f"{c.pick(EN_GIVEN)[0]}. {c.pick(EN_SURNAMES)}", "NAME").t(", MD, ").p(
        c.en_date(c.day(3)), "DATE"
    ).t(".\n")


def en_letter(n: Note, c: Ctx) -> None:
    r = c.r
    n.t("Dear Dr ").p(c.pick(EN_SURNAMES), "NAME").t(",\nRe: ").p(c.en_name(), "NAME").t(", DOB ")
    n.p(c.en_date(c.day(-365 * 80)), "DATE").t(", NHS No ").p(
        f"{r.randrange(100, 999)} {r.randrange(100, 999)} {r.randrange(1000, 9999)}", "ID_NUMBER"
    )
    n.t("\nAddress: ").p(c.en_address(), "ADDRESS").t("\nTel: ").p(
        f"0{r.randrange(1000, 9999)} {r.randrange(100000, 999999)}", "PHONE"
    )
    n.t("\nI reviewed this ")
    a, old = c.age(False)
    if old:
        n.p(f"{a}-year-old", "AGE")
    else:
        n.t(f"{a}-year-old")
    n.t(" retired teacher in clinic on ").p(c.en_date(c.day(30)), "DATE").t(". The ").k(
        r.choice(EN_EPONYMS)
    )
    n.t(" is responding to ").k(r.choice(EN_DRUGS)).t(". Her daughter ").p(c.en_name(), "NAME")
    n.t(" can be reached on ").p(
        c.mobile()
        if r.random() < 0.5
        else f"+44 20 {r.randrange(1000, 9999)} {r.randrange(1000, 9999)}",
        "PHONE",
    )
    n.t(" or ").p(f"{c.pick(EN_GIVEN).lower()}.{r.randrange(99)}@example.com", "EMAIL").t(
        ".\nYours sincerely,\n"
    )
    n.p(c.en_name(), "NAME").t(", MBBS\n")


def en_progress(n: Note, c: Ctx) -> None:
    r = c.r
    n.p(c.en_date(c.day(2)), "DATE").t(" ward round. ").p(c.pick(EN_SURNAMES).upper(), "NAME").t(
        ", "
    )
    n.p(c.pick(EN_GIVEN), "NAME").t(" seen with Mr ").p(c.pick(EN_SURNAMES), "NAME").t(
        " (registrar). "
    )
    n.t("Encounter No: ").p(f"E{r.randrange(10**8):08d}", "MRN").t(". Restaging CT shows stable ")
    n.k(r.choice(EN_ANATOMY)).t(" disease, ").k(r.choice(TNM)).t(". Continue ").k(
        r.choice(EN_DRUGS)
    )
    n.t(". Portal access from ").p(
        f"10.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}", "IP"
    )
    n.t(" logged. Pacemaker serial ").p(f"PM{r.randrange(10**6):06d}X", "DEVICE_ID").t(".\n")


def en_radiology(n: Note, c: Ctx) -> None:
    r = c.r
    n.t("CT CHEST  Acc#: ").p(f"BX{r.randrange(10**9):09d}", "MRN").t("  Study date: ").p(
        c.en_date(c.day(1)), "DATE"
    )
    n.t("\nFindings: mass in the ").k(r.choice(EN_ANATOMY)).t(", suspicious for ").k(
        r.choice(EN_EPONYMS)
    )
    n.t(". Images at ").p(f"https://pacs.example.org/view/{r.randrange(10**6)}", "URL").t(
        "\nReported by "
    )
    n.p(c.en_name(), "NAME").t(", MD, ").p(c.en_date(c.day(1)), "DATE").t(". Verified by Dr. ").p(
        c.pick(EN_SURNAMES), "NAME"
    ).t(".\n")


def en_social(n: Note, c: Ctx) -> None:  # held-out only
    r = c.r
    n.t("Social history: lives with husband ").p(c.en_name(), "NAME").t(" at ").p(
        c.en_address(), "ADDRESS"
    )
    n.t(". Works at ").p(
        r.choice(["Acme Widgets Ltd", "Riverside Primary School", "Northwind Logistics Inc"]),
        "ORGANIZATION",
    )
    n.t(". Passport ").p(f"E{r.randrange(10**8):08d}", "ID_NUMBER").t(". Mobile ").p(
        f"({r.randrange(200, 999)}) {r.randrange(200, 999)}-{r.randrange(1000, 9999)}", "PHONE"
    )
    n.t(". Seen on ").p(c.en_date(c.day(12)), "DATE").t(" for ").k(r.choice(EN_EPONYMS)).t(
        " follow-up.\n"
    )


def en_mdt(n: Note, c: Ctx) -> None:  # held-out only
    r = c.r
    n.t("MDT ").p(c.en_date(c.day(15)), "DATE").t(": Prof. ").p(c.en_name(), "NAME").t(", Dr ").p(
        c.pick(EN_SURNAMES), "NAME"
    )
    n.t(". Patient ").p(c.en_name(), "NAME").t(" (Hospital No ").p(
        f"H{r.randrange(10**6):06d}", "MRN"
    ).t("), ")
    a, old = c.age(False)
    if old:
        n.p(f"{a} yo", "AGE")
    else:
        n.t(f"{a} yo")
    n.t(", ").k(r.choice(TNM)).t(". Plan: ").k(r.choice(EN_DRUGS)).t(".\n")


DEV_TEMPLATES: dict[str, list[Template]] = {
    "zh": [zh_discharge, zh_pathology, zh_ward_round, zh_contact, zh_outpatient, zh_radiology],
    "en": [en_discharge, en_pathology, en_letter, en_progress, en_radiology],
}
HELDOUT_ONLY: dict[str, list[Template]] = {
    "zh": [zh_followup_call, zh_mdt],
    "en": [en_social, en_mdt],
}


def make_note(rng: random.Random, split: str, index: int) -> dict[str, Any]:
    lang = "zh" if index % 2 == 0 else "en"
    ctx = Ctx(rng, split)
    pool = DEV_TEMPLATES[lang] + (HELDOUT_ONLY[lang] * 2 if split == "heldout" else [])
    note = Note()
    for template in rng.sample(pool, k=rng.randint(2, 4)):
        template(note, ctx)
    return {
        "id": f"{split}-{index:04d}",
        "lang": lang,
        "patient_id": f"{split}-P{index // 3:04d}",
        "text": note.text,
        "phi": note.phi,
        "keep": note.keep,
    }


def generate(split: str, count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [make_note(rng, split, i) for i in range(count)]


def main() -> None:
    for split, count, seed in (("dev", DEV_NOTES, 20260101), ("heldout", HELDOUT_NOTES, 99173)):
        with (OUT_DIR / f"{split}.jsonl").open("w", encoding="utf-8") as fh:
            for rec in generate(split, count, seed):
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
