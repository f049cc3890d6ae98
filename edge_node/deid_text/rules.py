"""Rule detectors: each takes the note text and returns identifier spans.

A `Hit` is (start, end, type, strong). Strong hits come from a pattern or a label
("住院号：", "Dr.", "Tel:") and survive the clinical keep-list unless they are the
keep-listed word itself; weak hits come from lexicon look-ups (a known surname
beside a capitalised word) and are dropped when they overlap a clinical term.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from typing import NamedTuple

from edge_node.deid_text.lexicon import Lexicon, ascii_lower, lexicon, quiet_jieba, trie_pattern


class Hit(NamedTuple):
    start: int
    end: int
    type: str
    strong: bool


Boundaries = Callable[[int], bool]

HAN = "\u4e00-\u9fff"
_ND = r"(?<![0-9A-Za-z])"  # no alphanumeric before
# Speed: Python's `re` skips ahead to a possible first character only when a pattern
# starts with a literal or a character class; a leading look-behind makes it try the
# whole pattern at every position. So "(?<![x])[c]…" is written "[c](?<![x][c])…"
# (the same matches: the look-behind, two characters wide, checks the character
# before the one just read), and "\d{7,}" as "\d\d{6,}".
_NA = r"(?![0-9A-Za-z])"  # no alphanumeric after
# Latin letters with accents count ("Sørensen", "Ibáñez-Moreno", "Wójcik", "Łukasz").
UP = "A-ZÀ-ÖØ-ÞĀĂĄĆĈĊČĎĐĒĖĘĚĜĞĠĢĤĪĮİĶĹĻĽŁŃŅŇŌŐŒŔŘŚŜŞŠŢŤŪŮŰŲŹŻŽ"
LO = "a-zß-öø-ÿ\u0100-\u017f"

# --- identifier numbers -----------------------------------------------------------

CN_ID = re.compile(
    _ND + r"[1-9]\d{5}[ \t-]?(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
    r"[ \t-]?\d{3}[0-9Xx]" + _NA
)
# Any 17 digits + check character is kept even with impossible dates or a bad check
# digit: recall first (the check digit only raises confidence, see `cn_id_valid`).
CN_ID_LOOSE = re.compile(r"\d(?<![0-9A-Za-z]\d)\d{5}[ \t-]?\d{8}[ \t-]?\d{3}[0-9Xx]" + _NA)
OTHER_IDS = re.compile(
    _ND + r"(?:\d{3}-\d{2}-\d{4}"  # US SSN
    r"|[A-Z]{1,2}\d{6}\([0-9A]\)"  # HKID
    r"|[STFGM]\d{7}[A-Z]"  # SG NRIC / FIN
    r"|[EGDSP]\d{8}"  # CN passports
    r"|[A-Z]{2}[ ]?\d{2}[ ]?\d{2}[ ]?\d{2}[ ]?[A-D]"  # UK NI number, also spaced
    r")" + _NA
)

_VALUE = r"[A-Za-z0-9][A-Za-z0-9\-/._]*(?:[ ](?=[A-Za-z0-9\-]*\d)[A-Za-z0-9\-]+)?"
_LSEP = r"\s*(?:[:：#=]|No\.?|Number|number)?\s*[:：#]?\s*"

MRN_LABELS = (
    r"住院号|住院号码|门诊号|门诊号码|急诊号|病案号|病历号|病理号|冰冻号|会诊号|检查号|登记号|标本号|影像号|"
    r"放射号|超声号|检验号|条码号|条形码|就诊号|就诊卡号|诊疗卡号|卡号|ID号|病人ID|患者ID|病人编号|患者编号|"
    r"档案号|流水号|申请单号|送检号|入院号|床旁号|样本编号|标本编号|筛选号|受试者编号|随机号|蜡块号|"
    r"(?i:MRN|MR ?#|MR No\.?|MR Number|Medical Record(?: No\.?| Number| #)?|"
    r"Hospital (?:No\.?|Number|ID)|Patient ID|Pt ID|"
    r"Encounter(?: No\.?| Number| ID)?|Admission (?:No\.?|Number|ID)|Visit (?:No\.?|Number|ID)|"
    r"Accession(?: No\.?| Number| #)?|Acc(?:ession)?\.? ?(?:#|No\.?)|Specimen (?:No\.?|ID|Number)|"
    r"Lab(?:oratory)? (?:No\.?|ID|Number)|Case (?:No\.?|Number)|Study ID|Record (?:No\.?|Number)|"
    r"Chart (?:No\.?|Number)|UR ?No\.?|URN|NHS (?:No\.?|Number)|CHI(?: No\.?)?|Order (?:No\.?|Number)|"  # noqa: E501
    r"IP ?#|OP ?#|Subject (?:ID|No\.?|Number)|Participant (?:ID|No\.?)|Screening (?:ID|No\.?)|"
    r"Biobank (?:ID|No\.?)|Registry (?:ID|No\.?)|Sample (?:ID|No\.?)|Randomi[sz]ation (?:ID|No\.?))"
)
ID_LABELS = (
    r"身份证号码|身份证号|身份证|公民身份号码|证件号码|证件号|护照号码|护照号|护照|医保卡号|医保号|社保卡号|社保号|"
    r"医疗保险号|医疗证号|军官证号|港澳通行证|"
    r"(?i:National ID(?: No\.?| Number)?|ID card(?: No\.?| Number)?|NRIC|IC No\.?|"
    r"Passport(?: No\.?| Number)?|SSN|Social Security(?: No\.?| Number)?|"
    r"Insurance (?:No\.?|Number|ID)|Medicare(?: No\.?| Number)?|Medicaid(?: No\.?| ID)?|"
    r"Policy (?:No\.?|Number)|Member ID|HKID|Health card(?: No\.?)?|Group ?(?:#|No\.?|Number)|"
    r"NI (?:No\.?|Number)|National Insurance(?: No\.?| Number)?|NPI|GMC(?: No\.?)?)"
)
DEVICE_LABELS = (
    r"设备编号|设备号|序列号|起搏器序列号|植入物编号|产品批号|批号|编号|"
    r"(?i:Serial(?: No\.?| Number)?|S/N|SN|Device ID|Device serial|IMEI|UDI|Implant ID|Pacemaker serial|"  # noqa: E501
    r"LOT|Lot No\.?|Batch(?: No\.?)?)"
)
OTHER_LABELS = (
    r"微信号|微信|QQ号|QQ|车牌号|车牌|银行卡号|银行账号|账号|执业证号|工号|员工号|学号|提取码|验证码|取件码|"
    r"(?i:Account (?:No\.?|Number)|Licen[cs]e (?:No\.?|Number|plate)|Vehicle(?: registration)?|"
    r"Employee ID|Staff ID|Student ID|WeChat(?: ID)?)"
)
# (no lower-case letter right after a label: "CHI" is not the start of "Child-Pugh")
LABELLED = [
    (re.compile(rf"(?:{MRN_LABELS})(?![a-z]){_LSEP}({_VALUE})"), "MRN"),
    (re.compile(rf"(?:{ID_LABELS})(?![a-z]){_LSEP}({_VALUE})"), "ID_NUMBER"),
    (re.compile(rf"(?:{DEVICE_LABELS})(?![a-z]){_LSEP}({_VALUE})"), "DEVICE_ID"),
    (
        re.compile(rf"(?:{OTHER_LABELS})(?![a-z]){_LSEP}([A-Za-z0-9{HAN}][A-Za-z0-9_\-.·]{{3,}})"),
        "OTHER",
    ),
]
# Shapes of record numbers with no label: letters with at least five digits
# (A000000001, MRN0000001, P2016-00001, S21-00001, BX000000001), long digit runs.
# (written from its first character, see _ND: "(?<![0-9A-Za-z])(?:[A-Z]{1,4}…|\d{2,}…|\d{4}-…)")
RECORD_SHAPE = re.compile(
    r"[A-Z\d](?<![0-9A-Za-z].)"
    r"(?:(?<=[A-Z])[A-Z]{0,3}(?:-[A-Z]{1,4}){0,2}-?\d{2,}(?:-?\d+|[A-Z]{1,3}\d+|-[A-Z]{1,3}\d*)*"
    r"|(?<=\d)\d+[A-Z]{1,3}\d+|(?<=\d)\d{3}-[A-Z]{1,3}-\d{3,})" + _NA
)
LONG_NUMBER = re.compile(r"\d(?<![\d.,]\d)\d{6,}(?!\d|[.,]\d|\s?(?:mg|ml|mL|g|IU|U|copies|拷贝))")
PLATE = re.compile(
    r"[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼][A-Z][·\s]?[A-Z0-9]{5,6}"
    + _NA
)
DICOM_UID = re.compile(r"\d(?<![\d.]\d)\d*(?:\.\d+){4,}(?![\d.])")
MAC = re.compile(_ND + r"(?:[0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}" + _NA)

# --- contact details ---------------------------------------------------------------

EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
# "(?i:https?://|ftp://|www\.)…" from its first letter (a class: the scan skips ahead); "ſ"
# is the one other letter the case-blind "s" matches.
URL = re.compile(
    r"[HhFfWw](?:(?<=[Hh])[Tt][Tt][Pp][Ssſ]?://|(?<=[Ff])[Tt][Pp]://|(?<=[Ww])[Ww][Ww]\.)"
    r"[^\s<>\"'，。；）)\]]+"
)
IPV4 = re.compile(
    r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?!\d|\.\d)"
)
IPV6 = re.compile(_ND + r"(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}" + _NA)
PHONES = [
    # Chinese mobiles: 13812345678, 138-1234-5678, 138 1234 5678, +86 138 1234 5678
    re.compile(
        r"(?<![\d+])(?:(?:\([ \t]?(?:\+|00)?86[ \t]?\)|(?:\+|00)[ \t]?86)[ \t-]?)?1[3-9]\d(?:[ \t-]?\d{4}){2}(?!\d)"  # noqa: E501
    ),
    # Landlines: (010) 8888-6666, 0755-12345678, （021）12345678, 010 8888 6666 转 123
    re.compile(
        r"(?<![\d+])(?:(?:\+|00)[ \t]?86[ \t-]?)?(?:\(0?\d{2,3}\)|（0?\d{2,3}）|0\d{2,3})[ \t-]?"
        r"\d{3,4}[ \t-]?\d{4}(?:[ \t]?(?:转|ext\.?|x|分机)[ \t]?\d{1,5})?(?!\d)"
    ),
    re.compile(r"(?<![\d+])0\d{4}[ \t]?\d{6}(?!\d)"),  # UK mobiles 07700 900123
    # UK numbers in three groups: 07700 900 712, 01423 555 872, 020 7946 0957
    re.compile(r"(?<![\d+])0\d{2,4}[ \t]\d{3,4}[ \t]\d{3,4}(?!\d)"),
    re.compile(r"(?<![\d+])\d{3}-\d{4}-\d{4}(?!\d)"),  # 852-2577-3010
    # International: +44 20 7946 0958, +1 (617) 555-0134, +65 6123 4567
    re.compile(r"(?<![\w+])\+\d{1,3}[ \t.-]?\(?\d{1,4}\)?(?:[ \t.-]?\d{2,4}){2,4}(?!\d)"),
    # North American: (617) 555-0134, 617-555-0134, 617.555.0134
    re.compile(r"(?<![\d])(?:\(\d{3}\)[ \t]?|\d{3}[ \t.-])\d{3}[ \t.-]\d{4}(?!\d)"),
]
ANY_PHONE = re.compile("|".join(f"(?:{p.pattern})" for p in PHONES))
PHONE_LABELS = (
    r"联系电话|电话号码|电话|手机号码|手机号|手机|座机|固话|传真|联系方式|"
    r"(?i:Tel(?:ephone)?|Phone|Ph|Mobile|Mob|Cell|Fax|Contact (?:number|no\.?)|"
    r"reached on|reachable on|call(?:ed)? on|pager|bleep)"
)
PHONE_LABEL = re.compile(
    rf"(?:{PHONE_LABELS})\.?[ \t]*[:：#]?[ \t]*(\+?[\d(（][\d \t\-()（）.—–－]{{5,}}\d)"
)

# --- dates ------------------------------------------------------------------------

_MONTHS = [
    "January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December",
]  # fmt: skip
_ABBR = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Sept", "Oct", "Nov", "Dec"]
_MON_FORMS = sorted(
    {f for m in _MONTHS + _ABBR for f in (m, m.upper())}
    | {m.lower() for m in _MONTHS + _ABBR if m.lower() not in {"may", "march", "mar"}},
    key=len,
    reverse=True,
)
# A prefix tree: the same forms tried in the same order (longer first), without going
# through the whole list at every place a date may start.
MON = r"(?:" + trie_pattern(_MON_FORMS) + r")\.?"
DAY = r"(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?"
Y4 = r"(?:1[89]\d{2}|20\d{2})"
TIME = (
    r"(?:(?:,?\s*(?:at|@|T)?\s*|\s*(?:上午|下午|晚上|凌晨|中午)?\s*)"
    r"(?:[01]?\d|2[0-3])[:：][0-5]\d(?:[:：][0-5]\d)?(?:\s?[AaPp]\.?[Mm]\.?)?"
    r"|\s*(?:上午|下午|晚上|凌晨|中午)?(?:[01]?\d|2[0-3])\s*[时点](?:\s*[0-5]?\d\s*分)?)?"
)
_ZH_NUM = "〇零一二三四五六七八九十"
DATE_PATTERNS = [
    re.compile(rf"(?<![\w]){DAY}(?:\s+of)?[\s\-/]+{MON},?[\s\-/]+(?:{Y4}|'?\d{{2}})(?!\d){TIME}"),
    re.compile(rf"(?<![\w]){MON}\s+{DAY},?\s+{Y4}(?!\d){TIME}"),
    re.compile(rf"(?<![\w]){MON}\s+{DAY}(?![\d\w]){TIME}"),
    re.compile(rf"(?<![\w\d]){DAY}(?:\s+of)?\s+{MON}(?![\w]){TIME}"),
    re.compile(rf"(?<![\w]){MON},?[\s\-/]+{Y4}(?!\d)"),
    re.compile(
        rf"(?<![\d.]){Y4}\s*[-/.]\s*(?:0?[1-9]|1[0-2])\s*[-/.]\s*(?:0?[1-9]|[12]\d|3[01])(?![\d]){TIME}"
    ),
    re.compile(rf"(?<![\d.]){DAY}[-/.](?:0?[1-9]|[12]\d|3[01])[-/.]{Y4}(?!\d|\.\d){TIME}"),
    re.compile(rf"(?<![\d./]){DAY}[-/](?:0?[1-9]|[12]\d|3[01])[-/]\d{{2}}(?![\d/]|\.\d){TIME}"),
    re.compile(rf"(?<![\d.\-/]){Y4}[-/.](?:0[1-9]|1[0-2]|[1-9])(?![\d\-/.%])"),
    re.compile(r"(?<!\d)(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?!\d)"),
    re.compile(
        rf"(?<!\d)(?:{Y4}|\d{{2}})\s*年\s*(?:0?[1-9]|1[0-2])\s*月(?:\s*(?:0?[1-9]|[12]\d|3[01])\s*[日号])?{TIME}"
    ),
    re.compile(rf"(?<![\d年])(?:0?[1-9]|1[0-2])\s*月\s*(?:0?[1-9]|[12]\d|3[01])\s*[日号]{TIME}"),
    re.compile(rf"[{_ZH_NUM}]{{4}}年[{_ZH_NUM}]{{1,2}}月(?:[{_ZH_NUM}]{{1,3}}[日号])?"),
]

# One alternation per family, longest forms first: one scan instead of five.
MONTH_DATES = re.compile("|".join(f"(?:{p.pattern})" for p in DATE_PATTERNS[:5]))
NUMERIC_DATES = re.compile("|".join(f"(?:{p.pattern})" for p in DATE_PATTERNS[5:10]))

# --- ages over 89 -----------------------------------------------------------------

_OLD = r"(?:9\d|1[0-4]\d)"
AGE_PATTERNS = [
    re.compile(rf"(?<![\d.]){_OLD}\s*(?:周岁|岁半|岁|歲)"),
    re.compile(r"(?:九十|一百)[一二三四五六七八九十零]{0,3}[岁歲]"),
    re.compile(
        rf"(?<![\d.]){_OLD}(?:\s*-?\s*(?i:years?|yrs?|y)\s*-?\s*(?i:old)|-?(?:yo|y/o|y\.o\.)|[MF])(?![A-Za-z])"
    ),
    # spaced and hyphenated English forms: "91 yo", "97 y.o.", "93 yrs", "aged 95"
    re.compile(rf"(?<![\d.]){_OLD}[ \t]*-?[ \t]*(?i:yo|y/o|y\.o\.?|yrs?|years?|y)(?![A-Za-z])"),
    # right after a name: "Edith Roe, 94, on ...", "Roe, Ann (99):", "(her father, Li Wei, 93)"
    re.compile(rf"(?<=[{LO}.][,，] )({_OLD})(?=[,;)）]|\s*(?:[MF]|yo|y/o)(?![A-Za-z]))"),
    re.compile(rf"(?<=[{LO}] \()({_OLD})(?=\))"),
]
# Ages written in words: "a ninety-two-year-old", "aged ninety five", "one hundred years"
_SPELLED_OLD = (
    r"(?:ninety|one hundred|a hundred|hundred)(?:[ \-](?:and[ \-])?(?:one|two|three|four|five|"
    r"six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|"
    r"eighteen|nineteen|twenty|thirty|forty))?"
)
SPELLED_AGE = re.compile(
    rf"(?<![A-Za-z])(?i:{_SPELLED_OLD})[ \-]*(?i:years?|yrs?)(?:[ \-]*(?i:old))?(?![A-Za-z])"
    rf"|(?<![A-Za-z])(?i:aged?)[ \t]*[:：]?[ \t]*((?i:{_SPELLED_OLD}))(?![A-Za-z])"
    # alone between commas or brackets after a name: "Ann Roe, ninety-one, ..."
    rf"|[,(][ \t]?((?i:{_SPELLED_OLD}))(?=[ \t]*[,;)])"
)
AGE_LABELS = r"年龄|(?i:age|aged)"
# a qualifier may stand between the label and its colon: "Age as stated: 97"
AGE_LABEL = re.compile(
    rf"(?:{AGE_LABELS})(?:(?:[ \t]+[a-z]+){{1,3}}[ \t]*[:：]|\s*[:：]?)\s*({_OLD})(?!\d|\.\d)"
)

# --- names --------------------------------------------------------------------------

TITLE_EN = r"(?:Drs|Dr|Doctor|Mr|Mrs|Ms|Miss|Mx|Prof|Professor|Sister|Nurse|Matron|Rev|Sr)\.?"
_WORD = (
    rf"(?:(?:[A-Z]'|Ma?c|De|La|Le|Di|Da)?[{UP}][{LO}]+(?:[-'](?:Ma?c)?[{UP}]?[{LO}]+)*|[A-Z]\.|"
    rf"[{UP}]{{2,}}(?:[-'][{UP}]+)*)"
)
# a/p, a/l, s/o, d/o: "son/daughter of" in Malaysian and Singaporean names
_PART = (
    r"(?:bin|binti|bte|van|von|de|der|den|du|dos|das|di|da|del|la|le|al|el|ter|ap|a/p|a/l|s/o|d/o)"
)
# Up to two particles ("van den Berg") and a nickname in quotes ('William "Bill" Roe').
FULL = rf"{_WORD}(?:[ \t](?:{_PART}[ \t]){{0,2}}(?:\"[A-Za-z]+\"[ \t])?{_WORD}){{0,3}}"
# "Dr van der Berg": a title may be followed by lower-case particles of a surname.
# `(?<![A-Za-z]){TITLE_EN}` with the look-behind after each title's first letter (see _ND).
_TITLE_EN_START = (
    r"(?:D(?<![A-Za-z]D)(?:rs|r|octor)|M(?<![A-Za-z]M)(?:r|rs|s|iss|x|atron)"
    r"|P(?<![A-Za-z]P)(?:rof|rofessor)|S(?<![A-Za-z]S)(?:ister|r)|N(?<![A-Za-z]N)urse"
    r"|R(?<![A-Za-z]R)ev)\.?"
)
EN_TITLE_NAME = re.compile(rf"{_TITLE_EN_START}[ \t]+((?:{_PART}[ \t]+){{0,2}}{FULL})")
NAME_LABELS = (
    r"(?i:name|patient(?: name)?|pt|re:|regarding:|subject:|attending|resident|consultant|surgeon|anaesthetist|anesthetist|"  # noqa: E501
    r"physician|registrar|requesting (?:clinician|physician|doctor)|referring (?:clinician|physician|doctor)|"  # noqa: E501
    r"reported by|verified by|dictated by|transcribed by|electronically signed(?: out)? by|signed(?: out)? by|reviewed by|"  # noqa: E501
    r"seen by|examined by|authori[sz]ed by|discussed with|cc|gp|next of kin|nok|contact person|"
    r"emergency contact|informant|husband|wife|son|daughter|mother|father|spouse|partner|guardian|carer|"  # noqa: E501
    # more relations, roles and sign-off verbs that a name follows
    r"brother|sister|niece|nephew|aunt|uncle|cousin|grandson|granddaughter|grandmother|grandfather|"
    r"son-in-law|daughter-in-law|friend|neighbou?r|landlord|landlady|solicitor|witness|interpreter|translator|"
    r"parents?|proband|participant|deceased|child|coordinator|counsell?or|dietitian|pharmacist|technician|"
    r"social worker|chair|present|attendees|assistant|clinician|scrub nurse|key worker|"
    r"submitted by|called by|raised by|reconciled by|taken by|performed by|prepared by|completed by|"  # noqa: E501
    r"ordering (?:md|physician|clinician|doctor)|dear|bed \d+,|initials)"
)
# A name on the line after a letter's closing words.
SIGNOFF_LABELS = (
    r"(?i:yours (?:sincerely|faithfully|truly)|sincerely|kind regards|best regards|"
    r"warm regards|with regards|regards|best wishes|many thanks|thanks|thank you|signed)"
)
SIGNOFF_NAME = re.compile(
    rf"(?:{SIGNOFF_LABELS}),?[ \t]*\r?\n[ \t]*(?:{TITLE_EN}[ \t]+)?({FULL})(?![A-Za-z])"
)
EN_LABEL_NAME = re.compile(
    rf"(?:{NAME_LABELS})(?![A-Za-z])[ \t]*[:\-,]?[ \t]*\(?[ \t]*(?:{TITLE_EN}[ \t]+)?"
    rf"([{UP}][{UP}{LO}'\-]+,[ \t]*[{UP}][{LO}]+(?:[ \t][{UP}][{LO}]+|[ \t][A-Z]\.)?"
    rf"|[{UP}]{{2,}}(?:-[{UP}]+)?,[ \t]*[{UP}]{{2,}}(?:[ \t][{UP}]{{2,}})?|[A-Z](?:\.[A-Z]){{1,3}}\.?|{FULL})"  # noqa: E501
)
# Where a name may end: before a degree ("Jane Roe, MD") or a relation in brackets
# ("Liang Li (husband)"); the name is then read backwards from there (`name_before`).
_DEGREES = "MD|MBBS|MBChB|FRC|PhD|RN|DO|NP|PA-C|MRCP|DPhil|BMS|HCA|CNS|RGN|FY[12]"
SUFFIX_ANCHOR = re.compile(
    # each degree with its own look-ahead: every branch then starts with a literal (fast scan)
    "|".join(f"{d}(?![A-Za-z])" for d in _DEGREES.split("|")) + r"|\((?i:husband|wife|son|"
    r"daughter|mother|father|brother|sister|spouse|partner|friend|carer|caregiver|nok|next of kin|"
    r"niece|nephew|grandson|granddaughter|guardian|neighbou?r|hca|np|cns|bms|rn|fy[12]|pharmacist)\)"
    # a role after a comma: "Tom Roe, Social Worker", "Ann Lee, Specialist Dietitian"
    # (the comma first: a literal start keeps the case-blind scan cheap)
    r"|,[ \t]*(?i:(?:senior |specialist |clinical |research |staff |oncology |breast care )?"
    r"(?:social worker|dietitian|pharmacist|physiotherapist|counsell?or|coordinator|nurse specialist|"  # noqa: E501
    r"technician|radiographer|prior auth specialist|secretary|registrar|consultant|liaison nurse|"
    r"nurse practitioner|nurse navigator|case manager|chaplain))(?![A-Za-z])"
)
EN_CAPS_SEQ = re.compile(
    rf"(?<![A-Za-z'])(?:{_WORD})(?:[ \t](?:{_PART}[ \t])?{_WORD}){{0,3}}(?![A-Za-z])"
)
EN_COMMA_NAME = re.compile(
    r"([A-Z](?<![A-Za-z][A-Z])[A-Z]+(?:[-'][A-Z]+)*),[ \t]*([A-Z][a-z]+)(?![A-Za-z])"
)

ZH_STOP = set(
    "因于在的是为与和及等男女，、。性年岁入出住院诊术后前行予给经已未无有等同及之来去到从向被把对将也都就还又再"
)


def zh_name_labels(lex: Lexicon) -> re.Pattern[str]:
    labels = "|".join(
        re.escape(t)
        for t in sorted(lex.titles_zh, key=len, reverse=True)
        if lex.titles_zh[t] in ("role", "relation")
    )
    # "|" too: a table cell "| 姓名 | 王某 |" reads like a colon
    return re.compile(rf"(?:{labels})[\s:：（(，,|]*(?:为|是)?[\s:：|]*(?=[{HAN}])")


def zh_suffix_names(lex: Lexicon) -> re.Pattern[str]:
    suffixes = "|".join(
        re.escape(t)
        for t in sorted(lex.titles_zh, key=len, reverse=True)
        if lex.titles_zh[t] == "suffix"
    )
    surn = (
        "|".join(sorted(lex.compound_surnames_zh))
        + "|["
        + "".join(sorted(lex.surnames_zh | {"于"}))
        + "]"
    )
    return re.compile(rf"((?:{surn})[{HAN}]{{0,2}}?)(?:{suffixes})")


# --- addresses ----------------------------------------------------------------------

_ZH_UNIT_NUM = r"(?:\d+|[一二三四五六七八九十百]+)"
ZH_ADDRESS = re.compile(
    rf"(?:[{HAN}]{{2,6}}?(?:省|自治区))?"
    rf"(?:[{HAN}]{{2,4}}?(?:市|自治州|地区|盟))?"
    rf"(?:[{HAN}]{{1,4}}?(?:区|县|旗))?"
    rf"(?:[{HAN}]{{2,5}}?(?:镇|乡|街道|村|社区)(?:{_ZH_UNIT_NUM}组)?){{0,2}}"
    rf"(?:[{HAN}A-Za-z]{{1,6}}?(?:大街|大道|路|街|巷|弄|胡同|里)(?:[东西南北中]段)?(?:{_ZH_UNIT_NUM}(?:弄|号))?)?"
    rf"(?:[{HAN}]{{2,6}}?(?:小区|花园|公寓|大厦|新村|家园|苑|广场|村委会))?"
    rf"(?:{_ZH_UNIT_NUM}[-－]?{_ZH_UNIT_NUM}?(?:号楼|号院|栋|幢|座|号))?"
    rf"(?:{_ZH_UNIT_NUM}(?:单元))?(?:{_ZH_UNIT_NUM}(?:楼|层))?(?:[-－]?\d+(?:室|房|号房|号))?"
)
_ZH_ADDR_UNITS = re.compile(
    r"省|自治区|市|自治州|地区|盟|区|县|旗|镇|乡|街道|村|社区|大街|大道|路|街|巷|弄|胡同|小区|花园|公寓|大厦|新村|家园|"
    r"号楼|栋|幢|座|单元|室|号"
)
ADDRESS_LABELS = (
    r"现住址|现居住地|家庭住址|家庭地址|户籍地址|户籍地|通讯地址|联系地址|工作地址|居住地|住址|地址|籍贯|出生地|"
    r"(?i:home address|address|addr|residence|resides at|lives at|living at)"
)
ADDRESS_LABEL = re.compile(
    rf"(?:{ADDRESS_LABELS})\.?[ \t]*[:：]?[ \t]*"
    r"([^\s，。；;|](?:[^\n\t，。；;|]|[ ](?! ))*?)(?=\s{2,}|\t|\n|[，。；;|]|$|\s+(?:Tel|Phone|Mobile|电话|手机)|"  # noqa: E501
    r"\s{1,}[A-Z][a-z]+:)"
)
ZIP_LABELS = r"邮编|邮政编码|(?i:post ?code|zip(?: code)?)"
ZIP_LABEL = re.compile(
    rf"(?:{ZIP_LABELS})[ \t]*[:：]?[ \t]*([A-Z0-9]{{3,4}}[ ]?[A-Z0-9]{{3,4}}|\d{{5,6}})"
)
UK_POSTCODE = re.compile(r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z]?\d[A-Z\d]?[ ]\d[A-Z]{2}(?![A-Za-z0-9])")
US_STATE_ZIP = re.compile(r"[A-Z](?<=[ ,][A-Z])[A-Z][ ]\d{5}(?:-\d{4})?(?!\d)")
_EN_STREET = (
    r"(?:Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Drive|Dr|Boulevard|Blvd|Court|Ct|Way|Place|Pl|Terrace|Close|"
    r"Crescent|Highway|Hwy|Parkway|Square|Row|Gardens|Walk|Hill|Grove|Mews|"
    # more street-type words: Australian, New Zealand and Irish abbreviations
    r"Cres|Pde|Parade|Circuit|Cct|Esplanade|Esp|Quay|Tce|Pike)"
)
EN_ADDRESS = re.compile(
    r"(?:\d{1,2}(?:st|nd|rd|th)[ \t]+Floor,?[ \t]*)?"
    r"(?:(?:Flat|Apt|Apartment|Unit|Suite|Room|Rm|Floor)\.?[ \t]*[\w\-]+,?[ \t]*)?"
    r"(?:(?:Block|Blk|Bldg|Building|Tower)\.?[ \t]*[\w\-]+,?[ \t]*)?"
    # a number range or a unit before a hyphen ("12-14", "1204-55", "1365-C"), and a
    # compass point after the street type ("Elm St W", "Main Rd NE")
    rf"(?:No\.?[ \t]*)?(?:\d{{1,5}}-)?\d{{1,5}}(?:-?[A-Za-z])?,?[ \t]+(?:[A-Z][a-z']+[ \t]+){{1,3}}{_EN_STREET}\.?(?![A-Za-z])"  # noqa: E501
    r"(?:[ \t](?:NE|NW|SE|SW|N|S|E|W)(?![A-Za-z]))?"
    r"(?:,?[ \t]*(?:[A-Z][a-z']+[ \t]+){0,2}(?:District|County|Province|City|Town|Village|Township|Borough))*"  # noqa: E501
)
EN_AREA = re.compile(
    r"[A-Z](?<![A-Za-z][A-Z])[a-z']+[ \t]+(?:[A-Z][a-z']+[ \t]+)?"
    r"(?:District|County|Township|Borough|Village)(?![A-Za-z])"
)

# --- organisations ------------------------------------------------------------------

ZH_ORG = re.compile(
    rf"[{HAN}A-Za-z0-9]{{2,12}}?(?:有限责任公司|有限公司|股份公司|集团|公司|工厂|制品厂|厂|中学|小学|大学|学院|幼儿园|银行|研究所|研究院|事务所|合作社|饭店|餐馆|米粉店|商店|超市)"
    # a branch after the bank or company: 某某银行某某支行
    rf"(?:[{HAN}]{{2,6}}?(?:支行|分行|分公司|分店|营业部))?"
)
ZH_ORG_LABEL = re.compile(
    # 单位 alone is also a unit of measure (a lab table's column): only before a colon
    # 送检单位, 申请单位, 转出/接收单位 (a referral): the sending hospital, not an employer
    rf"(?:(?:工作单位|(?<!送检)(?<!申请)(?<!检验)(?<!报告)(?<!转出)(?<!转入)(?<!接收)(?<!会诊)(?<!就诊)单位|在读学校|学校|雇主)[ \t]*[:：]"  # noqa: E501
    rf"|就职于|任职于|工作于|供职于|就读于)[ \t]*"
    rf"([{HAN}A-Za-z0-9（）()]{{2,30}})"
)
EN_ORG = re.compile(
    r"[A-Z](?<![A-Za-z][A-Z])[\w&'\-]*[ \t]+(?:[A-Z][\w&'\-]*[ \t]+){0,4}(?:Ltd|Limited|Inc|LLC|plc|PLC|Corp|Corporation|Company|Co\.|"  # noqa: E501
    r"Group|School|Academy|University|College|Bank|Factory|Industries|Technologies|Holdings|Council|"
    r"Tech|Polytechnic|Elementary|Kindergarten|Preschool)(?![A-Za-z])\.?"
)
ORG_LABELS = (
    r"(?i:works?|worked|working|employed|employee|teacher|teaches|student|studies|studying|job|"
    r"retired|employer|workplace|school|company)"
)
EN_ORG_CONTEXT = re.compile(
    r"(?i:works?|worked|working|employed|employee|teacher|teaches|student|studies|studying|job|retired)"
    r"[ \t]+(?:[a-z]+[ \t]+){0,3}(?i:at|for|with|by|from)[ \t]+((?:the[ \t]+)?(?:[A-Z][\w&'\-]*[ \t]*){1,6})"  # noqa: E501
    r"|(?i:employer|workplace|school|company)[ \t]*:[ \t]*([A-Z][^\n\t,;]{1,60}?)(?=\s{2,}|\t|\n|[,;.]|$)"  # noqa: E501
)
HOSPITAL_AFTER = re.compile(
    rf"[{HAN}]{{0,10}}(?:医院|卫生院|诊所|中心医院|(?:肿瘤|医药|医学|防治|癌症)中心)|[A-Za-z ]{{0,30}}(?:Hospital|Medical Cent)"  # noqa: E501
)

# --- clinical shapes that are never identifiers -------------------------------------

TNM = re.compile(
    r"(?<![A-Za-z])(?:yp|c|p|r|yc)?T[0-4xXis][a-d]?\s?N[0-3xX][a-c]?\s?M[01xX][a-c]?(?![A-Za-z0-9])"
)


# --- label dispatch -----------------------------------------------------------------
# Case-insensitive alternations of labels are very slow to scan for in Python's
# `re` (every branch is tried at every position). Instead one prefix-tree regex
# finds where any label's first literal word starts in the ASCII-lower-cased text,
# and only there is each label pattern tried with `match`.

_META = set("\\()[]{}?*+.|^$")


def _split_top(alternation: str) -> list[str]:
    parts, depth, cur, i = [], 0, [], 0
    while i < len(alternation):
        c = alternation[i]
        if c == "\\":
            cur.append(alternation[i : i + 2])
            i += 2
            continue
        if c == "[":
            j = alternation.index("]", i + 2)
            cur.append(alternation[i : j + 1])
            i = j + 1
            continue
        depth += c == "("
        depth -= c == ")"
        if c == "|" and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def label_heads(alternation: str) -> list[str]:
    """The literal text every alternative of a label alternation starts with, lower-cased."""
    heads: list[str] = []
    for alt in _split_top(alternation):
        for group in ("(?i:", "(?:"):
            if alt.startswith(group) and alt.endswith(")") and alt.count("(") == alt.count(")"):
                inner = alt[len(group) : -1]
                if _split_top(inner) != [inner] or group == "(?i:":
                    heads += label_heads(inner)
                    break
        else:
            lit = ""
            for c in alt:
                if c in _META:
                    if c in "?*{" and lit:
                        lit = lit[:-1]
                    break
                lit += c
            if not lit:
                raise ValueError(f"label alternative {alt!r} has no literal start")
            heads.append(lit.lower())
    return heads


class LabelRule(NamedTuple):
    pattern: re.Pattern[str]
    heads: tuple[str, ...]
    kind: str


def label_rule(labels: str, pattern: re.Pattern[str], kind: str) -> LabelRule:
    return LabelRule(pattern, tuple(sorted(set(label_heads(labels)))), kind)


def label_matches(
    text: str, low: str, rules: list[LabelRule]
) -> Iterator[tuple[LabelRule, re.Match[str]]]:
    """(rule, match) for every place where a rule's pattern matches, found via its heads."""
    index = _rule_index()
    by_rule = _all_head_positions(low)
    for rule in rules:
        last_end = 0
        for pos in by_rule.get(index[rule], ()):
            if pos < last_end:
                continue
            hit = rule.pattern.match(text, pos)
            if hit:
                last_end = max(hit.end(), pos + 1)
                yield rule, hit


