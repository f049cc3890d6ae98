"""Recall-first shape rules: classes of identifier, not examples of one.

Each untuned set of notes showed identifiers written in a way no earlier rule had
seen: numbers with spaces inside (OCR, or grouped by hand), labels broken by OCR,
device models before a serial label, names with particles or commas between parts
found separately, dates in other calendars or with times and weekdays after them.
These rules look for the class (a run of seven digits or more in groups, a label
with spaces inside its letters, the words before a serial label) rather than for a
particular spelling. Their hits go through the clinical keep-list like any other.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from edge_node.deid_text import round7, structure
from edge_node.deid_text.lexicon import ascii_lower, lexicon, trie_pattern
from edge_node.deid_text.rules import HAN, LO, UP, Hit, in_windows, windows
from edge_node.deid_text.unknown import dictionary_word


def _any(low: str, keys: tuple[str, ...]) -> bool:
    """A cheap gate: most rules need a word that most notes do not contain."""
    for k in keys:  # noqa: SIM110 (a plain loop: a generator costs more than the scans)
        if k in low:
            return True
    return False


# --- numbers written in groups ----------------------------------------------------------
# "2951 46372 1", "2 77 05 69 123 456 78", "1 2 / 0 4 / 1 9 5 5", "650214-07-5678",
# "0471-6698 120": seven digits or more in two groups or more, on one line.
# (the look-behind after the first digit: see rules._ND)
_GROUPED = re.compile(
    r"\d(?<![\w.,/:+\-]\d)\d*(?:(?:[ ](?:[-/][ ]?)?|[-/][ ]?)\d+)+(?![\w]|[.,:]\d)"
)
_UNIT_AFTER = re.compile(
    r"[ \t]*(?i:mg|mcg|µg|ug|g|kg|ml|l|mmol|µmol|umol|iu|u|units?|gy|cgy|cm|mm|%|x|×|\*|"
    r"copies|cells|拷贝|个|次|分|岁|ms|bpm|mmhg|/|万)(?![A-Za-z])"
)
_YEAR = re.compile(r"(?:19|20)\d\d")


def grouped_numbers(text: str) -> Iterator[Hit]:
    for m in _GROUPED.finditer(text):
        v = m.group()
        if len(v) < 7:  # fewer than seven digits: most matches ("12/08", "3 4")
            continue
        parts = re.findall(r"\d+", v)
        if sum(len(p) for p in parts) < 7:
            continue
        if all(len(p) == 4 and _YEAR.fullmatch(p) for p in parts):
            continue  # a span of years: "2019-2023"
        if _UNIT_AFTER.match(text, m.end()):
            continue
        s = m.start()
        # letters that open the number after a label: "影像号 ：CT 24 0913 0088"
        lead = re.search(r"[:：#][ \t]*([A-Z]{1,4})[ \t]+$", text[max(0, s - 12) : s])
        if lead:
            s -= len(text[max(0, s - 12) : s]) - lead.start(1)
        yield Hit(s, m.end(), "OTHER", True)


# --- record numbers after any label ending in no. / # / ID / 号 --------------------------------
# "Claim no. 55812", "Case #: 20931", "Interpreter ID 7731", "放疗号 RT25-0782": whatever the
# label, a value with three digits or more after it is some record's number.
# (found from the end of the label in the lower-cased text, then checked backwards:
# a scan that starts with the label word tries every letter of the note)
_NO_LABEL_END = re.compile(
    r"(?:no\.?|number|#|id|号)(?![a-z])[ \t]*[:：#]?[ \t]*"
    r"([a-z0-9][a-z0-9\-/]*[0-9][a-z0-9\-/]*)(?![\w])"
)
_LABEL_WORD_BEFORE = re.compile(rf"(?:(?<![A-Za-z])[A-Za-z]{{2,}}\.?[ \t]?|[{HAN}])$")


def any_label_numbers(text: str, low: str) -> Iterator[Hit]:
    for m in _NO_LABEL_END.finditer(low):
        s = m.start()
        # "no" inside a word ("piano 12") is no label; "Hosp#", "MRNo." are
        inside_word = s and low[s - 1].isalpha() and low[s - 1].isascii() and low[s] != "号"
        if inside_word and m.group()[0] != "#" and not text[s].isupper():
            continue
        if not _LABEL_WORD_BEFORE.search(text, max(0, s - 24), s):
            continue
        vs = m.start(1)
        if not (text[vs].isdigit() or text[vs].isupper()):
            continue
        v = m.group(1).rstrip("-/")
        if sum(c.isdigit() for c in v) >= 3 and not _UNIT_AFTER.match(text, vs + len(v)):
            yield Hit(vs, vs + len(v), "MRN", True)


# --- labels broken by OCR ----------------------------------------------------------------
def _spaced(word: str) -> str:
    """A label whose letters may have one space between them ("Pat ient", "姓 名")."""
    return "[ ]?".join(re.escape(c) if c != " " else "[ ]+" for c in word)


_OCR_NAME_LABELS = (
    "patient name", "patient", "name", "referring gp", "gp", "doctor", "consultant",
)  # fmt: skip
_OCR_ADDRESS_LABELS = ("address", "addr")
_OCR_EN_LABEL = re.compile(
    r"(?im)(?:^|(?<=[ \t]{2}))(?:(?P<name>"
    + "|".join(_spaced(w) for w in _OCR_NAME_LABELS)
    + r")|(?P<addr>"
    + "|".join(_spaced(w) for w in _OCR_ADDRESS_LABELS)
    + r"))(?P<sep>[ \t]*:)[ \t]*"
    r"(?:(?:Dr|Mr|Mrs|Ms|Miss|Prof)\.?[ \t]+)?"
    r"(?P<value>[^\s:][^\n:]*?)(?=[ \t]{3,}|[ \t]*\n|[ \t]*$)"
)
_ZH_OCR_LABELS = ("姓名", "医师", "医生", "患者", "病人", "报告人", "检查者", "发件人", "联系人")
_ZH_OCR_LABEL = re.compile(
    r"(?:"
    + "|".join(_spaced(w) for w in _ZH_OCR_LABELS)
    + rf")[ \t]*[:：]?[ \t]*([{HAN}](?:[ ]{{1,2}}[{HAN}]){{1,3}}|[{HAN}][ ][{HAN}]{{1,2}})(?![{HAN}])"  # noqa: E501
)


# OCR text has a space before a colon or inside a label word ("Add r:"): only then.
# Only whether it matches is used: "[A-Za-z][ \t]+:|[A-Za-z] [a-z]{1,4} ?:" found from the
# space (a class first: the scan skips ahead), with the letter before it checked behind.
_OCR_GATE = re.compile(r"[ \t](?:(?<=[A-Za-z][ \t])[ \t]*:|(?<=[A-Za-z] )[a-z]{1,4} ?:)")


def ocr_labels(text: str, low: str) -> Iterator[Hit]:
    if ":" not in text and "：" not in text and "姓" not in text:
        return
    ocr = ":" in text and _OCR_GATE.search(text) is not None
    for m in _OCR_EN_LABEL.finditer(text) if ocr else ():
        label = m.group("name") or m.group("addr")
        # OCR text only: a space inside the label or before its colon.
        if " " not in label and not m.group("sep").startswith((" ", "\t")):
            continue
        s, e = m.span("value")
        if m.group("addr"):
            # an address broken across lines: the next line too after a trailing comma
            nxt = re.match(r",?[ \t]*\n[ \t]*([^\n:]{2,40}?)(?=[ \t]{3,}|\n|$)", text[e:])
            if nxt and (text[e - 1 : e] == "," or text[e : e + 1] == ","):
                e += nxt.end(1)
            yield Hit(s, e, "ADDRESS", True)
        elif any(c.isalpha() for c in m.group("value")):
            yield Hit(s, e, "NAME", True)
    if not text.isascii():
        for m in _ZH_OCR_LABEL.finditer(text):
            yield Hit(m.start(1), m.end(1), "NAME", True)


# --- devices --------------------------------------------------------------------------------
# The model before a serial, lot or catalogue label is part of the device's identifier:
# "Elekta Versa HD SN 153122", "Bard PowerPort REF 1708000 LOT REBX0412".
_DEVICE_LABEL = re.compile(
    r"(?<![A-Za-z])(?:S/N|SN|serial(?: no\.?| number)?|Serial(?: No\.?| Number)?|lot|LOT|Lot|REF|"
    r"asset tag|Asset tag|序列号|设备编号|批号)[ \t]*[:：#]?[ \t]*(?=[A-Za-z0-9])"
)
_DEVICE_VALUE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-/._]*[A-Za-z0-9])?")
# A model code after a device word: "workstation PACSRD-07", "scanner CT-2".
_DEVICE_WORD = re.compile(
    r"(?i:workstation|scanner|terminal|printer|analy[sz]er|ventilator|pump|linac|console|"
    r"host|device|machine)[ \t]+([A-Z][A-Z0-9]*(?:[-_][A-Z0-9]+)*[-_]?\d+[A-Z0-9]*)(?![\w-])"
)


def _model_start(text: str, s: int) -> int:
    """Start of up to four model words (capitalised or numeric) right before `s`."""
    start = s
    k = s
    for _ in range(4):
        j = k
        while j > 0 and text[j - 1] in " \t":
            j -= 1
        if j == k and k != s:
            break
        i = j
        while i > 0 and not text[i - 1].isspace():
            i -= 1
        token = text[i:j]
        cut = max(token.rfind(c) for c in "(:：（|")
        for t, c in enumerate(token):
            if "\u4e00" <= c <= "\u9fff":
                cut = max(cut, t)
        if cut >= 0:
            token, i = token[cut + 1 :], i + cut + 1
        if not token or not (token[0].isupper() or token[0].isdigit()) or not token.isascii():
            break
        if token.endswith((",", ";", ".")) and not token[:-1].isupper():
            break
        start = i
        if cut >= 0:
            break
        k = i
    return start


def _past_products(text: str, s: int, end: int) -> int:
    """`s` moved past listed products and plain words before a serial label: "Pump
    CADD-Solis SN …" and "TrueBeam SN …" keep their product names."""
    clinical_re = lexicon().clinical_re
    start = s
    seen_product = False
    while s < end:
        known = clinical_re.match(text, s)
        if known is not None and known.end() <= end:
            s, seen_product = known.end(), True
        else:
            word = re.match(r"[A-Z][a-z]+(?=[ \t])", text[s:end])
            if word is None or not dictionary_word(word.group()):
                break
            s += word.end()
        while s < end and text[s] in " \t,":
            s += 1
    return s if seen_product else start


