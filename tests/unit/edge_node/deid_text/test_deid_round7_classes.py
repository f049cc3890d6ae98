"""Round 7 classes (`edge_node/deid_text/round7.py`): organisations by their kind word
at either end (lodges, granges, co-ops, care homes, mosques, unions with a local
number; 教堂, 工会, 安老院, 寺), rural and postal addresses by shape, administrative
chains down to the village group and a county before its own hospital; people after a
title or a kin word even where the name is an English word, sign-offs with a
credential, handles, romanised and Chinese names side by side; ages over 89 spelled
out or in a record's cells; MAC addresses, licence, incident and identity-card
numbers; and what they must leave alone. The fast scans are checked against their
plain forms.

Every value here is invented for the test; none is copied from an annotated set.
"""

from __future__ import annotations

import random
import re

import pytest

from edge_node.deid_text import round7
from edge_node.deid_text.evaluate import load, split_path
from tests.unit.edge_node.deid_text.deid_helpers import covered, touched

FOUND = [
    # organisations by their kind word, at the end or at the start
    (
        "en",
        "He is tyler of Riverside Lodge No. 447 and wants them told.",
        "Riverside Lodge No. 447",
    ),
    ("en", "Secretary of the Kettle Creek Grange for 30 years.", "Kettle Creek Grange"),
    ("en", "Sells hay through Marsh Valley Farmers Co-op in spring.", "Marsh Valley Farmers Co-op"),
    ("en", "Carers from Brightway Home Care call twice a day.", "Brightway Home Care"),
    ("en", "Moved into Cedarwood Elderly Home after the fall.", "Cedarwood Elderly Home"),
    (
        "en",
        "Member of Amalgamated Transit Workers Local 1181.",
        "Amalgamated Transit Workers Local 1181",
    ),
    ("en", "Prays at Masjid An-Nur Eastfield on Fridays.", "Masjid An-Nur Eastfield"),
    ("en", "Her grandson studies at Tarnwick Polytechnic now.", "Tarnwick Polytechnic"),
    ("en", "Served with the 2nd Battalion, Rifles Regiment.", "2nd Battalion"),
    ("en", "Pensioner, formerly with the New York Tram Company.", "New York Tram Company"),
    ("en", "He works as a night porter at Brannigan Castings, days off Sun.", "Brannigan Castings"),
    ("zh", "信仰：基督教，沙坪坝基督教堂会友。", "沙坪坝基督教堂"),
    ("zh", "系洛阳市铁路工会会员，申请互助金。", "洛阳市铁路工会"),
    ("zh", "长者院舍：福寿安老院。", "福寿安老院"),
    ("zh", "每月初一去灵隐寺上香。", "灵隐寺"),
    ("zh", "在城北清风餐厅做帮厨。", "城北清风餐厅"),
    # addresses by shape
    ("en", "Mail to PO Box 2291, Elkhorn, WI 53121.", "PO Box 2291, Elkhorn"),
    ("en", "Ambulance to RR 4 Box 72, Marlinton, WV.", "RR 4 Box 72, Marlinton"),
    ("en", "Lives Rural Route 3, Box 15B, Tamworth, NH.", "Rural Route 3, Box 15B, Tamworth"),
    ("en", "Trailer at Lot 12, 4410 Old Mill Rd, Harwood MD.", "Lot 12, 4410 Old Mill Rd, Harwood"),
    ("en", "of No. 14/3, Galle Road, Dehiwala\nDx:", "No. 14/3, Galle Road, Dehiwala"),
    (
        "en",
        "Visit at 3 Ferry Cottages, Port Isaac, Wadebridge PL29 3SB today",
        "3 Ferry Cottages, Port Isaac, Wadebridge PL29 3SB",
    ),
    ("en", "Now at 9120 152 St, Fleetwood, BC.", "9120 152 St, Fleetwood"),
    ("en", "Crofter, lives alone on Isle of Barra since 1990.", "Isle of Barra"),
    (
        "en",
        "Home: Purok 3, Brgy. San Roque, Bacolod City 6100",
        "Purok 3, Brgy. San Roque, Bacolod City 6100",
    ),
    ("en", "Joined the Cooperative of Fishers Tambo last year.", "Cooperative of Fishers Tambo"),
    ("zh", "家住湄潭县兴隆镇龙凤村三组。", "湄潭县兴隆镇龙凤村三组"),
    ("zh", "转出单位：黔南州瓮安县人民医院", "黔南州瓮安县"),
    ("zh", "乡镇卫生院：石门镇卫生院\n", "石门镇"),
    ("zh", "外院：当地攸县人民医院CT示肺结节。", "攸县"),
    ("zh", "住址：东城区和平里北街27号院3号楼。", "和平里北街27号院3号楼"),
    ("zh", "住址：Blk 9 Jurong West，新加坡640009", "640009"),
    # people after a title or a kin word, even where the name is an English word
    ("en", "Scan reviewed by Dr Faith Abernathy before clinic.", "Faith Abernathy"),
    ("en", "Discussed with Dr Hope (radiology) this morning.", "Hope"),
    ("en", "Came in with granddaughter Joy and stayed.", "Joy"),
    ("en", "Hospice nurse Crystal phoned the family.", "Crystal"),
    ("en", "Letters to cousins Paulo and Bettina Serra today.", "Paulo"),
    ("en", "Rabbi Feldstein will visit on Friday.", "Feldstein"),
    ("en", "Bill is her husband; real name Josefina de Leon.", "Josefina de Leon"),
    ("en", "Plan agreed.\nMarguerite Dufresne, LCSW  03/02/2025\n", "Marguerite Dufresne"),
    ("en", "Seen in triage\nTriage RN pmcdowell\n", "pmcdowell"),
    ("en", "Charge nurse: Ah Keong / RN Lim ext 20", "Ah Keong"),
    ("en", "Ward list\nMacINTYRE, Fiona  CHI 0000000000\n", "MacINTYRE, Fiona"),
    ("en", "| 11-004 | K.L.M. | 02/02/2025 | Screen fail |", "K.L.M."),
    ("zh", "患者马兰花（身份证名马小兰），女。", "马小兰"),
    ("zh", "社区网格员小杜每周来访。", "小杜"),
    ("zh", "整改：护士长蒋负责。", "蒋"),
    ("zh", "会诊：龚营养师　2025-01-02", "龚"),
    ("zh", "胸外科殷：同意手术。", "殷"),
    ("zh", "患儿豆豆（乳名），男，4岁。", "豆豆"),
    ("zh", "药师：Jenny Ho / 何\n", "Jenny Ho"),
    ("zh", "Ana de Sousa（苏安娜），71歲，胃癌。", "Ana de Sousa"),
    ("zh", "病人姓名：LEUNG Kwok Wai 梁國偉　", "梁國偉"),
    ("zh", "联系：7731\n", "7731"),
    # ages over 89, in words or in a record's cells
    ("en", "Pt: Edna Moss, 97 YOF, fall at home.", "97"),
    ("en", "Patient: QUAIL, Ida   X0000  ninety-three\n", "ninety-three"),
    ("en", "She turned one hundred and one last week.", "one hundred and one"),
    ("zh", "NRIC S0000000Z，ninety-one岁", "ninety-one"),
    ("zh", "LIS|0001|某某|女|93|肿瘤科|CEA|", "93"),
    ("zh", "Bed 4 王伯 94 NPO", "94"),
    ("zh", "My dad is 九十四 and tired.", "九十四"),
    # numbers by their word or their shape
    ("en", "Watch returned (MAC 00:1A:2B:3C:4D:5E).", "00:1A:2B:3C:4D:5E"),
    ("en", "Surgeon licence 48213, pager via switchboard.", "48213"),
    ("en", "EMS Incident #: 24-99012 Unit 7", "24-99012"),
    ("en", "Lockbox: key-safe 3381 at the side door.", "3381"),
    ("en", "IC 750812-14-6623, Klang.", "750812-14-6623"),
    ("en", "Son in London +44 7700 900123 evenings.", "+44 7700 900123"),
    ("en", "Claim no PERSO B2024-000117 pending.", "PERSO B2024-000117"),
    ("zh", "分享链接已发送，提取码x7q2。", "x7q2"),
]