_LAST_HEADS: tuple[str, dict[int, list[int]]] = ("", {})


def _all_head_positions(low: str) -> dict[int, list[int]]:
    """For each rule (its index in ALL_LABEL_RULES) the sorted places in `low` where
    one of its labels may start; scanned once per text (the detectors of one note
    ask for it in turn)."""
    global _LAST_HEADS
    cached = _LAST_HEADS
    if cached[0] is low:
        return cached[1]
    english, english_after, chinese, rules_of = _finders()
    found: dict[int, frozenset[int]] = {}
    # English labels start a word: found from the character before them (no ASCII
    # letter; other letters are checked here), so the scan skips the letters of words.
    first = english.match(low)
    if first is not None:
        found[0] = rules_of[first.group()]
    search = english_after.search
    m = search(low)
    while m is not None:
        pos = m.start(1)
        if not low[pos - 1].isalpha():
            found[pos] = rules_of[m.group(1)]
        # Heads may overlap ("patient" and "patient id"): look again one further on.
        m = search(low, pos)
    if not low.isascii():
        search = chinese.search
        m = search(low)
        while m is not None:
            pos, head = m.start(), m.group()
            m = search(low, pos + 1)
            found[pos] = rules_of[head]
    out: dict[int, list[int]] = {}
    for pos in sorted(found):
        for i in found[pos]:
            out.setdefault(i, []).append(pos)
    _LAST_HEADS = (low, out)
    return out