_MODEL_HASH = re.compile(r"(?<=[A-Za-z])[ \t]+#(?=[A-Z]+\d{4,})")


_DEVICE_GATE = re.compile(r"s/n|sn|serial|lot|ref|asset|序列号|设备编号|批号")
_DEVICE_WORD_KEYS = (
    "workstation", "scanner", "terminal", "printer", "analy", "ventilator", "pump", "linac",
    "console", "host", "device", "machine",
)  # fmt: skip


def devices(text: str, low: str) -> Iterator[Hit]:
    found = list(in_windows(_DEVICE_LABEL, text, windows(_DEVICE_GATE.finditer(low), text, 2, 16)))
    if " #" in text or "\t#" in text:  # every match has a space or tab before the "#"
        found += _MODEL_HASH.finditer(text)
    for m in found:
        v = _DEVICE_VALUE.match(text, m.end())
        if v is None or not any(c.isdigit() for c in v.group()):
            continue
        s, e = _model_start(text, m.start()), v.end()
        # a listed product before the serial ("TrueBeam SN …", "CADD-Solis SN …") is kept
        s = _past_products(text, s, m.start())
        words = text[s : m.start()].split()
        if s == m.start() or all(
            re.fullmatch(r"[A-Z][a-z]+", w) and dictionary_word(w) for w in words
        ):
            s = v.start()  # no make or model before the label ("Kit lot"): the number alone
        # "ARIA-WS-114 (asset tag 00458812)": the code before the bracket too
        if s == v.start() and text[m.start() - 1 : m.start()] == "(" and text[e : e + 1] == ")":
            code = re.search(
                r"([A-Za-z0-9][\w\-]*\d[\w\-]*)[ \t]*\($", text[max(0, m.start() - 30) : m.start()]
            )
            if code:
                s, e = m.start() - len(code.group()) + code.start(1) - code.start(), e + 1
        yield Hit(s, e, "DEVICE_ID", True)
    for m in _DEVICE_WORD.finditer(text) if _any(low, _DEVICE_WORD_KEYS) else ():
        yield Hit(m.start(1), m.end(1), "DEVICE_ID", True)


# --- contact details -----------------------------------------------------------------------
_EXTENSION = re.compile(
    r"(?:(?<![A-Za-z])(?i:ext|extn|extension|x|bleep)\.?|分机|分機|内线|內線|短号)[ \t:：]*(\d[\d\-]{2,7})(?!\d)"  # noqa: E501
)
_USER_ID = re.compile(
    r"(?<![A-Za-z])(?i:user(?:name| ?id)?|login|uid)[ \t:：]+([a-z][a-z0-9._\-]*\d[a-z0-9._\-]*|[a-z]+\.[a-z]+)(?![\w@])"  # noqa: E501
)
_IPV6 = re.compile(
    # not after a letter: "SS18::SSX1" is a fusion gene
    r"(?<![0-9A-Za-z:])(?=[0-9A-Fa-f:]*::|(?:[0-9A-Fa-f]{1,4}:){7})"
    r"(?:[0-9A-Fa-f]{1,4}|:)(?::[0-9A-Fa-f]{0,4}){2,7}(?![0-9A-Fa-f:])"
)


_EXTENSION_GATE = re.compile(r"(?:x|bleep|分机|分機|内线|內線|短号)\.?[ \t:：]*\d")


def contacts(text: str, low: str) -> Iterator[Hit]:
    ext = (
        windows(_EXTENSION_GATE.finditer(low), text, 10, 10)
        if "ext" not in low
        else [(0, len(text))]
    )
    for m in in_windows(_EXTENSION, text, ext):
        yield Hit(m.start(1), m.end(1), "PHONE", True)
    for m in _USER_ID.finditer(text) if _any(low, ("user", "login", "uid")) else ():
        yield Hit(m.start(1), m.end(1), "OTHER", True)
    if "::" in text:
        for m in _IPV6.finditer(text):
            if sum(c.isdigit() for c in m.group()) >= 2:
                yield Hit(m.start(), m.end(), "IP", True)