@pytest.mark.parametrize(("lang", "text", "value"), FOUND)
def test_round7_class_is_found(lang: str, text: str, value: str) -> None:
    assert covered(text, value, lang), value


KEPT = [
    ("en", "Palliative Home Care team reviewed symptoms.", "Palliative Home Care"),
    ("en", "Obs: T 37.2 HR 96 BP 110/70 RR 22 SpO2 95%.", "RR 22"),
    ("en", "Sister Mary Joseph nodule noted at the umbilicus.", "Mary Joseph"),
    ("en", "Discharge to MD Anderson Cancer Center, Houston.", "Cancer Center"),
    ("en", "Via NG tube, Nutrison Energy 1000 mL/day.", "Nutrison Energy"),
    ("en", "Attending: Dr Wilson    Resident: Dr. Okafor", "Resident"),
    ("en", "Infusion over ninety minutes, then flush.", "ninety minutes"),
    ("en", "Ninety percent of the dose was given.", "Ninety percent"),
    ("zh", "行腹腔镜全子宫+双附件切除术。", "子宫"),
    ("zh", "葡萄胎清宫术后随访。", "清宫"),
    ("zh", "宫颈活检示CIN3。", "宫颈"),
    ("zh", "患者高龄，因咳嗽入院。", "高龄"),
    ("zh", "东江市第一人民医院出院记录", "东江市"),
    ("zh", "转出单位：黔南州瓮安县人民医院", "人民医院"),
]