@lru_cache(maxsize=1)
def _rule_index() -> dict[LabelRule, int]:
    return {rule: i for i, rule in enumerate(ALL_LABEL_RULES)}


@lru_cache(maxsize=1)
def _finders() -> tuple[
    re.Pattern[str], re.Pattern[str], re.Pattern[str], dict[str, frozenset[int]]
]:
    """Prefix-tree scans for the English and the Chinese heads (one mixed tree is
    slower), and for each head the rules that have it or a prefix of it as a head
    (the tree matches the longest head at a place)."""
    heads = {h for r in ALL_LABEL_RULES for h in r.heads}
    english = {h for h in heads if h.isascii()}
    rules_of = {
        h: frozenset(
            i for i, r in enumerate(ALL_LABEL_RULES) if any(h.startswith(x) for x in r.heads)
        )
        for h in heads
    }
    return (
        re.compile(trie_pattern(english)),
        re.compile(rf"[^a-z]({trie_pattern(english)})"),
        re.compile(trie_pattern(heads - english)),
        rules_of,
    )


PATTERN_RULES = [
    label_rule(MRN_LABELS, LABELLED[0][0], "MRN"),
    label_rule(ID_LABELS, LABELLED[1][0], "ID_NUMBER"),
    label_rule(DEVICE_LABELS, LABELLED[2][0], "DEVICE_ID"),
    label_rule(OTHER_LABELS, LABELLED[3][0], "OTHER"),
    label_rule(PHONE_LABELS, PHONE_LABEL, "PHONE"),
    label_rule(AGE_LABELS, AGE_LABEL, "AGE"),
]
ADDRESS_RULES = [
    label_rule(ADDRESS_LABELS, ADDRESS_LABEL, "ADDRESS"),
    label_rule(ZIP_LABELS, ZIP_LABEL, "ZIP"),
]
ORG_RULES = [label_rule(ORG_LABELS, EN_ORG_CONTEXT, "ORGANIZATION")]
NAME_RULES = [
    label_rule(NAME_LABELS, EN_LABEL_NAME, "NAME"),
    label_rule(SIGNOFF_LABELS, SIGNOFF_NAME, "NAME"),
]
ALL_LABEL_RULES = PATTERN_RULES + ADDRESS_RULES + ORG_RULES + NAME_RULES