# --- dates ------------------------------------------------------------------------------------
_ZH_NUMERAL = "〇零一二三四五六七八九十"
_D = r"(?:0?[1-9]|[12]\d|3[01])"
_M = r"(?:0?[1-9]|1[0-2])"
# month-day and a time: "10-08 09:00", "9-1 08:12"; a month-day opening a log line
_MD_DATES = re.compile(
    rf"(?<![\d\-/.]){_M}-{_D}[ \t]+(?:[01]?\d|2[0-3]):[0-5]\d"
    rf"|(?m:^[ \t]*(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])(?=[ \t]))"
)
_MD_GATE = re.compile(r"\d-\d{1,2}[ \t]")
_ZH_DATES = re.compile(
    # Chinese numerals, alone or mixed with digits: 十一月七日, 2025年十月九日
    rf"(?:\d{{4}}|[{_ZH_NUMERAL}]{{4}})年[{_ZH_NUMERAL}\d]{{1,3}}月(?:[{_ZH_NUMERAL}\d]{{1,3}}[日号])?"
    rf"|[{_ZH_NUMERAL}]{{1,3}}月[{_ZH_NUMERAL}]{{1,3}}[日号]"
    # the Minguo (ROC) calendar: 民國49年3月8日, ROC 45/07/21, 114年6月2日, 114/06/15
    rf"|(?:民國|民国|ROC[ \t]*)\d{{1,3}}(?:[ \t]*年[ \t]*\d{{1,2}}[ \t]*月(?:[ \t]*\d{{1,2}}[ \t]*日)?|[/.\-]\d{{1,2}}[/.\-]\d{{1,2}})"  # noqa: E501
    rf"|(?<![\d/.])1[01]\d(?:年{_M}月(?:{_D}日)?|/{_M}/{_D}(?![\d/]))"
    # weekday and a bracketed month.day: 周三（10.22）
    rf"|(?:周|星期)[一二三四五六日天][（(][ \t]*{_M}[./\-]{_D}[ \t]*[）)]"
    # a month.day before a shift name: "11.20 中班"
    rf"|(?<![\d.]){_M}\.{_D}(?=[ \t]*(?:早班|中班|晚班|夜班|白班|大夜|小夜))"
)
_ROC_DATE = re.compile(
    r"ROC[ \t]*\d{1,3}(?:[ \t]*年[ \t]*\d{1,2}[ \t]*月(?:[ \t]*\d{1,2}[ \t]*日)?|[/.\-]\d{1,2}[/.\-]\d{1,2})"  # noqa: E501
)
_FOREIGN_MONTH_DATE = re.compile(
    # day, a month in Dutch, German, French or Spanish, and a year: "2 okt 2025"
    r"|(?<![\w])(?:0?[1-9]|[12]\d|3[01])\.?[ \t]+(?i:jan|feb|febr|mrt|maart|apr|mei|jun|juni|jul|juli|"  # noqa: E501
    r"aug|sep|sept|okt|nov|dez|dec|janv|févr|avr|mai|juin|juil|août|déc|ene|abr|ago|dic|märz|"
    r"mär)\.?[ \t]+(?:19|20)\d{2}(?!\d)"
)
# What may follow a date and belongs to it: a time with "@", a time zone, a weekday,
# a part of the day and its hour.
_DATE_TAIL = re.compile(
    r"[ \t]*@[ \t]*(?:[01]\d|2[0-3])[:]?[0-5]\d(?!\d)"
    r"|[ \t]+[+\-]\d{4}(?!\d)"
    r"|[ \t]*[（(]?(?:周|星期)[一二三四五六日天][）)]?"
    r"|[ \t]*(?:上午|下午|晚上|凌晨|中午|早上|傍晚|夜间|夜間)(?:[ \t]*[\d一二三四五六七八九十]{1,3}[ \t]*[时点時點](?:[ \t]*[\d一二三四五六七八九十]{1,3}[ \t]*分)?|[ \t]*\d{1,2}[:：][0-5]\d)?"  # noqa: E501
    r"|[ \t]+(?:[01]?\d|2[0-3])[:：][0-5]\d(?:[:：][0-5]\d)?"
    # a clock time after a comma, a meridiem, a time zone, an ISO "T" time
    r"|,[ \t]*(?:[01]?\d|2[0-3]):[0-5]\d"
    r"|[ \t]?[AaPp]\.?[Mm]\.?(?![A-Za-z])"
    r"|[ \t]+(?:[A-Z]{1,2}[SD]?T|UTC)(?![A-Za-z])"
    r"|T(?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d+)?)?(?:Z|[+\-]\d\d:?\d\d)?"
)


_FOREIGN_MONTH_GATE = re.compile(
    r"(?:febr|mrt|maart|mei|juni|juli|okt|dez|janv|févr|avr|mai|juin|juil|août|déc|ene|"
    r"abr|ago|dic|märz|mär)(?![a-z])"
)


# An ISO 8601 date-time as exported by systems: "2024-03-02T06:07:08Z", "...+08:00".
_ISO_DATETIME = re.compile(
    r"\d(?<![\d.]\d)\d{3}-[01]\d-[0-3]\dT[0-2]\d:[0-5]\d(?::[0-5]\d(?:\.\d+)?)?(?:Z|[+\-]\d\d:?\d\d)?"
)


def dates(text: str, low: str) -> Iterator[Hit]:
    found = list(in_windows(_MD_DATES, text, windows(_MD_GATE.finditer(text), text, 3, 8)))
    if "T" in text and ":" in text:
        found += _ISO_DATETIME.finditer(text)
    if not text.isascii():
        found += _ZH_DATES.finditer(text)
    if "ROC" in text:
        found += _ROC_DATE.finditer(text)
    found += in_windows(
        _FOREIGN_MONTH_DATE, text, windows(_FOREIGN_MONTH_GATE.finditer(low), text, 6, 10)
    )
    for m in found:
        yield Hit(m.start(), m.end(), "DATE", True)


_TAIL_FIRST = frozenset(" \t@（(周星上下晚凌中早傍夜,AaPpT")


def grow_dates(text: str, hits: list[Hit]) -> list[Hit]:
    out = []
    eras = "ROC" in text or "民" in text
    for hit in hits:
        h = hit
        if h.type == "DATE" and h.end > h.start:
            e = h.end
            for _ in range(4):
                # every tail starts with one of these: skip the match otherwise
                if text[e : e + 1] not in _TAIL_FIRST:
                    break
                t = _DATE_TAIL.match(text, e)
                if t is None or t.end() == e:
                    break
                e = t.end()
            s = h.start
            era = eras and re.search(r"(?:民國|民国|ROC[ \t]*)$", text[max(0, s - 4) : s])
            if era:
                s -= len(era.group())
            if (s, e) != (h.start, h.end):
                h = Hit(s, e, h.type, h.strong)
        out.append(h)
    return out


# --- ages -----------------------------------------------------------------------------------
_AGES = re.compile(
    r"(?<![A-Za-z])((?i:ninety|one hundred|a hundred)(?:[ \-](?i:one|two|three|four|five|six|seven|"
    r"eight|nine))?)(?=[ \-]*(?i:y/o|yo|y\.o\.|yr|yrs|years?)(?![A-Za-z]))"
    r"|((?:九十|一百)[一二三四五六七八九]?)(?=了|岁|周岁|高龄|多岁)"
)


def ages(text: str, low: str) -> Iterator[Hit]:
    if not _any(low, ("ninety", "hundred", "九十", "一百")):
        return
    for m in _AGES.finditer(text):
        g = 1 if m.group(1) else 2
        yield Hit(m.start(g), m.end(g), "AGE", True)