@pytest.mark.parametrize(("lang", "text", "value"), KEPT)
def test_round7_leaves_alone(lang: str, text: str, value: str) -> None:
    assert not touched(text, value, lang), value


def test_a_numbered_local_needs_no_unknown_word() -> None:
    # "Workers" alone is a common word; the local number makes it a union branch
    text = "Shop steward, United Dock Workers Local 12, on nights."
    assert covered(text, "United Dock Workers Local 12", "en")
    assert not touched("He and other workers sat in the canteen.", "workers", "en")


# --- the fast forms find what their plain forms find ---------------------------------------

_EDGE = [
    "Lodge Grange Co-op Cooperative Home Care Ltd Club GAA sub-Branch Polytechnic",
    "Lodges, Granger, Clubs, Unionist, Coopers",
    "worked at Acme Foundry Group; Works as a porter at Millbrook Yard",
    "Dr Hope, Drought, Revd Amos, Rev. Abel, Father Brennan, Aunty Ula",
    "son Joy, Wilson Ray, grandson Eli, co-worker Dee, contact: Ann, Caller: Bo",
    "licence 12345, warrant card 44 GMP 12345, claim no AB 1234, Incident # 22-11",
    "real name Ana Lima, legal name Rui de Sá",
    "123456-12-1234 0123456-12-12345 12345-12-1234",
    "3rd Battalion, 21st Regiment Foo, 101st Division",
]


def _texts() -> list[str]:
    rng = random.Random(7)
    alphabet = "aoSsnNdDrRLlWw0123456789 -,.:#\n"
    randoms = ["".join(rng.choice(alphabet) for _ in range(300)) for _ in range(40)]
    notes = [r["text"] for r in load(split_path("dev"))[:80]]
    return _EDGE + randoms + notes


def _plain_words(words: list[str]) -> str:
    return "(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + ")"


@pytest.mark.parametrize(
    "gate", [round7._ORG_START_GATE, round7._ADDRESS_GATE], ids=["org_start", "address"]
)
def test_class_first_gate_matches_its_plain_alternation(gate: re.Pattern[str]) -> None:
    words = {
        id(
            round7._ORG_START_GATE
        ): "Masjid Gurdwara Temple Synagogue Universi Cooperative Chevaliers",
        id(round7._ADDRESS_GATE): "Box Route Unit Isle Island Sitio Purok Brgy Barangay",
    }[id(gate)].split()
    plain = re.compile(_plain_words(words))
    for text in _texts():
        assert [m.span() for m in gate.finditer(text)] == [m.span() for m in plain.finditer(text)]


def test_every_plain_cue_match_is_found_by_the_one_scan() -> None:
    pairs = [
        (round7._ROLE_WORDS, round7._EN_AFTER_ROLE),
        (round7._TITLE_WORDS, round7._TITLE_NAME),
        (round7._KIN_WORDS, round7._KIN_NAME),
        (round7._LICENCE_WORDS, round7._LICENCE),
        (round7._INCIDENT_WORDS, round7._INCIDENT),
        (round7._REAL_WORDS, round7._REAL_NAME),
    ]
    for text in _texts():
        found = round7.cued(text)
        for words, after in pairs:
            plain = re.compile(r"(?<![\w])" + _plain_words(words) + after.pattern)
            got = {(s1, e1) for s1, e1, *_ in found.get(after, ())}
            for m in plain.finditer(text):
                assert m.span(1) in got, (text[:60], m.group())


@pytest.mark.parametrize(
    ("fast", "plain", "start_shift"),
    [
        (round7._MYKAD, r"\d{6}-\d{2}-\d{4}(?!\d)", -6),
        (
            round7._NINETY,
            r"(?<![\w\-])(?:[Nn]inety(?:[\-  ](?:one|two|three|four|five|six|seven|eight|nine))?|"
            r"[Oo]ne[\-  ]hundred(?:[\-  ](?:and[\-  ])?[a-z]+)?)(?![A-Za-z\-])"
            + round7._NINETY.pattern.split("(?![A-Za-z\\-])", 1)[1],
            0,
        ),
    ],
    ids=["mykad", "ninety"],
)
def test_fast_number_scans_match_their_plain_forms(
    fast: re.Pattern[str], plain: str, start_shift: int
) -> None:
    slow = re.compile(plain)
    extra = ["ninety-one, Ninety two, one hundred and two", "x-ninety", "ninety minutes"]
    for text in _texts() + extra:
        want = [m.span() for m in slow.finditer(text)]
        got = [(m.start() + start_shift, m.end()) for m in fast.finditer(text)]
        assert got == want, text[:60]