_WORD_RE = re.compile(_WORD)
_PART_RE = re.compile(_PART)


def name_before(text: str, end: int) -> int | None:
    """Start of the run of up to four name-shaped words (`FULL`) that ends at `end`.

    Walked backwards word by word: scanning forwards for a name that ends before a
    degree or a relation tries every start in the window and backtracks heavily.
    """
    start: int | None = None
    k, words = end, 0
    while words < 4:
        i = k
        while i > 0 and (text[i - 1].isalpha() or text[i - 1] in "'-."):
            i -= 1
        if i == k or (i > 0 and text[i - 1].isalnum()) or not _WORD_RE.fullmatch(text, i, k):
            break
        start, words = i, words + 1
        if i < 2 or text[i - 1] not in " \t":
            break
        k = i - 1
        # a lower-case particle between two words: "Ludwig van Beethoven"
        j = k
        while j > 0 and text[j - 1].isalpha():
            j -= 1
        if j < k and j >= 2 and text[j - 1] in " \t" and _PART_RE.fullmatch(text, j, k):
            k = j - 1
    return start


def _anchored(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of names right before a degree ("Jane Roe, MD") or a relation
    in brackets ("Liang Li (husband)")."""
    for a in SUFFIX_ANCHOR.finditer(text):
        j = a.start()
        if a.group()[0] == ",":  # a role after the name's comma
            s = name_before(text, j)
            if s is not None:
                yield s, j
            continue
        if a.group()[0] == "(":
            while j > 0 and text[j - 1] in " \t":
                j -= 1
        else:
            k = j
            while k > 0 and text[k - 1] in " \t":
                k -= 1
            if k == j:
                continue  # "Roe MD" needs the space
            j = k - 1 if k > 0 and text[k - 1] == "," else k
        s = name_before(text, j)
        if s is not None:
            yield s, j


TNM_CORE = re.compile(r"T[0-4xXis][a-d]?\s?N[0-3xX][a-c]?\s?M[01xX][a-c]?(?![A-Za-z0-9])")


def tnm_spans(text: str, lo: int = 0, hi: int | None = None) -> Iterator[tuple[int, int]]:
    """The spans `TNM` matches, found from their capital T (a fast scan)."""
    for m in TNM_CORE.finditer(text, lo, len(text) if hi is None else hi):
        s = m.start()
        if text[s - 2 : s] in ("yp", "yc"):
            s -= 2
        elif s and text[s - 1] in "cpr":
            s -= 1
        if s and text[s - 1].isalpha():
            continue
        yield s, m.end()


def cn_id_valid(number: str) -> bool:
    """ISO 7064 MOD 11-2 check of an 18-character resident ID number."""
    digits = re.sub(r"[\s-]", "", number)
    if len(digits) != 18 or not digits[:17].isdigit():
        return False
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = sum(int(d) * w for d, w in zip(digits[:17], weights, strict=True))
    return "10X98765432"[total % 11] == digits[17].upper()


def _groups(pattern: re.Pattern[str], text: str, kind: str, strong: bool = True) -> Iterator[Hit]:
    for m in pattern.finditer(text):
        g = next((i for i in range(1, (pattern.groups or 0) + 1) if m.group(i)), 0)
        s, e = m.span(g)
        if e > s:
            yield Hit(s, e, kind, strong)


_DIGITS = re.compile(r"\d+")
_HAN_RE = re.compile(f"[{HAN}]")
_PLACE_TAIL = re.compile(r",?[ \t]*((?:[A-Z][a-z']+[ \t]?){1,3})")


def has_han(text: str) -> bool:
    return not text.isascii() and _HAN_RE.search(text) is not None


def _date_ok(text: str) -> bool:
    nums = [int(n) for n in _DIGITS.findall(text)]
    return not nums or all(n < 3000 for n in nums)


# --- gates ----------------------------------------------------------------------------
# Most patterns need something rare to be present (a run of digits, a month name,
# "@", "://"). A cheap gate finds those places and the full patterns run only in
# a window around each: the same matches, at a fraction of the scanning cost.

DIGIT_RUN_GATE = re.compile(r"\d(?:[ \t().\-]{0,3}\d){4,}")  # five digits or more
HEX_GATE = re.compile(r"[:-][0-9A-Fa-f]{1,4}[:-][0-9A-Fa-f]")
NUM_DATE_GATE = re.compile(r"\d(?:\s*[-/.]\s*\d|\d{7})")
DOTTED_GATE = re.compile(r"\d\.\d+\.\d")
MONTH_GATE = re.compile(trie_pattern(_MON_FORMS))
OLD_GATE = re.compile(_OLD + r"(?!\d)")
STREET_GATE = re.compile(_EN_STREET + r"(?![A-Za-z])")
AREA_GATE = re.compile(r"(?:District|County|Township|Borough|Village)(?![A-Za-z])")
ORG_GATE = re.compile(
    r"(?:Ltd|Limited|Inc|LLC|plc|PLC|Corp|Corporation|Company|Co\.|Group|School|Academy|University|"
    r"College|Bank|Factory|Industries|Technologies|Holdings|Council|Tech|Polytechnic|Elementary|"
    r"Kindergarten|Preschool)(?![A-Za-z])"
)


def windows(
    gate: re.Pattern[str] | Iterable[re.Match[str]], text: str, back: int, ahead: int
) -> list[tuple[int, int]]:
    """Merged (lo, hi) windows around every gate match; a window never starts
    inside a word or a number."""
    matches = gate.finditer(text) if isinstance(gate, re.Pattern) else gate
    return span_windows(map(re.Match.span, matches), text, back, ahead)


def span_windows(
    spans: Iterable[tuple[int, int]], text: str, back: int, ahead: int
) -> list[tuple[int, int]]:
    """`windows` around (start, end) spans in order of start."""
    out: list[tuple[int, int]] = []
    n = len(text)
    first, last = 0, -(10**9)  # the open window (plain locals: this loop is hot)
    for s, e in spans:
        lo = s - back if s > back else 0
        if lo <= last + 40:  # near ones too: fewer, longer scans are cheaper
            hi = e + ahead
            if hi > last:
                last = hi if hi < n else n
            continue
        if last >= 0:
            out.append((first, last))
        while lo > 0 and text[lo - 1].isalnum():
            lo -= 1
        hi = e + ahead
        first, last = lo, (hi if hi < n else n)
    if last >= 0:
        out.append((first, last))
    return out


def in_windows(
    pattern: re.Pattern[str],
    text: str,
    spans: list[tuple[int, int]],
    need: re.Pattern[str] | None = None,
) -> Iterator[re.Match[str]]:
    """`pattern`'s matches inside each window. `need` (no look-around) is a piece every
    match contains: a window without it is skipped, a much cheaper scan than the
    full pattern's."""
    for lo, hi in spans:
        if need is None or need.search(text, lo, hi) is not None:
            yield from pattern.finditer(text, lo, hi)


# The house number, street name and street word every `EN_ADDRESS` match holds: it
# starts with a digit, so it scans faster than the pattern and its optional prefixes.
_ADDRESS_NEED = re.compile(rf"\d(?:-?[A-Za-z])?,?[ \t]+(?:[A-Z][a-z']+[ \t]+){{1,3}}{_EN_STREET}")


_DAY_BEFORE = re.compile(r"(?<![\w])" + DAY + r"(?:\s+of)?[\s\-/]+$")


_LAST_MONTHS: tuple[str, list[int]] = ("", [])


def month_positions(text: str) -> list[int]:
    """Where month names start in `text`; kept for the last text (two detectors ask)."""
    global _LAST_MONTHS
    if _LAST_MONTHS[0] is not text:
        _LAST_MONTHS = (text, [m.start() for m in MONTH_GATE.finditer(text)])
    return _LAST_MONTHS[1]


_LAST_NUM_DATES: tuple[str, list[re.Match[str]]] = ("", [])


def num_date_matches(text: str) -> list[re.Match[str]]:
    """`NUM_DATE_GATE` matches (digits around a separator); kept for the last text."""
    global _LAST_NUM_DATES
    if _LAST_NUM_DATES[0] is not text:
        _LAST_NUM_DATES = (text, list(NUM_DATE_GATE.finditer(text)))
    return _LAST_NUM_DATES[1]


def month_date_starts(text: str) -> list[int]:
    """Where a date with a month name may start: the month, or the day before it."""
    out: list[int] = []
    for p in month_positions(text):
        out.append(p)
        before = _DAY_BEFORE.search(text, max(0, p - 12), p)
        if before:
            out.append(before.start())
    return out


def number_starts(
    gate: re.Pattern[str] | list[re.Match[str]], text: str, openers: str = ""
) -> list[int]:
    """Starts of the digit runs a gate match lies in, and of `openers` ("+", "(") just before."""
    out: list[int] = []
    for m in gate.finditer(text) if isinstance(gate, re.Pattern) else gate:
        p = m.start()
        while p > 0 and text[p - 1].isdigit():
            p -= 1
        out.append(p)
        if openers:
            out += (k for k in range(max(0, p - 8), p) if text[k] in openers)
    return out


def matches_at(
    pattern: re.Pattern[str], text: str, starts: Iterable[int]
) -> Iterator[re.Match[str]]:
    """`pattern` matched at each candidate start (each branch may begin at any of them)."""
    for p in sorted(set(starts)):
        m = pattern.match(text, p)
        if m:
            yield m


def _window_groups(
    pattern: re.Pattern[str], text: str, spans: list[tuple[int, int]], kind: str
) -> Iterator[Hit]:
    groups = range(1, (pattern.groups or 0) + 1)
    for lo, hi in spans:
        for m in pattern.finditer(text, lo, hi):
            g = next((i for i in groups if m.group(i)), 0) if groups else 0
            s, e = m.span(g)
            if e > s:
                yield Hit(s, e, kind, True)


def patterns(text: str, low: str | None = None) -> list[Hit]:
    """Numbers, contacts, dates and ages: the pattern-shaped identifier classes."""
    hits: list[Hit] = []
    low = ascii_lower(text) if low is None else low
    runs = list(DIGIT_RUN_GATE.finditer(text))
    digit_runs = windows(runs, text, 12, 12)
    # CN_ID_LOOSE finds every CN_ID match too (CN_ID only adds the date checks).
    hits += _window_groups(CN_ID_LOOSE, text, digit_runs, "ID_NUMBER")
    hits += _window_groups(OTHER_IDS, text, digit_runs, "ID_NUMBER")
    for rule, m in label_matches(text, low, PATTERN_RULES):
        kind = rule.kind
        if kind == "PHONE":
            value = m.group(1).rstrip(" -.")
        elif kind == "AGE":
            value = m.group(1)
        else:
            value = m.group(1).rstrip(".-/_ ")
            if kind != "OTHER" and not _DIGITS.search(value):
                continue
        hits.append(Hit(m.start(1), m.start(1) + len(value), kind, True))
    for m in in_windows(RECORD_SHAPE, text, digit_runs):
        if sum(c.isdigit() for c in m.group()) >= 5 and not TNM.fullmatch(m.group()):
            hits.append(Hit(m.start(), m.end(), "MRN", True))
    hits += _window_groups(LONG_NUMBER, text, digit_runs, "MRN")
    if not text.isascii():  # a plate starts with a Chinese province character
        hits += _groups(PLATE, text, "OTHER")
    dotted = windows(DOTTED_GATE, text, 45, 45)
    hits += _window_groups(DICOM_UID, text, dotted, "OTHER")
    hits += _window_groups(IPV4, text, dotted, "IP")
    hexes = windows(HEX_GATE, text, 20, 40)
    hits += _window_groups(MAC, text, hexes, "DEVICE_ID")
    hits += _window_groups(IPV6, text, hexes, "IP")
    if "@" in text:
        hits += (Hit(m.start(), m.end(), "EMAIL", True) for m in emails(text))
    if "://" in text or "www." in low:
        hits += _groups(URL, text, "URL")
    for m in matches_at(ANY_PHONE, text, number_starts(runs, text, "+(（")):
        if sum(c.isdigit() for c in m.group()) >= 7:
            hits.append(Hit(m.start(), m.end(), "PHONE", True))
    found = [
        *matches_at(MONTH_DATES, text, month_date_starts(text)),
        *matches_at(NUMERIC_DATES, text, number_starts(num_date_matches(text), text)),
    ]
    if "月" in text:
        found += (m for p in DATE_PATTERNS[10:12] for m in p.finditer(text))
    if "年" in text:
        found += DATE_PATTERNS[12].finditer(text)
    for m in found:
        if _date_ok(m.group()):
            end = m.end()
            while end > m.start() and text[end - 1] in " ,\t":
                end -= 1
            hits.append(Hit(m.start(), end, "DATE", True))
    if "岁" in text or "歲" in text:
        hits += _groups(AGE_PATTERNS[0], text, "AGE")
        hits += _groups(AGE_PATTERNS[1], text, "AGE")
    if "ninety" in low or "hundred" in low:
        hits += _groups(SPELLED_AGE, text, "AGE")
    old = windows(OLD_GATE, text, 2, 20)
    for pattern in AGE_PATTERNS[2:]:
        hits += _window_groups(pattern, text, old, "AGE")
    return hits


_EMAIL_LOCAL = frozenset(string.ascii_letters + string.digits + "._%+-")


def emails(text: str) -> list[re.Match[str]]:
    """`EMAIL.finditer(text)`, tried only from the start of the run of address characters
    before each "@" (the scan tries every character of every word, each to the end of
    its word). A match from a later start of that run would share its "@" and domain."""
    out: list[re.Match[str]] = []
    last = 0
    at = text.find("@")
    while at >= 0:
        s = at
        while s > last and text[s - 1] in _EMAIL_LOCAL:
            s -= 1
        m = EMAIL.match(text, s) if s < at else None
        if m is not None:
            out.append(m)
            last = m.end()
        at = text.find("@", max(at + 1, last))
    return out


def _trim_to_boundary(text: str, s: int, e: int, boundary: Boundaries | None) -> int:
    """Move a Chinese match's start to a word boundary (jieba) and past function words."""
    while s < e and text[s] in "住在于家位居现籍到从往赴至系是的、，：:患者及其和与":
        s += 1
    if boundary is not None:
        t = s
        while t < e and not boundary(t):
            t += 1
        if t < e and (e - t) >= 3:
            s = t
    return s


# ZH_ADDRESS has no look-around and matches only these characters, so it can be
# run piece by piece, and only on pieces with two address units or more (the
# least an address is kept with): the same matches, without trying every
# position of every sentence.
_ZH_ADDRESS_PIECE = re.compile(rf"[{HAN}A-Za-z0-9\-－]{{4,}}")


def _zh_address_matches(text: str) -> Iterator[re.Match[str]]:
    for piece in _ZH_ADDRESS_PIECE.finditer(text):
        if len(_ZH_ADDR_UNITS.findall(piece.group())) >= 2:
            yield from ZH_ADDRESS.finditer(text, piece.start(), piece.end())


def addresses(text: str, boundary: Boundaries | None = None, low: str | None = None) -> list[Hit]:
    lex = lexicon()
    hits: list[Hit] = []
    if has_han(text):
        for m in _zh_address_matches(text):
            s, e = m.span()
            if e - s < 4:
                continue
            s = _trim_to_boundary(text, s, e, boundary)
            frag = text[s:e]
            units = len(_ZH_ADDR_UNITS.findall(frag))
            has_num = bool(re.search(r"\d", frag))
            if units >= 2 and (has_num or units >= 3 or any(p in frag for p in lex.places_zh)):
                if HOSPITAL_AFTER.match(text, e) and not has_num:
                    continue
                hits.append(Hit(s, e, "ADDRESS", True))
        for m in lex.places_zh_re.finditer(text):
            if not HOSPITAL_AFTER.match(text, m.end()):
                hits.append(Hit(m.start(), m.end(), "ADDRESS", False))
    for rule, m in label_matches(text, ascii_lower(text) if low is None else low, ADDRESS_RULES):
        value = m.group(1).rstrip(" ,.") if rule.kind == "ADDRESS" else m.group(1)
        if len(value) >= 2:
            hits.append(Hit(m.start(1), m.start(1) + len(value), "ADDRESS", True))
    hits += _groups(UK_POSTCODE, text, "ADDRESS")
    hits += _groups(US_STATE_ZIP, text, "ADDRESS")
    for m in in_windows(EN_ADDRESS, text, windows(STREET_GATE, text, 90, 80), _ADDRESS_NEED):
        e = m.end()
        # Extend over ", Tianhe District, Guangzhou"-style tails of known places.
        while True:
            tail = _PLACE_TAIL.match(text[e:])
            if not tail:
                break
            words = tail.group(1).strip()
            if words in lex.places_en or EN_AREA.fullmatch(words):
                e += tail.start(1) + len(words)
            else:
                break
        hits.append(Hit(m.start(), e, "ADDRESS", True))
    hits += _window_groups(EN_AREA, text, windows(AREA_GATE, text, 40, 10), "ADDRESS")
    for m in lex.places_en_re.finditer(text):
        if not HOSPITAL_AFTER.match(text, m.end()):
            hits.append(Hit(m.start(), m.end(), "ADDRESS", False))
    return hits


def organizations(
    text: str, boundary: Boundaries | None = None, low: str | None = None
) -> list[Hit]:
    hits: list[Hit] = []
    if has_han(text):
        for m in ZH_ORG.finditer(text):
            if HOSPITAL_AFTER.match(text, m.end()):
                continue
            s = _trim_to_boundary(text, m.start(), m.end(), boundary)
            hits.append(Hit(s, m.end(), "ORGANIZATION", True))
        hits += _groups(ZH_ORG_LABEL, text, "ORGANIZATION")
    for m in in_windows(EN_ORG, text, windows(ORG_GATE, text, 90, 5)):
        if not HOSPITAL_AFTER.match(text, m.end()):
            s = m.start()
            words = m.group().split()
            lex = lexicon()
            while len(words) > 2 and words[0] in lex.english_common:
                s = text.index(words[1], s + len(words[0]))
                words = words[1:]
            hits.append(Hit(s, m.end(), "ORGANIZATION", True))
    for _, m in label_matches(text, ascii_lower(text) if low is None else low, ORG_RULES):
        g = 1 if m.group(1) else 2
        value = m.group(g).rstrip(" .")
        if value.startswith("the "):
            continue
        # a hospital after "works at" or "job at" is the employer (an ORGANIZATION)
        if value and (g == 1 or not HOSPITAL_AFTER.match(value + " ")):
            hits.append(Hit(m.start(g), m.start(g) + len(value), "ORGANIZATION", True))
    return hits


# Any role word ending in 人/者/员/医师/护士… before a colon labels a person: 随访人：,
# 谈话医师：, 填表人：, 经办人：.
ZH_COLON_LABEL = re.compile(
    rf"[{HAN}]{{0,4}}(?:人|者|员|医师|医生|护士|签名|签字)[ \t]*[:：][ \t]*(?=[{HAN}])"
)
_YU_NOT_NAME = set("今昨明近当次本同上下入出术全门院我外该此")
_FOLLOW = set(
    "陪同来去在于已的是因为等及和与说签表示要求同意诉称代电手联携一今目现自近术精无未病既入出、，。；：（(）)"
    # a relation or a verb right after the name: 之女, 接听, 回答, 拒绝, 知情, 不同意...
    "之接回讲反拒知不并均亦也曾将遂由被对向到"
)
_TITLE_AFTER = ("主任", "医生", "医师", "护士", "教授", "先生", "女士", "大夫", "院长", "老师")


def common_word(word: str) -> bool:
    """A frequent jieba dictionary word that is not tagged as a person name."""
    import jieba.posseg

    quiet_jieba()
    tag = jieba.posseg.dt.word_tag_tab.get(word)
    freq = jieba.dt.FREQ.get(word) or 0
    return tag is not None and not tag.startswith("nr") and freq >= 10


def _zh_name_end(text: str, s: int, surname_len: int, boundary: Boundaries | None) -> int:
    """Where a Chinese name starting at `s` ends: surname + one or two given characters."""
    n = len(text)
    g = s + surname_len
    two = g + 2 <= n and all(
        "\u4e00" <= c <= "\u9fff" and c not in ZH_STOP for c in text[g : g + 2]
    )
    if two:
        e = g + 2
        at_edge = e == n or not ("\u4e00" <= text[e] <= "\u9fff")
        if (
            at_edge
            or text[e] in _FOLLOW
            or text.startswith(_TITLE_AFTER, e)
            or (boundary is not None and boundary(e) and not boundary(g + 1))
        ):
            return e
    # One given character, when there is one: "于2019年" has none.
    return g + 1 if g < n and "\u4e00" <= text[g] <= "\u9fff" else g


def zh_surname_len(text: str, s: int, lex: Lexicon) -> int:
    if text[s : s + 2] in lex.compound_surnames_zh:
        return 2
    return 1 if text[s : s + 1] in lex.surnames_zh else 0


_ZH_LABELS: re.Pattern[str] | None = None
_ZH_SUFFIX: re.Pattern[str] | None = None


def names(
    text: str,
    boundary: Boundaries | None = None,
    person_tokens: Iterable[tuple[int, int]] = (),
    low: str | None = None,
) -> list[Hit]:
    """Person names: labelled, titled, suffixed, relation-marked, and lexicon-backed."""
    global _ZH_LABELS, _ZH_SUFFIX
    lex = lexicon()
    hits: list[Hit] = []
    if has_han(text):
        if _ZH_LABELS is None or _ZH_SUFFIX is None:
            _ZH_LABELS, _ZH_SUFFIX = zh_name_labels(lex), zh_suffix_names(lex)
        labels = [*_ZH_LABELS.finditer(text), *ZH_COLON_LABEL.finditer(text)]
        for m in labels:
            s = m.end()
            sl = zh_surname_len(text, s, lex)
            if not sl or (text[s] == "于" and text[s + 1 : s + 2] in _YU_NOT_NAME):
                continue
            e = _zh_name_end(text, s, sl, boundary)
            colon = any(c in m.group() for c in ":：|")
            if e - s == 1 and not colon:
                continue  # a lone one-character surname after 患者 is a word (于, 向, 方…)
            if e - s == 2 and not colon and common_word(text[s:e]):
                continue
            hits.append(Hit(s, e, "NAME", True))
        for m in _ZH_SUFFIX.finditer(text):
            s, e = m.span(1)
            colon = ":" in m.group() or "：" in m.group()
            compound = text[s:e] in lex.compound_surnames_zh  # 欧阳教授: a surname alone
            if e - s == 2 and not colon and not compound and common_word(text[s:e]):
                continue
            hits.append(Hit(s, e, "NAME", True))
        for s, e in person_tokens:
            if zh_surname_len(text, s, lex) and 2 <= e - s <= 4:
                hits.append(Hit(s, e, "NAME", False))
    low = ascii_lower(text) if low is None else low
    surnames = lex.surnames_all_en
    known = lex.names_en
    labelled = [m for _, m in label_matches(text, low, NAME_RULES)]
    for m in [*EN_TITLE_NAME.finditer(text), *labelled]:
        s, e = m.span(1)
        words = m.group(1).split()
        # Stop before a word that is clearly not a name ("Dr Smith Oncology").
        keep = [words[0]]
        for w in words[1:]:
            if (
                w.strip(",.") in lex.english_common
                and w not in surnames
                and not _PART_RE.fullmatch(w)
            ):
                break
            keep.append(w)
        e = s + len(" ".join(keep)) if " ".join(words) == m.group(1) else e
        if "," in m.group(1) or len(keep) == len(words):
            e = m.end(1)
        first = words[0].rstrip(",")
        if first in lex.english_common and first not in known:
            continue
        if first not in known and _not_a_person(first, low, m.start()):
            continue
        hits.append(Hit(s, e, "NAME", True))
    for name_start, e in _anchored(text):
        start = name_start
        words = text[start:e].split()
        if any(p.islower() and p in lex.clinical_lower for w in words for p in w.split("-")[1:]):
            continue  # "Uro-oncology CNS": a service before the grade, not a name
        while words and words[0] in lex.english_common and words[0] not in known:
            start = text.index(words[1], start + len(words[0])) if len(words) > 1 else e
            words = words[1:]
        if words:
            hits.append(Hit(start, e, "NAME", True))
    for m in EN_COMMA_NAME.finditer(text):
        sur, given = m.group(1), m.group(2)
        if sur.title() in surnames or given in lex.given_en:
            hits.append(Hit(m.start(), m.end(), "NAME", True))
        elif (
            # "OKONKWO, Anneliese": the shape of a listed name even when neither
            # word is in the lexicon; weak, so a clinical word beside it wins.
            len(sur) >= 3
            and sur.title() not in lex.english_common
            and given not in lex.english_common
            and text[m.end() : m.end() + 1] not in ("-", "'")
        ):
            hits.append(Hit(m.start(), m.end(), "NAME", False))
    for base, g in caps_runs(text):
        found = caps_run_names(g)
        if found:
            hits += (Hit(base + s, base + e, "NAME", False) for s, e in found)
    return hits


def _not_a_person(first: str, low: str, label_start: int) -> bool:
    """A labelled value that is no person: a language ("Interpreter (Russian):"), a mail
    subject's words ("Subject: Eligibility query", "Subject: RE: …")."""
    from edge_node.deid_text.unknown import dictionary_word, listed_safe

    bare = first.strip("(),:")
    if bare in listed_safe():
        return True
    if low.startswith(("subject", "re:", "regarding"), label_start):
        if bare.upper() in ("RE", "FW", "FWD"):
            return True
        return low.startswith("subject", label_start) and dictionary_word(bare)
    return False


_LAST_CAPS: tuple[str, list[tuple[int, str]]] = ("", [])


def caps_runs(text: str) -> list[tuple[int, str]]:
    """(start, run) of every `EN_CAPS_SEQ` run of capitalised words; kept for the
    last text (the safe-list pass in unknown.py reads the same runs)."""
    global _LAST_CAPS
    if _LAST_CAPS[0] is not text:
        _LAST_CAPS = (text, [(m.start(), m.group()) for m in EN_CAPS_SEQ.finditer(text)])
    return _LAST_CAPS[1]


@lru_cache(maxsize=65536)
def caps_run_names(g: str) -> tuple[tuple[int, int], ...]:
    """(start, end) offsets in a run of capitalised words of the names in it.

    Runs repeat across notes ("Chest Radiograph", "Dr Lindqvist"): the decision is
    kept per run string, so the scan costs one look-up per run.
    """
    lex = lexicon()
    common = lex.english_common
    known = lex.names_en
    if " " not in g and "\t" not in g:  # one word, the common case: no run to split
        bare = g.strip(".")
        if bare in known or bare in lex.names_en_upper:
            t = g.title()
            if len(g) >= 3 and (t in lex.surnames_en or t in lex.given_en) and t not in common:
                return ((0, len(g)),)
        return ()
    out: list[tuple[int, int]] = []
    run: list[tuple[int, int, bool]] = []
    runs: list[list[tuple[int, int, bool]]] = []
    pos = 0
    for w in g.split():
        i = pos  # the words of a run are one space or tab apart
        pos = i + len(w) + 1
        bare = w.strip(".")
        title = bare.title()
        is_known = title in known or bare in known
        if (bare in common and not is_known) or (title in common and not is_known):
            runs.append(run)
            run = []
            continue
        run.append((i, i + len(w), is_known))
    runs.append(run)
    for run in runs:
        if len(run) >= 2 and any(k for _, _, k in run):
            out.append((run[0][0], run[-1][1]))
        elif len(run) == 1 and run[0][2]:
            w = g[run[0][0] : run[0][1]]
            t = w.title()
            if len(w) >= 3 and (t in lex.surnames_en or t in lex.given_en) and t not in common:
                out.append((run[0][0], run[0][1]))
    return tuple(out)


def propagate(text: str, found: Iterable[Hit]) -> list[Hit]:
    """Every other occurrence of a name already found in the note."""
    lex = lexicon()
    strings: set[str] = set()
    for value in {text[h.start : h.end] for h in found if h.type == "NAME"}:
        if not value.isascii():
            if len(value) >= 2:
                strings.add(value)
        else:
            for part in value.replace(",", " ").split():
                p = part.strip(".")
                if (
                    len(p) >= 3
                    and p.title() not in lex.english_common
                    and p.lower() not in lex.eponyms_lower
                ):
                    strings.add(p)
    if not strings:
        return []
    # str.find per name (compiling a pattern per note costs more than the scans).
    low = ascii_lower(text)
    hits: list[Hit] = []
    for value in {v.lower() if v.isascii() else v for v in strings}:
        whole_word = value.isascii()
        i = low.find(value)
        while i >= 0:
            e = i + len(value)
            if not whole_word or (
                (i == 0 or not _is_ascii_letter(low[i - 1]))
                and (e == len(low) or not _is_ascii_letter(low[e]))
            ):
                hits.append(Hit(i, e, "NAME", False))
            i = low.find(value, i + 1)
    return hits


def _is_ascii_letter(c: str) -> bool:
    return "a" <= c <= "z" or "A" <= c <= "Z"