# --- names ------------------------------------------------------------------------------------
_EN_CAPS_COMMA = re.compile(
    rf"(?<![\w'])([{UP}]{{2,}}(?:[-'][{UP}]+)*,[ \t]*[{UP}]{{2,}}(?:[-'][{UP}]+)*)(?![\w'])"
)
_NAME_LABEL_MORE = re.compile(
    rf"(?i:\blegal(?: name)?|pref(?:erred)?(?: name)?|known as|aka|née|nee|maiden name)[ \t:]+"
    rf"([{UP}][{LO}]+(?:[-'][{UP}]?[{LO}]+)*(?:[ \t]+[{UP}][{LO}]+(?:[-'][{UP}]?[{LO}]+)*){{0,2}})"
)
# Chinese: a masked name (黎*明), a name before an ethnic group in brackets, a
# surname before 某/姓, and a short name standing alone after a role or a department.
_ZH_MASKED = re.compile(rf"[{HAN}](?:[*＊][{HAN}]|[*＊]{{2}})")
_ZH_ETHNIC = re.compile(rf"([{HAN}](?:[ ]?[{HAN}]){{1,6}})[（(][{HAN}]{{1,4}}族[）)]")
_ZH_SURNAME_MOU = re.compile(
    rf"(?<=患者|病人|患儿)([{HAN}])(?=某|姓)|([{HAN}])(?=姓(?:患者|病人|先生|女士))"
)
_ZH_ROLE = (
    r"(?:医师|医生|护士|药师|技师|物理师|咨询师|工程师|社工|经办|经治医师|报告人|报修人|检验者|审核者|"
    r"审核药师|开单|接班|交班|核对|签名|签|联系人|与会|参会|记录者|主治醫師|主治医师|医師|"
    # traditional forms and more desk roles: 醫師：鍾, 核对/发药：严, 随访员：莫
    r"醫師|醫生|護士|護理師|藥師|技師|物理師|發藥|发药|调配|調配|随访员|隨訪員|主診醫生|主诊医生|"
    r"随访对象|隨訪對象|助手|"
    r"内科|外科|放疗科|影像科|病理科|检验科|药剂科|麻醉科|超声科|肿瘤科)"
)
SURNAMES = "".join(sorted(lexicon().surnames_zh))
_ZH_TITLE = r"(?:主任|教授|医师|医生|护士长|护士|老师|药师|大夫|先生|女士)"
_ZH_ROLE_NAME = re.compile(
    rf"{_ZH_ROLE}(?:[ \t]*[:：|][ \t]*|[ \t]+|(?=[{SURNAMES}][ \t]))((?:小|老)?[{HAN}]{{1,3}}?)(?={_ZH_TITLE}|[ \t]*(?:$|\n|[ \t]{{1,}}|[、/，,。|（(]))",  # noqa: E501
    re.M,
)
_ZH_NAME_LIST = re.compile(
    rf"[、/／][ \t]*([{HAN}]{{1,3}}?)(?={_ZH_TITLE}?(?:[、/／\n，,。 \t（(]|$))", re.M
)
# A list of people: its label, then short items only ("与会：臧、路遥、", "核对：丁/").
_ZH_PEOPLE_LIST = re.compile(
    rf"(?:与会|参会|参加人员|出席|核对|人员|签名|医师|护士|记录|[会员对席者师士人])[ \t]*[:：][ \t]*"  # noqa: E501
    rf"(?:[{HAN}]{{1,6}}[ \t]+)?(?:[{HAN}]{{1,3}}{_ZH_TITLE}?[ \t]*[、/／][ \t]*)+$"
)
_ZH_NAME_AFTER_LATIN = re.compile(
    rf"(?<![\w'])[{UP}][{LO}]+(?:[ \t]*/[ \t]*([{HAN}]{{1,3}})|[ \t]+([{HAN}]{{2,3}}))"
    rf"(?=[ \t]*(?:$|\n|[,，]))",
    re.M,
)
# More places a Chinese name stands: after 患者 before a comma or space (患者伏建军，),
# after a bed number (7床 符美玲), in brackets before an age (（彭桂兰，90岁）), after a
# name label with no colon and a long value (死者姓名：哈斯其其格), before a nickname
# note (小糖果（乳名）), a surname before a form of address (厉大爷, 储医生), 小X after
# a carer, after a one-character relation (父 唐浩然), and a signature after dashes.
_ZH_MORE_NAMES = re.compile(
    rf"(?:患者|病人|患儿)([{HAN}]{{2,3}}?)(?=之[女子妻夫母父]|[，,（(]|[ \t]|[男女])"
    rf"|\d+床[ \t]+([{HAN}]{{2,3}})(?=[ \t])"
    rf"|[（(]([{HAN}]{{2,4}})[，,][ \t]*\d{{1,3}}岁"
    rf"|姓名[ \t]*[:：][ \t]*([{HAN}]{{2,6}})(?=[ \t]{{2,}}|[ \t]*(?:$|\n|[（(]))"
    rf"|(?<![{HAN}])([{HAN}]{{2,4}})[（(](?:乳名|小名|昵称|大名)"
    rf"|(?:^|(?<=[\s：:、，,。]))([{SURNAMES}])(?=大爷|大妈|阿姨|奶奶|爷爷|大叔|师傅|医生|主任|护士|老师|教授|大夫)"
    rf"|(?:保姆|护工|家属|陪护)(小[{HAN}]|老[{HAN}]|[{SURNAMES}](?=[ \t]))"
    rf"|(?:^|(?<=[\s：:，,]))(?:父|母|妻|夫|子|女|兄|姐|弟|妹)[ \t]+([{HAN}]{{2,3}})(?=[ \t]|$)"
    rf"|^[ \t]*[—\-–]+[ \t]*([{HAN}]{{1,3}})[ \t]*$"
    # a Hong Kong or Taiwan estate or building after 住: 住九龍何文田愛民邨嘉民樓
    rf"|住([{HAN}]{{2,14}}(?:邨|樓|苑|閣|大廈|花園))",
    re.M,
)
_ZH_NOT_NAME = re.compile(
    rf"[{HAN}]*(?:科|室|中心|医院|病区|门诊|报告|检查|结果|日期|时间|电话|标本|诊断|治疗|复查|主任|医生|医师|护士|"
    rf"号|名|性|认|滴|字|床|费|药|量|班)$"
)


def _zh_name_ok(value: str) -> bool:
    from edge_node.deid_text.rules import common_word

    if _ZH_NOT_NAME.fullmatch(value) or value in lexicon().clinical:
        return False
    return len(value) == 1 or not common_word(value)


def zh_names(text: str) -> Iterator[Hit]:
    for m in _ZH_MASKED.finditer(text):
        yield Hit(m.start(), m.end(), "NAME", True)
    for m in _ZH_ETHNIC.finditer(text):
        s = m.start(1)
        # trim a label glued to the name: 患者蒙克巴雅尔, 服务对象：
        label = re.match(r"(?:患者|病人|患儿|死者|服务对象|对象)", text[s : m.end(1)])
        if label:
            s += label.end()
        yield Hit(s, m.end(1), "NAME", True)
    for m in _ZH_SURNAME_MOU.finditer(text):
        g = 1 if m.group(1) else 2
        yield Hit(m.start(g), m.end(g), "NAME", True)
    found = [m for m in _ZH_ROLE_NAME.finditer(text) if _zh_name_ok(m.group(1))]
    for m in found:
        yield Hit(m.start(1), m.end(1), "NAME", True)
    for m in _ZH_NAME_LIST.finditer(text):
        # the next names of a list of people: "核对：丁/蒋", "与会：臧、路遥、冷"
        line_start = text.rfind("\n", 0, m.start()) + 1
        if _ZH_PEOPLE_LIST.search(text, line_start, m.start(1)) and _zh_name_ok(m.group(1)):
            yield Hit(m.start(1), m.end(1), "NAME", False)
    for m in _ZH_NAME_AFTER_LATIN.finditer(text):
        g = 1 if m.group(1) else 2
        yield Hit(m.start(g), m.end(g), "NAME", True)
    for m in _ZH_MORE_NAMES.finditer(text):
        g = next(i for i in range(1, 11) if m.group(i))
        if g == 10:
            yield Hit(m.start(g), m.end(g), "ADDRESS", True)
        elif _zh_name_ok(m.group(g)):
            yield Hit(m.start(g), m.end(g), "NAME", True)


# 'Given "Nick" Surname'; a sign-off line of initials and a role ("— JMcC RN").
_EN_NICKNAME = re.compile(
    rf"(?<![\w'])[{UP}][{LO}]+[ \t]+[\"“][{UP}][{LO}]+[\"”][ \t]+[{UP}][{LO}]+(?:[-'][{UP}]?[{LO}]+)*"  # noqa: E501
)
_EN_SIGNOFF_INITIALS = re.compile(
    r"(?m)^[ \t]*[—–\-]+[ \t]*([A-Z](?:[a-z]?[A-Z]){1,3})(?=[ \t]+(?:RN|MD|NP|PA|CNS|HCA|RGN|DO)\b|[ \t]*$)"  # noqa: E501
)


# Initials after a checking word and before a time: "Pharmacy verified: HT 07:40".
_EN_CHECK_INITIALS = re.compile(
    r"(?i:verified|checked|witnessed|second check|signed)[ \t]*(?:by)?[ \t]*:?[ \t]+"
    r"([A-Z]{2,3})(?=[ \t]+(?:[01]?\d|2[0-3]):?[0-5]\d\b|[ \t]*$)",
    re.M,
)


_CHECK_KEYS = ("verified", "checked", "witnessed", "second check", "signed")
_LABEL_MORE_KEYS = ("legal", "pref", "known as", "aka", "née", "nee", "maiden")
_CHECK_KEY = re.compile(trie_pattern(_CHECK_KEYS))
_CAPS_COMMA_GATE = re.compile(r"[A-Z],")


def _check_initials(text: str, low: str) -> list[re.Match[str]]:
    """`_EN_CHECK_INITIALS.finditer(text)`, tried only where a checking word starts in
    `low` ("signed" is in most notes: a scan with a case-blind word list is slow). Only
    for ASCII text, where the lower-cased words are all the case-blind pattern finds."""
    if not text.isascii():
        return list(_EN_CHECK_INITIALS.finditer(text))
    out: list[re.Match[str]] = []
    last_end = 0
    key = _CHECK_KEY.search(low)
    while key is not None:
        pos = key.start()
        key = _CHECK_KEY.search(low, pos + 1)  # keys may overlap: "second check" and "checked"
        if pos >= last_end:
            m = _EN_CHECK_INITIALS.match(text, pos)
            if m is not None:
                out.append(m)
                last_end = m.end()
    return out


_CAPS_COMMA_NEED = re.compile(rf"[{UP}],[ \t]*[{UP}]{{2}}")  # in every `_EN_CAPS_COMMA` match


def en_names(text: str, low: str) -> Iterator[Hit]:
    lex = lexicon()
    for m in _check_initials(text, low) if _any(low, _CHECK_KEYS) else ():
        yield Hit(m.start(1), m.end(1), "NAME", True)
    for m in _EN_NICKNAME.finditer(text) if '"' in text or "“" in text else ():
        yield Hit(m.start(), m.end(), "NAME", True)
    if "—" in text or "–" in text or "-" in text:
        for m in _EN_SIGNOFF_INITIALS.finditer(text):
            yield Hit(m.start(1), m.end(1), "NAME", True)
    caps_commas = windows(_CAPS_COMMA_GATE.finditer(text), text, 40, 40)
    for m in in_windows(_EN_CAPS_COMMA, text, caps_commas, _CAPS_COMMA_NEED):
        words = re.split(r"[,\s]+", m.group(1))
        if all(len(w) >= 3 and w.lower() not in lex.clinical_lower for w in words) and any(
            w.title() not in lex.english_common for w in words
        ):
            yield Hit(m.start(1), m.end(1), "NAME", False)
    for m in _NAME_LABEL_MORE.finditer(text) if _any(low, _LABEL_MORE_KEYS) else ():
        yield Hit(m.start(1), m.end(1), "NAME", True)


# --- places ----------------------------------------------------------------------------------
# Irish Eircode "D04 V1W8"; Dutch "1015 CJ Amsterdam"; French "69003 Lyon";
# Australian "NSW 2194". (A character class first lets the scan skip ahead fast; the
# look-behind is checked after.)
_EIRCODE = re.compile(r"[ACDEFHKNPRTVWXY]\d[0-9W][ ]?[0-9ACDEFHKNPRTVWXY]{4}(?![\w])")
_POSTCODES = re.compile(
    rf"\d\d{{3}}(?:[ ]?[A-Z]{{2}}(?=[ ,]+[{UP}][{LO}])"
    rf"|\d[ ][{UP}][{LO}]+(?:[ \-][{UP}][{LO}]+)?(?=[ \t]*[,.;)\n]|[ \t]*$))"
)
_AU_STATES = ("NSW", "VIC", "QLD", "TAS", "ACT", "NT", "SA", "WA")
_AU_POSTCODE = re.compile(rf"(?:{'|'.join(_AU_STATES)})[ ]+\d{{4}}(?!\d)")
# A street number with a direction or a unit before the street: "1150 W Monroe St",
# "6/41 Beamish St", "3320 SE Belmont St", "Apt 7F, 2430 Grand Concourse".
_STREET = re.compile(
    r"(?<![\w/])(?:(?:Apt|Flat|Unit|Suite)\.?[ \t]*[A-Z0-9]{1,4},?[ \t]*)?\d{1,5}(?:/\d{1,5})?[A-Z]?[ \t]+"  # noqa: E501
    r"(?:(?:N|S|E|W|NE|NW|SE|SW)\.?[ \t]+)?(?:\d{1,3}(?:st|nd|rd|th)|[A-Z][a-z]+)(?:[ \t]+[A-Z][a-z]+){0,2}[ \t]+"  # noqa: E501
    r"(?:St|Street|Ave|Avenue|Rd|Road|Blvd|Dr|Drive|Ln|Lane|Way|Pl|Concourse|Terrace|Tce|Cres|Pde|Hwy)\.?"
    r"(?:[ \t]+(?:N|S|E|W|NE|NW|SE|SW))?(?![A-Za-z])"
    # a street named after its word in French, Italian, Spanish, Portuguese: "14 rue des Lilas"
    r"|(?<![\w/])\d{1,4}(?:bis|ter)?,?[ \t]+(?:rue|avenue|boulevard|bd|place|chemin|allée|impasse|quai|"  # noqa: E501
    r"route|via|viale|calle|avenida|rua|piazza|plaza)(?:[ \t]+[\w'’\-]+){1,4}?(?=,)"
    # Hong Kong flats: "Flat C, 18/F, Block 2"
    r"|(?<![\w])Flat[ \t]+[A-Z0-9]{1,3},[ \t]*\d{1,3}/F(?:,[ \t]*(?:Block|Blk|Tower)[ \t]+[A-Z0-9]{1,3})?"  # noqa: E501
)
_PLACE_NEXT = re.compile(
    rf",[ \t]*([{UP}][{LO}]+(?:[ \t][{UP}][{LO}]+){{0,2}})(?=[,.\n;)]|[ \t]+[A-Z]{{2}}\b)"
)
_ZH_ADDRESS_TAIL = re.compile(
    r"(?:附\d+号|[-－]?\d{1,4}(?:室|房|户|号楼|號樓|号|號|栋|棟|幢|单元|單元|楼|樓|层|層)?"
    r"|[A-Za-z](?:座|区|區|栋|棟|幢))+"
)
_INSTITUTION_WORD = re.compile(
    r"(?:Hospital|Clinic|Centre|Center|Institute|Unit|Ward|Department|Trust|Oncology|Surgery|"
    r"Medicine|Care|Service|Services|University|College|School)$"
)


# "Home: Keizersgracht 123-II, 1015 CJ Amsterdam": a home with a number in it.
_HOME = re.compile(
    r"(?<![A-Za-z])(?i:home|residence|resides|lives)[ \t]*:[ \t]*([^\n]{4,80}?)"
    r"(?=[ \t]{2,}|[ \t]*\n|[ \t]*$|[.;][ \t]+[A-Z]|[ \t]+(?:Tel|Ph|Phone|Mob|Mobile|Email|Insurer)\b)"  # noqa: E501
)
# The name of a home, a residence or a building just before its street address:
# "The Laurels Care Home, 8 Church Lane", "Sunrise of Edina, 7500 France Ave S".
_RESIDENCE_BEFORE = re.compile(
    rf"(?:The[ \t])?[{UP}][{LO}]+(?:[ \t](?:of[ \t])?[{UP}][{LO}]+){{0,3}},[ \t]*$"
)


_STREET_GATE = re.compile(
    r"(?:St|Street|Ave|Avenue|Rd|Road|Blvd|Dr|Drive|Ln|Lane|Way|Pl|Concourse|Terrace|Tce|Cres|Pde|"
    r"Hwy|rue|avenue|boulevard|bd|place|chemin|allée|impasse|quai|route|via|viale|calle|avenida|rua|"
    r"piazza|plaza|/F)(?![A-Za-z])"
)
_POSTCODE_GATE = re.compile(r"\d")
# A piece of each `_STREET` branch (from its number's last digit on), or "18/F".
_STREET_NEED = re.compile(
    r"\d[A-Z]?[ \t]+(?:(?:N|S|E|W|NE|NW|SE|SW)\.?[ \t]+)?(?:\d{1,3}(?:st|nd|rd|th)|[A-Z][a-z]+)"
    r"(?:[ \t]+[A-Z][a-z]+){0,2}[ \t]+"
    r"(?:St|Street|Ave|Avenue|Rd|Road|Blvd|Dr|Drive|Ln|Lane|Way|Pl|Concourse|Terrace|Tce|Cres|Pde|Hwy)"
    r"|\d(?:bis|ter)?,?[ \t]+(?:rue|avenue|boulevard|bd|place|chemin|allée|impasse|quai|"
    r"route|via|viale|calle|avenida|rua|piazza|plaza)|\d/F"
)


def places(text: str, low: str) -> Iterator[Hit]:
    if ":" in text and _any(low, ("home", "residence", "resides", "lives")):
        for m in _HOME.finditer(text):
            if any(c.isdigit() for c in m.group(1)):
                yield Hit(m.start(1), m.end(1), "ADDRESS", True)
    # a postcode with its town is strong: the town may share a clinical word ("Paris")
    # a state's postcode has a space right after the state (a cheap test first)
    au = any(f"{state} " in text for state in _AU_STATES)
    for pattern, before, strong in (
        (_EIRCODE, "_", False),
        (_POSTCODES, "_.,", True),
        *(((_AU_POSTCODE, "_", True),) if au else ()),
    ):
        for m in pattern.finditer(text):
            c = text[m.start() - 1 : m.start()]
            if not (c.isalnum() or c in before):
                yield Hit(m.start(), m.end(), "ADDRESS", strong)
    streets = windows(_STREET_GATE.finditer(text), text, 70, 40)
    for m in in_windows(_STREET, text, streets, _STREET_NEED):
        yield Hit(m.start(), m.end(), "ADDRESS", True)


def grow_addresses(text: str, hits: list[Hit]) -> list[Hit]:
    """An address hit grown over the towns after it ("…, Kornhill, Quarry Bay") and,
    in Chinese, over the house and room numbers that end it (附2号, 501)."""
    common = lexicon().english_common
    names = [(h.start, h.end) for h in hits if h.type == "NAME" and h.strong]
    out = []
    for hit in hits:
        h = hit
        if h.type == "ADDRESS":
            e = h.end
            value = text[h.start : h.end]
            if value.isascii():
                for _ in range(3):
                    nxt = _PLACE_NEXT.match(text, e)
                    if nxt is None:
                        break
                    words = nxt.group(1).split()
                    if any(w in common for w in words) or _INSTITUTION_WORD.search(words[-1]):
                        break
                    e = nxt.end(1)
            elif "\u4e00" <= value[-1] <= "\u9fff" or value[-1].isdigit():
                t = _ZH_ADDRESS_TAIL.match(text, e)
                if t:
                    e = t.end()
            s = h.start
            if text[s : s + 1].isdigit():
                home = _RESIDENCE_BEFORE.search(text, max(0, s - 50), s)
                # a house name, not a person found before the number ("Ann Roe, 3 Elm St")
                if home and not any(a < s and b > home.start() for a, b in names):
                    s = home.start()
            if (s, e) != (h.start, h.end):
                h = Hit(s, e, h.type, h.strong)
            if not value.isascii():
                h = _trim_zh_lead(text, h)
        elif h.type == "ORGANIZATION" and not text[h.start : h.end].isascii():
            h = _trim_zh_lead(text, h)
        elif h.type in ("MRN", "ID_NUMBER", "OTHER") and text[h.end : h.end + 1] == "(":
            check = _CHECK_DIGIT.match(text, h.end)
            if check:  # a check character in brackets: "HN05123456(1)"
                h = Hit(h.start, check.end(), h.type, h.strong)
        out.append(h)
    return out


_CHECK_DIGIT = re.compile(r"\([0-9A-Z]\)")
# Words a Chinese place or employer found by its suffix may have taken in front of it:
# a verb of moving or going (住在, 搬家至, 就诊于, 去, 交), a label's last character
# (工作单位), a year (1996年于…).
_ZH_LEAD_CUT = frozenset("在于於去交至到从從赴往住位")
_ZH_YEAR_LEAD = re.compile(r"\d{2,4}年(?:[后後起至])?[于於在]?")


def _trim_zh_lead(text: str, h: Hit) -> Hit:
    """`h` started after a verb or label glued before a known place: "我们住在嘉兴市南湖区"
    is "嘉兴市南湖区", "1996年于廊坊石棉制品厂" is "廊坊石棉制品厂"."""
    s = h.start
    year = _ZH_YEAR_LEAD.match(text, s, h.end)
    if year and h.end - year.end() >= 4:
        s = year.end()
    places = lexicon().places_zh_re
    for i in range(h.end - 4, s - 1, -1):
        if text[i] in _ZH_LEAD_CUT and places.match(text, i + 1):
            s = i + 1
            break
    return h if s == h.start else Hit(s, h.end, h.type, h.strong)


# --- organisations -----------------------------------------------------------------------------
_ZH_ORG_MORE = re.compile(
    rf"[{HAN}]{{2,8}}?(?:教育局|[一二三四五六七八九十]局|纸业|电力|集团|小学|中学|幼儿园)(?![{HAN}]?医院)"
)
_EN_EMPLOYER = re.compile(
    # the name may hold a lower-case joining word: "Bank of Erewhon", "Smith and Sons"
    rf"(?i:employer|employed by|works for|school)[ \t:]+((?:[{UP}][\w&.'\-]*[ \t]*(?:(?:of|and|for|the)[ \t]+(?=[{UP}]))?){{1,4}})(?=[ \t]*(?:[—–\-,;.(]|$|[a-z]))",  # noqa: E501
    re.M,
)


# A school by its number: "P.S. 46 Edgar Allan Poe", "I.S. 52" (never "PS 1": a
# performance status).
_SCHOOL_NUMBER = re.compile(
    rf"(?<![A-Za-z.])(?:P\.S\.|I\.S\.|J\.H\.S\.)[ \t]?\d{{1,3}}"
    rf"(?:[ \t][{UP}][{LO}]+){{0,4}}(?![A-Za-z])"
)


def organizations(text: str, low: str) -> Iterator[Hit]:
    for m in _SCHOOL_NUMBER.finditer(text) if "S." in text else ():
        yield Hit(m.start(), m.end(), "ORGANIZATION", True)
    if not text.isascii():
        for m in _ZH_ORG_MORE.finditer(text):
            s = m.start()
            # the name starts after the last function word in the run: 供, 在, 到…
            cut = max(text.rfind(c, s, m.end() - 3) for c in "在于供到去向的给从")
            if cut >= 0:
                s = cut + 1
            yield Hit(s, m.end(), "ORGANIZATION", False)
    keys = ("employ", "works for", "school")
    for m in _EN_EMPLOYER.finditer(text) if _any(low, keys) else ():
        yield Hit(m.start(1), m.start(1) + len(m.group(1).rstrip()), "ORGANIZATION", True)


def detect(text: str, low: str | None = None) -> list[Hit]:
    """Every hit of the rules above (the resolver merges them with the others)."""
    low = ascii_lower(text) if low is None else low
    hits = [
        *grouped_numbers(text),
        *any_label_numbers(text, low),
        *ocr_labels(text, low),
        *devices(text, low),
        *contacts(text, low),
        *dates(text, low),
        *ages(text, low),
        *en_names(text, low),
        *places(text, low),
        *organizations(text, low),
    ]
    hits += more_people(text, low)
    if not text.isascii():
        hits += zh_names(text)
        hits += zh_more_people(text)
    hits += structure.detect(text, low)
    hits += round7.detect(text)
    return hits


# --- round 5: people by the company they keep ------------------------------------------
# A chat line's speaker: "[09:41] kim_r: on my way".
_CHAT_SPEAKER = re.compile(r"\[\d{1,2}:\d\d(?::\d\d)?\][ \t]+([A-Za-z][\w.\-]{1,24}):")
# A login handle after a verb of record-keeping: "approved by tdelacroix", "monitor pquist".
_HANDLE = re.compile(
    # a date or a time may follow: "transcribed by jdoe 07/07/25"
    r"[ \t](?:by|monitor|user|operator)[ \t]+([a-z][a-z0-9._]{3,24})(?=[ \t]*(?:[.,;:()\n]|$|\d))"
)
# A role abbreviation before a full name: "NP Jo Marsh", "RN Ciara O'Hare", "tech Bo Lind".
_ROLE_ABBR_NAME = re.compile(
    r"(?:NP|RN|LPN|CNS|SW|PA|HCA|tech|Tech)[ \t]+([A-Z][a-z]+[ \t]+(?:O'|Mc|Mac)?[A-Z][a-z'\-]*[a-z])"  # noqa: E501
    r"(?![A-Za-z])"
)
# A title before an initial without its dot ("Mrs J Okafor") or a name in capitals
# ("DR OKAFOR-LUND").
_TITLE_INITIAL = re.compile(
    r"M(?<![A-Za-z]M)(?:rs|r|s|iss)\.?[ \t]+([A-Z][ \t]+[A-Z][a-z'\-]+[a-z])(?![A-Za-z])"
    r"|(?:D(?<![A-Za-z]D)R|M(?<![A-Za-z]M)(?:RS|R|S)|P(?<![A-Za-z]P)ROF)\.?[ \t]+([A-Z][A-Z'\-]+[A-Z])(?![A-Za-z])"  # noqa: E501
)
# A street named without its number after "on"/"at" or a comma: "on Elm Rd", ", Acre St,".
_BARE_STREET = re.compile(
    r"(?:on|at|,)[ \t]+([A-Z][a-z]+(?:[ \t][A-Z][a-z]+)?[ \t](?:St|Street|Rd|Road|Ave|Avenue|Blvd|"
    r"Boulevard|Lane|Ln|Hwy|Pike))(?=[ \t]*[,;.)\n])"
)
# HL7 v2 fields: a person's name (XPN: family^given^middle), an identifier with its
# assigning authority and type (CX: 8812^^^SITE^MR), a telephone (XTN: ^PRN^PH^^1^555^0100).
_HL7_NAME = re.compile(
    rf"[|^]([A-Z][A-Z'\-]+\^[A-Z][A-Z'\-]+(?:\^[A-Z]?)*|[{HAN}]{{1,2}}\^[{HAN}]{{1,3}})(?=[|^~])"
)
_HL7_ID = re.compile(r"[|~]([0-9A-Z][0-9A-Z\-]{3,}\^\^\^[A-Z0-9]+\^(?:MR|NI|PI|PT|SS|AN))(?=[|~^])")
_HL7_PHONE = re.compile(r"\^(?:PRN|WPN|ORN|NET)\^(?:PH|CP|FX|BP)\^\^([\d^]{7,})")
# A link without its scheme: "portal.example.cn/r/Ab12", "bit.ly/3xYz".
_BARE_URL = re.compile(
    r"[a-z0-9](?<![\w.@/][a-z0-9])[a-z0-9\-]*(?:\.[a-z0-9\-]+)*\.(?:cn|com|org|net|io|ly|uk|au|hk|tw)"
    r"/[A-Za-z0-9_\-./?=&%]*[A-Za-z0-9]"
)
# A Canadian postcode ("K1A 0B1") and an Irish Eircode ("A65 F4E2").
_CA_POSTCODE = re.compile(r"[A-Z](?<![A-Za-z0-9][A-Z])\d[A-Z][ ]\d[A-Z]\d(?![A-Za-z0-9])")
_EIRCODE = re.compile(r"[A-Z](?<![A-Za-z0-9][A-Z])(?:\d\d|6W)[ ]([0-9A-Z]{4})(?![A-Za-z0-9])")


def more_people(text: str, low: str) -> Iterator[Hit]:
    lex = lexicon()
    if "[" in text:
        for m in _CHAT_SPEAKER.finditer(text):
            yield Hit(m.start(1), m.end(1), "NAME", True)
    if _any(low, (" by ", " monitor ", " user ", " operator ")):
        for m in _HANDLE.finditer(text):
            word = m.group(1)
            if not dictionary_word(word) and word not in lex.clinical_lower:
                yield Hit(m.start(1), m.end(1), "NAME", True)
    for m in _ROLE_ABBR_NAME.finditer(text):
        if m.start() and (text[m.start() - 1].isalnum()):
            continue
        first = m.group(1).split()[0]
        if first in lex.english_common or first.lower() in lex.clinical_lower:
            continue
        yield Hit(m.start(1), m.end(1), "NAME", True)
    for m in _TITLE_INITIAL.finditer(text):
        g = 1 if m.group(1) else 2
        word = m.group(g)
        if g == 2 and (dictionary_word(word.lower()) or word.lower() in lex.clinical_lower):
            continue
        yield Hit(m.start(g), m.end(g), "NAME", True)
    for m in _BARE_STREET.finditer(text):
        first = m.group(1).split()[0]
        if first not in lex.english_common and first.lower() not in lex.clinical_lower:
            yield Hit(m.start(1), m.end(1), "ADDRESS", True)
    if "/" in text:
        for m in _BARE_URL.finditer(text):
            yield Hit(m.start(), m.end(), "URL", True)
    if "^" in text and "|" in text:
        for p in (_HL7_NAME, _HL7_ID, _HL7_PHONE):
            for m in p.finditer(text):
                kind = "NAME" if p is _HL7_NAME else "MRN" if p is _HL7_ID else "PHONE"
                yield Hit(m.start(1), m.end(1), kind, True)
    for m in _CA_POSTCODE.finditer(text):
        yield Hit(m.start(), m.end(), "ADDRESS", True)
    for m in _EIRCODE.finditer(text):
        unit = m.group(1)
        if any(c.isdigit() for c in unit) and any(c.isalpha() for c in unit):
            yield Hit(m.start(), m.end(), "ADDRESS", True)


# Relatives and carers written with kin words the lexicon lacks (其母, 长孙, 老公, 二哥),
# nicknames in quotes after 小名, a nurse called 小+surname, a sibling's name in brackets.
_ZH_KIN = (
    r"(?:其母|其父|其妻|其夫|其兄|其姐|其弟|其妹|长孙|長孫|次孙|孫女|孫子|外孫|老公|老婆|媳妇|媳婦|"
    r"大哥|二哥|三哥|大姐|二姐|三姐|小妹|小弟|大嫂|二嫂|老大|老二|老三|兒子|女兒|閨蜜|闺蜜|朋友|邻居|鄰居|"
    r"室友|同事|同学|同學)"
)
_ZH_KIN_NAME = re.compile(
    rf"{_ZH_KIN}[（(]?([{HAN}]{{2,3}}?)(?=[，,。；;：:、（()）\s\d在说說来來去给給从從和与與的是陪送带帶也都就还還让讓把跟帮幫等]|$)",
    re.M,
)
_ZH_NICKNAME = re.compile(
    rf"(?:小名|乳名|昵称|暱稱|绰号|綽號|外号|外號)[ \t:：]*[\"“「『]([{HAN}]{{1,4}})[\"”」』]"
)
_ZH_STAFF_NICK = re.compile(rf"(?:护士|護士|护工|護工|保姆)(小[{SURNAMES}])")


# A one-character surname standing alone: before a form of address after a space
# (主治 宓 医生), after a bed number (3床 柏 禁食), at the end of a table row (… 02:00  柏).
_ZH_LONE_SURNAME = re.compile(
    rf"[ \t]([{SURNAMES}])[ \t]+(?:医生|醫生|主任|护士|護士|教授|老师|老師|大夫)"
    rf"|床[ \t]+([{SURNAMES}])[ \t]"
    rf"|[ \t]{{2,}}([{SURNAMES}])[ \t]*$",
    re.M,
)
# Elders by surname and form of address at a line or clause start: 柏阿婆, 柏伯伯.
_ZH_ELDER = re.compile(
    rf"(?:^|[\s：:、，,。])([{SURNAMES}])(?:阿婆|阿公|阿伯|婆婆|伯伯|叔叔|阿叔)", re.M
)
# A name followed by who they are in brackets: 珊珊（闺蜜）, 阿明（邻居）.
_ZH_NAME_THEN_KIN = re.compile(
    rf"([{HAN}]{{2,3}})[（(](?:闺蜜|閨蜜|朋友|同事|邻居|鄰居|室友|同学|同學|丈夫|妻子|老公|老婆|"
    rf"儿子|兒子|女儿|女兒|哥哥|姐姐|弟弟|妹妹|护工|護工|保姆)[）)]"
)
# A speaker in meeting minutes named after a department: 内科柏文：…
_ZH_DEPT_SPEAKER = re.compile(rf"科([{SURNAMES}][{HAN}]{{1,2}})[：:]")
# A short internal number: after a staff role (值班医生 8812), before （内线）.
_ZH_STAFF_NUMBER = re.compile(
    r"(?:医生|醫生|护士长|護士長|护士|護士|医师|醫師|值班)[ \t]*(\d{3,5})(?![\d.年月日号號:：\-/])"
)
_ZH_EXT_AFTER = re.compile(r"\d(?<!\d\d)\d{2,5}[ \t]*[（(](?:内线|內線|分机|分機|短号)")
# An employer: a name ending in a kind of company or school, then a job or a work word
# (…航空乘务员, 在…油田值班, …中学任教); it starts after a marker or punctuation.
_ZH_EMPLOYER_END = re.compile(
    r"(?:航空|油田|石化|汽车|汽車|煤气|煤氣|电力|電力|电网|電網|银行|銀行|集团|集團|公司|高中|中学|中學|"
    r"小学|小學|学校|學校|物流|快递|快遞)"
    r"(?=[（(]?(?:员工|員工|职工|職工|退休|工程师|工程師|飞行员|飛行員|乘务员|乘務員|教师|教師|老师|老師|"
    r"司机|司機|工人|值班|工作|上班|任|会计|會計|经理|經理))"
)
_ZH_EMPLOYER_STOP = frozenset("在为為於于是的到去从從和与與及，,。；;：:、（()）\n\t 0123456789")


def zh_employers(text: str) -> Iterator[Hit]:
    for m in _ZH_EMPLOYER_END.finditer(text):
        s = m.start()
        while s > 0 and m.end() - s < 16 and text[s - 1] not in _ZH_EMPLOYER_STOP:
            if not _HAN_CHAR.match(text[s - 1]):
                break
            s -= 1
        if m.end() - s >= 4:
            yield Hit(s, m.end(), "ORGANIZATION", True)


_HAN_CHAR = re.compile(f"[{HAN}]")


# Numbers read aloud in Chinese digits, spaced or not: seven or more is a phone or a
# record number (一三九 零零五七, 二五零六一二零零八八); a date has at most four in a row.
# (幺 and 两 are one and two read aloud in a phone number: 幺三八…)
_ZH_DIGIT_RUN = re.compile(
    r"[零〇一二三四五六七八九幺两](?:[ \t]?[零〇一二三四五六七八九幺两]){6,}"
)
# A Chinese court case number: （2024）粤0305民初1234号.
_ZH_CASE_NO = re.compile(rf"[（(]\d{{4}}[）)][{HAN}]{{1,2}}\d{{0,4}}[{HAN}]{{1,4}}\d+号")


def zh_more_people(text: str) -> Iterator[Hit]:
    for m in _ZH_DIGIT_RUN.finditer(text):
        yield Hit(m.start(), m.end(), "PHONE", True)
    if "号" in text:
        for m in _ZH_CASE_NO.finditer(text):
            yield Hit(m.start(), m.end(), "OTHER", True)
    for m in _ZH_LONE_SURNAME.finditer(text):
        g = 1 if m.group(1) else 2 if m.group(2) else 3
        yield Hit(m.start(g), m.end(g), "NAME", True)
    for p in (_ZH_ELDER, _ZH_NAME_THEN_KIN, _ZH_DEPT_SPEAKER):
        for m in p.finditer(text):
            if _zh_name_ok(m.group(1)) or p is _ZH_ELDER:
                yield Hit(m.start(1), m.end(1), "NAME", True)
    for m in _ZH_STAFF_NUMBER.finditer(text):
        yield Hit(m.start(1), m.end(1), "PHONE", True)
    if "内线" in text or "內線" in text or "分机" in text or "分機" in text or "短号" in text:
        for m in _ZH_EXT_AFTER.finditer(text):
            e = m.start() + len(m.group().split("（")[0].split("(")[0].rstrip())
            yield Hit(m.start(), e, "PHONE", True)
    yield from zh_employers(text)
    for m in _ZH_KIN_NAME.finditer(text):
        if _zh_name_ok(m.group(1)):
            yield Hit(m.start(1), m.end(1), "NAME", True)
    for m in _ZH_NICKNAME.finditer(text):
        yield Hit(m.start(1), m.end(1), "NAME", True)
    for m in _ZH_STAFF_NICK.finditer(text):
        yield Hit(m.start(1), m.end(1), "NAME", True)
