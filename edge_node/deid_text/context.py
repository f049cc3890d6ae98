"""Context rules: identifiers found from their neighbours, and hits grown to their
whole extent.

The detectors in `rules.py` find an identifier by its own shape or a label right
before it. Written notes also identify people and places by position: a name in a
list after another name, a name before "，男，", a weekday before a date, a town
after a street, a workplace after "cleaner at". These rules read the hits found so
far and the text around them (`extend`), or scan for shapes that only make sense in
context (`detect`). Clinical shapes that must survive (departments, drug names
built from a salt or a suffix) are in `protected`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from functools import lru_cache

from edge_node.deid_text.lexicon import Lexicon, ascii_lower, lexicon, trie_pattern
from edge_node.deid_text.rules import (
    FULL,
    HAN,
    LO,
    MON,
    TITLE_EN,
    UP,
    Hit,
    common_word,
    has_han,
    in_windows,
    matches_at,
    month_positions,
    num_date_matches,
    windows,
    zh_surname_len,
)

# --- full-width forms -----------------------------------------------------------------
# Full-width digits, letters and punctuation (２０２４年３月５日, １３９…) become ASCII, one
# character for one, so every offset stays the same.
_FULL_WIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
_KEEP_FULL = {ord(c) for c in "（），：；！？｜"}  # Chinese punctuation the rules read as such
_FOLD = {k: v for k, v in _FULL_WIDTH.items() if k not in _KEEP_FULL}


_FULL_WIDTH_ANY = re.compile("[" + "".join(chr(c) for c in sorted(_FOLD)) + "]")


def fold_width(text: str) -> str:
    """`text` with full-width ASCII forms replaced by ASCII (same length)."""
    if text.isascii() or _FULL_WIDTH_ANY.search(text) is None:
        return text
    return text.translate(_FOLD)


# --- dates ------------------------------------------------------------------------------

_WEEKDAY_BEFORE = re.compile(
    r"(?i:(?:mon|tues?|wed(?:nes)?|thu(?:rs?)?|fri|sat(?:ur)?|sun)(?:day)?\.?),?[ \t]+$"
    r"|(?i:the)[ \t]+$"
    r"|(?i:early|mid|late|end of|beginning of|start of)[ \t\-]+$"
)
_TIME_BEFORE = re.compile(r"(?:[01]?\d|2[0-3])[:：][0-5]\d[ \t]+$")
_TIME_AFTER = re.compile(
    r",?[ \t]*(?:at[ \t]+)?(?:[01]?\d|2[0-3])[.:][0-5]\d[ \t]?(?i:[ap]\.?m\.?)"
    r"|,?[ \t]+(?:at[ \t]+)?(?:[01]?\d|2[0-3])[:：][0-5]\d"
    r"|[ \t]+(?:[01]\d|2[0-3])[0-5]\d(?![\d./])"
    r"|[ \t]*[（(]周[一二三四五六日天][）)][ \t]*(?:上午|下午|晚上|凌晨|中午)?[ \t]*(?:(?:[01]?\d|2[0-3])[:：][0-5]\d)?"  # noqa: E501
)
_DAY_NUM = r"(?:0?[1-9]|[12]\d|3[01])"
_MONTH_NUM = r"(?:0?[1-9]|1[0-2])"
DATE_SHAPES = [
    # ranges: "Aug 14-18, 2023", "14-18 Aug 2023", 8月12、15、19日
    re.compile(
        rf"(?<![\w]){MON}[ \t]+{_DAY_NUM}[ \t]*[-–][ \t]*{_DAY_NUM},?[ \t]+(?:19|20)\d{{2}}"
    ),
    re.compile(
        rf"(?<![\w\d]){_DAY_NUM}[ \t]*[-–][ \t]*{_DAY_NUM}[ \t]+{MON}(?:[ \t]+(?:19|20)\d{{2}})?"
    ),
    re.compile(rf"(?<!\d){_MONTH_NUM}\s*月\s*{_DAY_NUM}(?:\s*[、，,]\s*{_DAY_NUM})+\s*[日号]"),
    # parts of a month: 1月下旬, 2024年6月上旬, 3月初
    re.compile(
        rf"(?:(?:19|20)\d{{2}}\s*年\s*)?(?<!\d){_MONTH_NUM}\s*月(?:上旬|中旬|下旬|初|中旬|底|末)"
    ),
    # month and two-digit year: "Mar-24", "Sept '23"
    re.compile(rf"(?<![\w]){MON}[-'’ ]'?\d{{2}}(?![\d:%]|\.\d)"),
    # dotted day.month.year with a two-digit year: 07.03.24, 5.3.22, 24.8.12
    re.compile(r"(?<![\w.])\d{1,2}\.\d{1,2}\.\d{2}(?![\d.]|[A-Za-z%])"),
    # year.month.day with a two-digit year: 23.3.5
    re.compile(
        r"(?<![\w.])[12]\d\.(?:0?[1-9]|1[0-2])\.(?:0?[1-9]|[12]\d|3[01])(?![\d.]|[A-Za-z%])"
    ),
    # a full date right after a list number: "3.2024-07-02"
    re.compile(rf"(?<=[^\d.]\d\.)(?:19|20)\d{{2}}-{_MONTH_NUM}-{_DAY_NUM}(?!\d)"),
    # month/year: 08/2023
    re.compile(rf"(?<![\d/.]){_MONTH_NUM}/(?:19|20)\d{{2}}(?![\d/])"),
]
# A day and month with no year ("on 2/10", "Adm 09/15", "MDT 9/16", "10/19拔除") is a
# date when a date word comes before it or a time after it; "pain 2/10" is a score.
_PARTIAL = re.compile(
    rf"(?<![\d/.:\w]){_DAY_NUM}/{_DAY_NUM}(?![\d/%]|\.\d|\s*(?:mg|ml|mmHg|cm|mm))"
)
_PARTIAL_BEFORE = re.compile(
    r"(?i:\b(?:on|from|to|till|until|since|by|before|after|adm(?:itted)?|d/c|disch(?:arged?)?|"
    r"review|reviewed|labs?|bloods?|blood|cultures?|dated?|seen|booked|mdt|tx|rx|ct|mri|pet|"
    r"op|surgery|started|stopped|due|next|last|appt|visit|fu|f/u)[ \t:：]*)$|[：:（(][ \t]*$|[\u4e00-\u9fff][ \t]*$"  # noqa: E501
    r"|(?:[01]?\d|2[0-3])[:：][0-5]\d[ \t]+$"
)
_PARTIAL_AFTER = re.compile(rf"[ \t]+(?:[01]?\d|2[0-3])[:：.]?[0-5]\d|[{HAN}]")
_ZH_NOT_DATE_AFTER = set("枚个例次级分度周组项张片支颗")
# A bare N/M in a count, ratio or score context is clinical, never a date:
# "淋巴结(5/17)", "第4组 1/3", "nodes: (2/19) positive", "pain 3/10", "1/3 of".
_RATIO_BEFORE = re.compile(
    r"(?i:淋巴结|淋巴|组|枚|站|阳性|转移|周期|疗程|评分|分级|比例|"
    r"\b(?:lymph|nodes?|lns?|stations?|positive|involved|ratio|score|"
    r"pain|nrs|vas|ecog|kps|ps|gleason|grade|cycles?|fractions?|fx|cores?|out\s+of)\b)"
    r"[^\n。；;.]{0,24}$"
)
# An explicit date word right before wins over a ratio word further back.
_DATE_WORD_BEFORE = re.compile(
    r"(?i:\b(?:on|since|until|dated?|adm(?:itted)?|disch(?:arged?)?|seen|booked|appt|visit)"
    r"[ \t:：]*)$"
)
_RATIO_AFTER = re.compile(
    r"[ \t)）]*(?i:阳性|转移|淋巴结|枚|个|组|\+|(?:lymph\s+)?nodes?\b|lns?\b|positive|"
    r"involved|metastatic|of\b|cores?\b|cycles?\b|fractions?\b|fx\b)"
)


_NOT_DATE_AFTER = re.compile(
    r"[ \t]*(?i:tab(?:let)?s?|caps?(?:ules?)?|doses?|amps?|vials?|power|strength|life|"
    r"lives|sessions?|visits?|days?|weeks?|wks?|months?|times?|x\b|th\b|rd\b|nd\b)"
)


def _calendar_day(value: str) -> bool:
    """True when "a/b" is a day and month in either order (1-12 and 1-31)."""
    a, b = (int(x) for x in value.split("/"))
    return (1 <= a <= 12 and 1 <= b <= 31) or (1 <= b <= 12 and 1 <= a <= 31)


def ratio_context(text: str, s: int, e: int) -> bool:
    """True when a bare N/M at text[s:e] reads as a count, ratio or score."""
    line_start = max(text.rfind("\n", 0, s) + 1, s - 30)
    if _DATE_WORD_BEFORE.search(text, max(line_start, s - 14), s):
        return False
    if _RATIO_BEFORE.search(text, line_start, s):
        return True
    return _RATIO_AFTER.match(text, e) is not None


# One alternation per family: one scan instead of several.
_MONTH_SHAPES = re.compile("|".join(f"(?:{DATE_SHAPES[i].pattern})" for i in (0, 1, 4)))
_ZH_SHAPES = (DATE_SHAPES[2], DATE_SHAPES[3])
_NUM_SHAPES = re.compile("|".join(f"(?:{p.pattern})" for p in DATE_SHAPES[5:]))
# A piece of each of those shapes: d.m.y, y-m-d, m/yyyy.
_NUM_SHAPE_NEED = re.compile(r"\d\.\d{1,2}\.\d|\d-\d|\d/[12]\d{3}")


# Shapes with no year that are dates by what is around them (recall first; weak hits).
# (each found from its literal part, "day" or the colon, then checked backwards: a
# scan that starts with a literal is several times faster than one with a word list)
_WEEKDAY_DAY = re.compile(
    r"[Dd][Aa][Yy],?[ \t]+(?:the[ \t]+)?(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)\b"
)
_WEEKDAY_HEAD = re.compile(r"(?i:mon|tues|wednes|thurs|fri|satur|sun)$")
_ZH_MONTH_DOT_DAY = re.compile(
    rf"(?<![\d.]){_MONTH_NUM}\.{_DAY_NUM}(?=[日号]?(?:复查|复诊|入院|出院|手术|就诊|住院|化疗|放疗|"
    r"来院|门诊|随访|开始|起|至|行|在|于))"
)
_YY_M_D = re.compile(rf"[12](?<![\d/.][12])\d/{_MONTH_NUM}/{_DAY_NUM}(?![\d/])")
_LABEL_M_D = re.compile(rf"[：:][ \t]*({_MONTH_NUM}[-/.]{_DAY_NUM})(?![\d./\-])")
_DATE_LABEL_BEFORE = re.compile(r"(?:日期|时间|(?i:date|time))[ \t]*$")
_ZH_REL_MONTH_DAY = re.compile(r"(?:本|下|上|当|次)月[ \t]*(?:[12]\d|3[01]|0?[1-9])[ \t]*[日号]")


def _more_dates(text: str) -> Iterator[Hit]:
    for m in _WEEKDAY_DAY.finditer(text):
        head = _WEEKDAY_HEAD.search(text, max(0, m.start() - 6), m.start())
        if head:
            yield Hit(head.start(), m.end(), "DATE", False)
    if "." in text and not text.isascii():
        for m in _ZH_MONTH_DOT_DAY.finditer(text):
            yield Hit(m.start(), m.end(), "DATE", False)
    if "/" in text:
        for m in _YY_M_D.finditer(text):
            yield Hit(m.start(), m.end(), "DATE", False)
    for m in _LABEL_M_D.finditer(text):
        if _DATE_LABEL_BEFORE.search(text, max(0, m.start() - 6), m.start()):
            yield Hit(m.start(1), m.end(1), "DATE", False)
    if "月" in text:
        for m in _ZH_REL_MONTH_DAY.finditer(text):
            yield Hit(m.start(), m.end(), "DATE", False)


def dates(text: str) -> Iterator[Hit]:
    yield from _more_dates(text)
    # Each family only around what it needs (a month name, digits with a separator).
    starts: set[int] = set()
    for p in month_positions(text):
        starts.add(p)
        # the day of "14-18 Aug 2023" starts a few characters before the month
        before = text[max(0, p - 9) : p]
        if "-" in before or "–" in before:
            starts.update(k for k in range(max(0, p - 9), p) if text[k].isdigit())
    for m in matches_at(_MONTH_SHAPES, text, starts):
        yield Hit(m.start(), m.end(), "DATE", True)
    if "月" in text:
        for shape in _ZH_SHAPES:
            for m in shape.finditer(text):
                yield Hit(m.start(), m.end(), "DATE", True)
    separated = num_date_matches(text)  # found once for rules.py's dates too
    for m in in_windows(_NUM_SHAPES, text, windows(separated, text, 8, 12), _NUM_SHAPE_NEED):
        yield Hit(m.start(), m.end(), "DATE", True)
    slashes = [m for m in separated if "/" in m.group()]
    if slashes:
        for m in in_windows(_PARTIAL, text, windows(slashes, text, 3, 3)):
            after = text[m.end() : m.end() + 1]
            if after in _ZH_NOT_DATE_AFTER or ratio_context(text, m.start(), m.end()):
                continue
            before = text[max(0, m.start() - 16) : m.start()]
            if _PARTIAL_BEFORE.search(before) or _PARTIAL_AFTER.match(text, m.end()):
                yield Hit(m.start(), m.end(), "DATE", True)
            elif _calendar_day(m.group()) and not _NOT_DATE_AFTER.match(text, m.end()):
                # Recall first: a bare day and month with no date word is still a date
                # unless it reads as a count, a ratio, a score or a dose (checked above).
                yield Hit(m.start(), m.end(), "DATE", False)


def grow_date(text: str, h: Hit) -> Hit:
    """A date hit with the weekday, "the", "mid-" or a time next to it."""
    s, e = h.start, h.end
    k = s
    while k > 0 and text[k - 1] in " \t,-":
        k -= 1
    if k < s and k > 0 and text[k - 1].isalpha():  # a word right before: a weekday?
        before = _WEEKDAY_BEFORE.search(text, max(0, s - 16), s)
        if before:
            s = before.start()
    elif k < s and k > 0 and text[k - 1].isdigit():  # a number right before: a time?
        t = _TIME_BEFORE.search(text, max(0, s - 9), s)
        if t:
            s = t.start()
    # a time after it starts with a digit, "at" or a weekday bracket within three characters
    ahead = text[e : e + 4]
    if ahead and ahead[0] in ", \t（(" and any(c.isdigit() or c in "a周" for c in ahead):
        after = _TIME_AFTER.match(text, e)
        if after:
            e = after.end()
    return Hit(s, e, h.type, h.strong) if (s, e) != (h.start, h.end) else h


# --- names ------------------------------------------------------------------------------

_EN_NAME_WORD = re.compile(rf"[{UP}][{LO}]+(?:[-'][{UP}][{LO}]+)*")
# After one name of a list, the next: "Okonkwo, Nakamura, Sørensen (Rad Onc), K. Flanagan"
_EN_LIST_NEXT = re.compile(
    rf"(?:[ \t]*\([^()\n]{{1,40}}\))?[ \t]*(?:,|;|&|and)[ \t]*(?:{TITLE_EN}[ \t]+)?({FULL})"
)
# A name with an age after it: "Ramon Roe, 61, ...", "Kofi Roe | 69 |", "Ann Roe (71)"
_EN_NAME_AGE = re.compile(
    rf"(?<![\w'])((?:[{UP}]\.[ \t]?)?[{UP}][{LO}]+(?:[-'][{UP}][{LO}]+)*"
    rf"(?:[ \t](?:\"[^\"\n]{{1,15}}\"[ \t])?(?:van|von|de|der|den|da|del|le|la)?[ \t]?[{UP}][{LO}]+(?:[-'][{UP}]?[{LO}]+)*){{1,3}})"  # noqa: E501
    rf"(?:,[ \t]*|[ \t]*\|[ \t]*|[ \t]*\()(?:\d{{1,3}}(?:[ \t]*(?:y|yo|y/o|M|F|years?)\b|[ \t]*[,)|])|[a-z]+-(?:year|yr)-old)"  # noqa: E501
)
# "Surname, Given" before a bracket, a colon or an age: "Osborne, Phyllis (99):"
_EN_COMMA_NAME = re.compile(
    rf"(?<![\w'])([{UP}][{LO}]+(?:-[{UP}][{LO}]+)?,[ \t]*[{UP}][{LO}]+(?:[ \t][A-Z]\.)?)"
    rf"(?=[ \t]*(?:\(|:|,[ \t]*\d))"
)
# Initials with a surname ("K. Flanagan", "E. M. Roe") and initials alone after a
# signing word ("by kl.", "- JS FY2", "Technician BH", "Initials: E.M.K.")
# (no look-behind at the start: it would turn off the engine's fast first-character scan)
_EN_INITIAL_NAME = re.compile(
    rf"[A-Z]\.[ \t]?(?:[A-Z]\.[ \t]?){{0,2}}([{UP}][{LO}]+(?:-[{UP}][{LO}]+)?)"
)
_EN_INITIALS = re.compile(
    r"(?:\b(?:by|Technician|Tech|Radiographer|Scribe|Nurse|RN|Initials:?)[ \t]+|[-–][ \t]+)"
    r"([A-Z]{2,3}|[a-z]{2}(?=\.?[ \t]*$|\.\n)|[A-Z](?:\.[A-Z]){1,3}\.?)"
    r"(?=[ \t]*(?:$|\n|[.,;)]|FY[12]|SHO|SpR|ST\d|CT\d|RN|NP)|[ \t]+FY|[ \t]+\d)"
)
_NOT_INITIALS = frozenset(
    {"MD", "RN", "NP", "DO", "PA", "FY", "ST", "CT", "MRI", "PET", "ICU", "GP"}
)
# "Dear Kate,", "Witness: Ann Roe (HCA)" are labels in rules.py; a letter's own
# closing line with only a name and a role after a comma is `SUFFIX_ANCHOR`.
_BRACKET_NAME = re.compile(rf"[ \t]*\(([{UP}][{LO}]+)\)")
_HAN_IN_BRACKETS = re.compile(rf"[A-Za-z][ \t]*[（(]([{HAN}·]{{2,8}})[）)]")
_TITLE_HAN = re.compile(rf"(?<![A-Za-z]){TITLE_EN}[ \t]*([{HAN}]{{1,3}})(?![{HAN}])")


def _en_ok(word: str, lex: Lexicon) -> bool:
    bare = word.strip(".,")
    return bool(bare) and bare not in lex.english_common and bare.title() not in lex.english_common


_AGE_AFTER = r"\d{1,3}(?:[ \t]*(?:y|yo|y/o|M|F|years?)(?![A-Za-z])|[ \t]*[,)|])"
# "(?:,[ \t]*|\|[ \t]*|\()\d{1,3}…": each branch starting with its literal (a fast scan)
_AGE_GATE = re.compile(rf",[ \t]*{_AGE_AFTER}|\|[ \t]*{_AGE_AFTER}|\({_AGE_AFTER}|-(?:year|yr)-old")
_COMMA_NAME_GATE = re.compile(rf",[ \t]*[{UP}][{LO}]+(?:[ \t][A-Z]\.)?[ \t]*[(:,]")


# Words of an institution or a department: a list of names never runs into them.
_LIST_NOT_NAME = frozenset(
    {
        "Hospital", "Hospice", "Infirmary", "Clinic", "Institute", "Centre", "Center", "Cancer",
        "Oncology", "Medical", "Health", "Trust", "University", "College", "School", "Department",
        "Dept", "Unit", "Service", "Services", "Surgery", "Practice", "Foundation", "NHS",
    }
)  # fmt: skip


def en_names(text: str, hits: list[Hit], cues: Cues) -> Iterator[Hit]:
    lex = lexicon()
    for m in in_windows(_EN_NAME_AGE, text, windows(_AGE_GATE, text, 70, 20)):
        words = m.group(1).replace('"', " ").split()
        if all(_en_ok(w, lex) or w in lex.names_en for w in words[:1]) and not any(
            w in lex.english_common and w not in lex.names_en for w in words
        ):
            yield Hit(m.start(1), m.end(1), "NAME", True)
    for m in in_windows(_EN_COMMA_NAME, text, windows(_COMMA_NAME_GATE, text, 30, 30)):
        words = m.group(1).replace(",", " ").split()
        if all(_en_ok(w, lex) for w in words):
            yield Hit(m.start(1), m.end(1), "NAME", False)
    for m in _EN_INITIAL_NAME.finditer(text):
        before = text[m.start() - 1 : m.start()]
        if not (before.isalnum() or before in "._") and _en_ok(m.group(1), lex):
            yield Hit(m.start(), m.end(), "NAME", False)
    # the cue words start the pattern: match there (a window scan tries every place)
    found = [*matches_at(_EN_INITIALS, text, (c.start() for c in cues["initials"]))]
    found += in_windows(_EN_INITIALS, text, windows(cues["grade"], text, 8, 4))
    for m in found:
        if m.group(1).upper().strip(".") not in _NOT_INITIALS:
            yield Hit(m.start(1), m.end(1), "NAME", True)
    if has_han(text):
        for p in (_HAN_IN_BRACKETS, _TITLE_HAN):
            for m in p.finditer(text):
                yield Hit(m.start(1), m.end(1), "NAME", True)
    # lists: every name after a found one, while the next is name-shaped; a name in
    # brackets after one ("Mrs. Roe (Adaeze)")
    for h in [h for h in hits if h.type == "NAME" and h.strong]:
        b = _BRACKET_NAME.match(text, h.end)
        if b and _en_ok(b.group(1), lex):
            yield Hit(b.start(1), b.end(1), "NAME", True)
        e = h.end
        for _ in range(12):
            nxt = _EN_LIST_NEXT.match(text, e)
            # capitals after a name's comma are a degree or a label ("MBBS", "DOB")
            if nxt is None:
                break
            first = nxt.group(1).split()[0]
            if not _en_ok(first, lex) or first.isupper():
                break
            if any(w in _LIST_NOT_NAME for w in nxt.group(1).split()):
                break  # "Dr Roe, Riverbend Cancer Institute": the place after the name
            yield Hit(nxt.start(1), nxt.end(1), "NAME", True)
            e = nxt.end(1)


# Chinese: a name before its sex ("鲍长庚，男，", "庞建平 男 66岁"), before an age in
# brackets ("巫马长青（79岁）"), written with the interpunct of transliterated and
# minority names ("阿依古丽·买买提"), and the next names of a list.
_ZH_NAME_SEX = re.compile(
    rf"(?:^|(?<=[\n\t 　：:，,。；;（(]))([{HAN}·]{{2,8}})[ \t]*[，,]?[ \t]*(?:[男女](?=[，,、/ \t性]|$|\d)|[FM]/\d)",  # noqa: E501
    re.M,
)
_ZH_NAME_AGE = re.compile(rf"([{HAN}]{{2,7}})[（(]\d{{1,3}}岁[）)]")
_ZH_DOT_NAME = re.compile(rf"[{HAN}]{{1,6}}·[{HAN}]{{1,8}}")
_ZH_LIST_NEXT = re.compile(
    rf"(?:[（(][^（()）\n]{{1,15}}[）)])?(?:[ \t]*[、，,；;][ \t]*|[ \t]+)(?=[{HAN}])"
)
_ZH_ROLE_AFTER = re.compile(
    r"主任医师|副主任医师|主治医师|主任|医生|医师|护士长|护士|教授|老师|药师|主治|技师"
)
# Family relations whose name need not start with a common surname: "侄子巴特尔",
# "女儿努尔比亚", "由丈夫吉克伍沙送入".
_ZH_RELATIONS = re.compile(
    r"(?:丈夫|妻子|儿子|女儿|长子|次子|长女|次女|侄子|侄女|外甥|孙子|孙女|女婿|儿媳|配偶|老伴|爱人|"
    r"父亲|母亲|哥哥|姐姐|弟弟|妹妹|之妻|之夫|其子|其女|翻译|陪护|联系人)[：:\s]*"
)
_ZH_NAME_STOP = set(
    "，,。；;：:、（()）\n\t 0123456789送陪来去在于已的是因为等及和与说签表示要求同意诉称代电手联携一今目现自近术精无未病既入出之接回讲反拒知不并均亦也曾将遂由被对向到"  # noqa: E501
)


def _strip_zh_label(text: str, s: int, e: int, lex: Lexicon) -> int:
    """Move `s` past a role or relation word that starts the run (患者, 患儿, 丈夫…)."""
    for t in _labels_longest_first():
        if text.startswith(t, s) and e - s - len(t) >= 2:
            return s + len(t)
    return s


@lru_cache(maxsize=1)
def _labels_longest_first() -> tuple[str, ...]:
    labels = {*lexicon().titles_zh, "患儿", "兹证明", "证明"}
    return tuple(sorted(labels, key=len, reverse=True))


# After a colon (or a table bar): a compound surname with its given name ("诊断：万俟雪"),
# and after a person label any short run of characters ("取材：尼玛", "姓名：冼国栋")
# that ends the value (spaces, a bracket, the line end).
_ZH_COLON_VALUE = re.compile(
    rf"[：:|][ \t]*([{HAN}]{{2,4}})(?=[ \t]{{2,}}|[ \t]*(?:[（(\n|]|$))", re.M
)
_ZH_PERSON_LABEL = re.compile(
    r"(?:姓名|患者|病人|受检者|受试者|患儿|家属|联系人|更正|签名|签字|[人者员师]|医生|护士|取材|记录|报告|"
    r"审核|翻译|术者|一助|二助|麻醉|交班|接班)[ \t]*$"
)
# A name alone at the end of a line after a wide gap: the signature of a nursing note.
_ZH_SIGNATURE = re.compile(rf"[ \t　]{{4,}}([{HAN}]{{2,4}})[ \t]*$", re.M)
_ZH_INITIALS = re.compile(r"(?:姓名缩写|缩写)[ \t]*[：:][ \t]*([A-Z]{2,4})(?![A-Za-z])")
_ZH_LATIN_NAME = re.compile(
    rf"(?:姓名|患者|病人|受检者|联系人|家属)[ \t]*[：:][ \t]*([{UP}][{LO}]+(?:[ \t\-][{UP}][{LO}]+){{1,2}})"  # noqa: E501
)
_MASKED_CARD = re.compile(r"(?<!\d)\d{4}(?:[ \t-]?(?:\d{4}|[*＊xX]{4})){2,3}(?!\d)")
_SERIAL_WITH_SN = re.compile(r"(?<![\w-])[A-Za-z0-9]+-(?:SN|S/N)-[A-Za-z0-9][A-Za-z0-9-]*")
_SUBJECT_ID = re.compile(
    r"(?i:\b(?:subject|participant|sample|specimen|case)s?)[ \t]+(?:no\.?|#|id)?[ \t]*"
    r"([A-Z]{1,4}-?\d{3,}(?:-[A-Z0-9]+)*|\d{3,}-\d{2,})(?![\w-])"
)


_MASK_GATE = re.compile(r"[*＊xX]{4}")


def numbers(text: str, low: str, cues: Cues) -> Iterator[Hit]:
    if "****" in text or "＊＊＊＊" in text or "xxxx" in low:
        for m in in_windows(_MASKED_CARD, text, windows(_MASK_GATE, text, 12, 20)):
            if any(c in m.group() for c in "*＊xX"):
                yield Hit(m.start(), m.end(), "OTHER", True)
    for m in matches_at(_SUBJECT_ID, text, (c.start() for c in cues["subject"])):
        yield Hit(m.start(1), m.end(1), "OTHER", True)
    if "SN-" in text or "S/N-" in text:
        for m in _SERIAL_WITH_SN.finditer(text):
            yield Hit(m.start(), m.end(), "DEVICE_ID", True)


def zh_names(text: str, hits: list[Hit]) -> Iterator[Hit]:
    lex = lexicon()
    for m in _ZH_COLON_VALUE.finditer(text):
        s, e = m.span(1)
        value = text[s:e]
        compound = text[s : s + 2] in lex.compound_surnames_zh
        labelled = _ZH_PERSON_LABEL.search(text, max(0, m.start() - 6), m.start())
        if (compound or labelled) and not common_word(value) and value not in lex.clinical:
            yield Hit(s, e, "NAME", True)
    for m in _ZH_SIGNATURE.finditer(text):
        if zh_surname_len(text, m.start(1), lex) and not common_word(m.group(1)):
            yield Hit(m.start(1), m.end(1), "NAME", True)
    for p in (_ZH_INITIALS, _ZH_LATIN_NAME):
        for m in p.finditer(text):
            yield Hit(m.start(1), m.end(1), "NAME", True)
    for pattern in (_ZH_NAME_SEX, _ZH_NAME_AGE):
        for m in pattern.finditer(text):
            s, e = m.span(1)
            s = _strip_zh_label(text, s, e, lex)
            if 2 <= e - s <= 8 and not common_word(text[s:e]):
                yield Hit(s, e, "NAME", True)
    for m in _ZH_DOT_NAME.finditer(text):
        yield Hit(m.start(), m.end(), "NAME", True)
    for m in _ZH_RELATIONS.finditer(text):
        s = m.end()
        e = s
        while (
            e < len(text)
            and e - s < 5
            and text[e] not in _ZH_NAME_STOP
            and "\u4e00" <= text[e] <= "\u9fff"
        ):
            e += 1
        if 2 <= e - s <= 4 and not common_word(text[s:e]) and not common_word(text[s : s + 2]):
            yield Hit(s, e, "NAME", True)
    # lists: 参加人员：宇文教授（胸外科）、黄副主任医师、段其昌（影像科）、诸葛明
    for h in [h for h in hits if h.type == "NAME" and has_han(text[h.start : h.end])]:
        e = h.end
        for _ in range(12):
            role = _ZH_ROLE_AFTER.match(text, e)
            if role:
                e = role.end()
            nxt = _ZH_LIST_NEXT.match(text, e)
            if nxt is None:
                break
            s = nxt.end()
            sl = zh_surname_len(text, s, lex)
            if not sl:
                break
            n = s + sl
            while n < len(text) and n - s < 4 and "\u4e00" <= text[n] <= "\u9fff":
                if _ZH_ROLE_AFTER.match(text, n) or text[n] in "（(":
                    break
                n += 1
            yield Hit(s, n, "NAME", True)
            e = n


# --- addresses --------------------------------------------------------------------------

_POSTCODE = (
    r"[A-Z]{1,2}\d[A-Z\d]?[ ]\d[A-Z]{2}"  # UK
    r"|[A-Z]\d{2}[ ][A-Z0-9]{4}"  # Irish Eircode
    r"|[A-Z]{2}[ ]\d{5}(?:-\d{4})?"  # US state and ZIP
    r"|\d{5,6}"  # ZIP, PLZ, Chinese postcode
)
# What may follow a street or a place, comma by comma: a unit, a town, a county, a
# postcode ("Suite 300, Chicago, IL 60614", "Co. Cork P31 X2N8", "Guangdong 518057").
_ADDRESS_TAIL = re.compile(
    # after a comma anything of an address; after a space only a postcode
    rf"(?:,[ \t]*(?:(?:Suite|Unit|Flat|Apt|Floor|Room|Block|Tower)\.?[ \t]*[\w\-]+"
    rf"|Co\.[ \t]*[{UP}][{LO}]+"
    rf"|(?:{_POSTCODE})"
    rf"|[{UP}][{LO}']+(?:[ \t\-][{UP}][{LO}']+){{0,2}}(?:[ \t]+(?:{_POSTCODE}))?)"
    rf"|[ \t]+(?:{_POSTCODE}))(?![\w])"
)
# The start of an address before a numbered street: "Flat 3, 41 …", "Unit 2304, Tower B, …"
_ADDRESS_HEAD = re.compile(
    rf"(?:(?:Flat|Unit|Apt|Apartment|Suite|Room|Block|Blk|Tower)\.?[ \t]*[\w\-]+,?[ \t]*"
    rf"|[{UP}][{LO}]+(?:[ \t][{UP}][{LO}]+){{0,2}}[ \t](?:House|Building|Court|Cottage|Lodge|Farm|Tower|Mansions|Estate),?[ \t]*)+$"  # noqa: E501
)
_STREET_WORDS = (
    r"Street|Road|Avenue|Ave|Lane|Drive|Boulevard|Blvd|Court|Way|Place|Terrace|Close|Crescent|"
    r"Highway|Parkway|Square|Row|Gardens|Walk|Grove|Mews"
)
# A street named without a number ("Church Lane", "N. Lakeview Ave"), a house name
# before it ("Rosewood Cottage, Church Lane"), a numbered European street
# ("Kastanienallee 12", "Via Roma 5") and the postcode and town after it ("10435 Berlin").
EN_STREETS = [
    re.compile(
        rf"(?<![\w])(?:\d{{1,5}}[A-Za-z]?[ \t]+)?(?:[NSEW]\.?[ \t]+)?(?:[{UP}][{LO}']+[ \t]+){{1,3}}"  # noqa: E501
        rf"(?:{_STREET_WORDS})\.?(?![\w])"
    ),
    re.compile(rf"(?<![\w])[{UP}][{LO}]+[ \t](?:Cottage|House|Lodge|Farm|Manor|Mansions)(?=,)"),
    re.compile(
        rf"(?<![\w])(?:[{UP}][{LO}]+(?:straße|strasse|str\.|allee|weg|platz|gasse|ring|damm|ufer|laan|straat|gatan|vej)"
        rf"|(?:Via|Viale|Rue|Calle|Avenida|Rua|Piazza|Plaza)[ \t](?:[{UP}{LO}]+[ \t]){{0,3}}[{UP}][{LO}]+)"  # noqa: E501
        rf"[ \t]\d{{1,4}}[a-z]?(?:,[ \t]*\d{{4,5}}[ \t]+[{UP}][{LO}]+)?"
    ),
]
# A town after a residence word: "lives in Whitby", "two children in Sunderland",
# "a care home in Whitby", "near Pitlochry", "from Lower Slaughter, Gloucestershire".
_TOWN = rf"([{UP}][{LO}]+(?:[ \t\-][{UP}][{LO}]+){{0,2}})"
EN_TOWN = re.compile(
    rf"(?i:\b(?:lives?|living|resides?|residing|based|born|moved|home|house|flat|family|children|"
    rf"settled|grew up|retired)\b)[^.\n;]{{0,30}}?\b(?:in|at|near|to)[ \t]+{_TOWN}"
    rf"|(?i:\b(?:near|from|housing team of|council of))[ \t]+{_TOWN}(?=[ \t]*[,.;)\n]|[ \t]+housing)"  # noqa: E501
)


def _place_ok(value: str, lex: Lexicon) -> bool:
    words = value.replace("-", " ").split()
    # "Lower Slaughter": one uncommon word makes a place name
    return any(
        w not in lex.english_common and w.title() not in lex.english_common for w in words
    ) and (value.lower() not in lex.clinical_lower)


def addresses(text: str, cues: Cues) -> Iterator[Hit]:
    lex = lexicon()
    for p, kind in zip(EN_STREETS, ("street", "house", "foreign_street"), strict=True):
        for m in in_windows(p, text, windows(cues[kind], text, 70, 30)):
            yield Hit(m.start(), m.end(), "ADDRESS", False)
    for m in matches_at(EN_TOWN, text, (c.start() for c in cues["town"])):
        g = next(i for i in (1, 2, 3) if m.group(i))
        if _place_ok(m.group(g), lex):
            yield Hit(m.start(g), m.end(g), "ADDRESS", False)


def grow_address(text: str, h: Hit) -> Hit:
    """An English address hit with its units, town, county and postcode."""
    lex = lexicon()
    s, e = h.start, h.end
    head = _ADDRESS_HEAD.search(text, max(0, s - 60), s)
    if head:
        s = head.start()
    for _ in range(6):
        m = _ADDRESS_TAIL.match(text, e)
        if not m or "\n" in m.group():
            break
        words = re.sub(r"[,\d]", " ", m.group()).split()
        if words and all(w in lex.english_common for w in words):
            break  # "West Yorkshire" goes on, ", Then we" stops
        e = m.end()
    return Hit(s, e, h.type, h.strong) if (s, e) != (h.start, h.end) else h


# --- organisations ----------------------------------------------------------------------

# A workplace after an occupation: "cleaner at X", "pharmacist at X", "lagger at X",
# "teacher at X", "employer (X", "cabin crew for X".
EN_WORKPLACE = re.compile(
    rf"\b(?:[A-Za-z][a-z]*(?:er|or|ist|ian|ant|man|woman|wright|smith|crew|staff|nurse)|[Ee]mployer|[Ee]mployed|[Ww]orks?)"
    rf"(?:[ \t]+(?:at|for|with)[ \t]+|[ \t]*\([ \t]*)([{UP}](?:[\w&'.\-]*(?:[ \t]+(?:of|No\.|&|and|the)?)?[ \t]*(?=[{UP}\d]|$)|[\w&'.\-]*)"  # noqa: E501
    rf"(?:(?:[{UP}][\w&'.\-]*|\d+)(?:[ \t]+(?:of|No\.|&|and|the)?)?[ \t]*){{0,6}})"
)
_NOT_OCCUPATION = frozenset(
    {"after", "later", "other", "under", "over", "either", "prior", "per", "for", "or", "er",
     "register", "number", "letter", "order", "paper", "ever", "never", "whether", "together",
     "monitor", "doctor", "consultant", "clinician", "physician", "registrar"}
)  # fmt: skip
EN_ORG_NAMES = re.compile(
    rf"(?<![\w])(?:(?:The[ \t]+)?(?:(?:[{UP}][\w&'\-]*|&)[ \t]+){{1,4}}(?:Nursery|Airlines?|Airways|LLP|[Ss]hipyard|"  # noqa: E501
    rf"Works|B&B|Hotel|Restaurant|Cafe|Café|Pharmacy|Stores?|Supermarket|Mills?|Mine|Colliery|Farm|"
    rf"Garage|Salon|Bakery|Brewery|Laundry|Depot)|University of[ \t]+[{UP}][{LO}]+)(?![\w])"
)
_ORG_TOWN = re.compile(rf",[ \t]+{_TOWN}(?=[ \t]*[;.)\n])")


_WORKPLACE_GATE = re.compile(rf"(?: at| for| with|\() ?[{UP}]")
# A full stop and a space end the name, except after an initial or "No"/"Co"/"St"
# ("U.S. Steel", "No. 2 Middle School").
_SENTENCE_END = re.compile(r"(?<![A-Z])(?<!\bNo)(?<!\bCo)(?<!\bSt)\.[ \t]")


def organizations(text: str, cues: Cues) -> Iterator[Hit]:
    lex = lexicon()
    for m in in_windows(EN_WORKPLACE, text, windows(_WORKPLACE_GATE, text, 40, 90)):
        lead = m.group().split()[0].lower()
        if lead in _NOT_OCCUPATION:
            continue
        value = _SENTENCE_END.split(m.group(1), maxsplit=1)[0].rstrip(" .")
        words = value.split()
        while words and words[-1] in ("of", "and", "the", "&", "No."):
            words.pop()
        # a hospital after an occupation is the employer ("cleaner at X Hospital")
        if not words or not _place_ok(words[0], lex):
            continue
        value = " ".join(words)
        if text.startswith(value, m.start(1)):
            end = m.start(1) + len(value)
            yield Hit(m.start(1), end, "ORGANIZATION", True)
            town = _ORG_TOWN.match(text, end)
            if town and _place_ok(town.group(1), lex):
                yield Hit(town.start(1), town.end(1), "ADDRESS", True)
    for m in in_windows(EN_ORG_NAMES, text, windows(cues["org"], text, 80, 30)):
        yield Hit(m.start(), m.end(), "ORGANIZATION", True)


# --- what must survive ------------------------------------------------------------------

# Departments (病理科, 麻醉科, 胸外科), the treating hospital (江城市肿瘤医院), drug
# names built from a salt, a form or a class suffix (枸橼酸莫沙必利, 康复新液,
# 白蛋白结合型紫杉醇) and treatment words (预防性全脑照射): the keep-list's own shapes.
PROTECTED = re.compile(
    rf"(?:内|外|妇|儿|病理|放疗|放射|影像|麻醉|检验|药剂|肿瘤|急诊|核医学|超声|介入|康复|营养|心理|眼|口腔|"
    rf"皮肤|耳鼻喉|呼吸|消化|泌尿|血液|心血管|神经|重症|医学|胸|疼痛|输血)科"
    rf"|(?<=[：:\s，,、（(于在至转赴到])[{HAN}]{{2,10}}?(?:医院|卫生院)"
    rf"|(?:盐酸|枸橼酸|甲磺酸|马来酸|硫酸|磷酸|醋酸|琥珀酸|酒石酸|苯磺酸|富马酸|注射用|复方)[{HAN}]{{2,8}}?(?=[片胶颗注\s\d，,。；;+（(]|$)"
    rf"|[{HAN}]{{1,6}}结合型(?:[{HAN}]{{2,6}})?"
    rf"|[{HAN}]{{2,6}}?(?:口服液|注射液|含漱液|胶囊|颗粒|缓释片|肠溶片|新液|合剂|糖浆)"
    rf"|[{HAN}]{{1,5}}(?:替尼|单抗|紫杉醇|他滨|替康|比星|铂|霉素|沙星|司琼|米松|尼松|必利|拉唑|普利|沙坦|他汀)"
    rf"|(?:预防性)?[{HAN}]{{0,3}}(?:照射|放疗|化疗)"
    # a side or "whole" before an organ (左乳, 右肺, 全喉, 全腦): anatomy, not a surname
    rf"|[左右双雙全单單](?:乳|肺|颈|頸|喉|脑|腦|肝|肾|腎|眼|耳|侧|側|叶|葉|腿|臂|手|足|膝|髋|肩|胸|腹|卵巢|附件|甲状腺|锁骨|腋|半结肠)"
    # regions, types, proteins and alkaloids: 骶前, 淋巴引流区, 弥漫型, 白蛋白, 长春花碱
    rf"|骶前|骶尾|[{HAN}]{{0,6}}引流区|[{HAN}]{{1,3}}型(?=[胃癌，,。；\s]|$)|[{HAN}]{{1,3}}蛋白|[{HAN}]{{1,4}}(?:花碱|石散)"
)


# Clinical shapes in any language: a fusion gene (SS18::SSX1, EML4::ALK), a TNM stage
# read on MRI or after treatment (mrN1b, ypT2, ycN0), a trial by its group's name and
# number (KEYNOTE-522, JCOG0802, RTOG 0617), a score named after its authors
# ("Cockcroft-Gault", "Child-Pugh" before a value or alone).
_FUSION = re.compile(r"[A-Z0-9]{2,8}::[A-Z][A-Z0-9]{1,7}")
_TNM_PREFIXED = re.compile(
    r"[mry](?<![A-Za-z0-9][mry])(?:r|p|c|pc)[TNM][0-4x](?:[a-d]|mi|is)?(?![A-Za-z0-9])"
)
_TRIAL_GROUPS = (
    "KEYNOTE", "CheckMate", "JCOG", "RTOG", "NRG", "ECOG", "SWOG", "CALGB", "EORTC", "IMpower",
    "IMbrave", "DESTINY", "MONALEESA", "PALOMA", "MONARCH", "FLAURA", "ADAURA", "NSABP", "GOG",
    "ACOSOG", "TROG", "CONKO", "PRODIGE", "ESPAC", "KATHERINE", "APHINITY", "CLEOPATRA",
    "OlympiA", "PAOLA", "PACIFIC", "NCCTG", "JAVELIN", "CAPItello", "TROPiCS", "ASCENT",
    "EMERALD", "POSEIDON", "HIMALAYA", "LEAP", "CSCO", "CTONG",
)  # fmt: skip
_TRIAL = re.compile(
    rf"[A-Z](?<![A-Za-z0-9][A-Z])(?<={'|'.join(sorted({t[0] for t in _TRIAL_GROUPS}))})"
    rf"(?:{'|'.join(t[1:] for t in sorted(_TRIAL_GROUPS, key=len, reverse=True))})"
    r"[ \-]?\d{1,5}[A-Z]?(?![A-Za-z0-9])"
)
# A type or grade named after its author in Chinese (程氏II型), a score after a Latin
# name (Braden评分); an admin chain before a hospital is an address (苏州市姑苏区社区医院):
# the kept hospital starts after it.
_PROTECTED_ZH_MORE = re.compile(
    rf"[{HAN}]{{1,2}}氏(?:[IVX]+|[0-9]|[一二三四五])[型级級期度]"
    rf"|[A-Z][A-Za-z\-]{{2,20}}[ \t]?(?:评分|評分|量表|分级|分級|指数|指數)"
)
# (round 7: also a prefecture and county, a county or town alone, a city after 当地)
_CHAIN_BEFORE_HOSPITAL = re.compile(
    rf"(?:[{HAN}]{{0,4}}?[在于於至转赴到已])?(?:[{HAN}]{{2,3}}市[{HAN}]{{1,4}}?[区區县縣]"
    rf"|(?:[{HAN}]{{2,4}}?[州市])?[{HAN}]{{2,4}}?[县縣镇鎮乡鄉]|当地[{HAN}]{{2,3}}市)"
)


def protected(text: str) -> Iterator[tuple[int, int, str]]:
    scans = (_TNM_PREFIXED, _TRIAL, _FUSION) if "::" in text else (_TNM_PREFIXED, _TRIAL)
    for p in scans:
        for m in p.finditer(text):
            yield m.start(), m.end(), "clinical"
    if not has_han(text):
        return
    for m in PROTECTED.finditer(text):
        s = m.start()
        if m.group().endswith(("医院", "卫生院")):
            chain = _CHAIN_BEFORE_HOSPITAL.match(text, s)
            if chain and chain.end() < m.end() - 2:
                s = chain.end()
        yield s, m.end(), "clinical"
    for m in _PROTECTED_ZH_MORE.finditer(text):
        yield m.start(), m.end(), "clinical"


# --- cue words ---------------------------------------------------------------------------
# The words the rules above need nearby, found in two prefix-tree scans (one of the
# lower-cased text, one case-sensitive) instead of one scan per rule.

Cues = dict[str, list[re.Match[str]]]
_WORD_END = frozenset({"town", "street", "org"})  # cue words that must end a word
_LOW_CUES: dict[str, str] = {
    **dict.fromkeys(
        [
            "live",
            "lives",
            "living",
            "reside",
            "resides",
            "residing",
            "based",
            "born",
            "moved",
            "home",
            "house",
            "flat",
            "family",
            "children",
            "settled",
            "grew",
            "retired",
            "near",
            "from",
        ],
        "town",
    ),
    **dict.fromkeys(
        ["by ", "technician", "tech ", "radiographer", "scribe", "nurse", "rn ", "initials"],
        "initials",
    ),
    **dict.fromkeys(["subject", "participant", "sample", "specimen", "case"], "subject"),
}
_TEXT_CUES: dict[str, str] = {
    **dict.fromkeys(_STREET_WORDS.split("|"), "street"),
    **dict.fromkeys(["FY1", "FY2", "SHO", "SpR"], "grade"),
    **dict.fromkeys(["Cottage,", "House,", "Lodge,", "Farm,", "Manor,", "Mansions,"], "house"),
    **dict.fromkeys(
        [
            "straße",
            "strasse",
            "str.",
            "allee",
            "weg",
            "platz",
            "gasse",
            "ring",
            "damm",
            "ufer",
            "laan",
            "straat",
            "gatan",
            "vej",
            "Via",
            "Viale",
            "Rue",
            "Calle",
            "Avenida",
            "Rua",
            "Piazza",
            "Plaza",
        ],
        "foreign_street",
    ),
    **dict.fromkeys(
        [
            "Nursery",
            "Airline",
            "Airlines",
            "Airways",
            "LLP",
            "Shipyard",
            "shipyard",
            "Works",
            "B&B",
            "Hotel",
            "Restaurant",
            "Cafe",
            "Café",
            "Pharmacy",
            "Store",
            "Stores",
            "Supermarket",
            "Mill",
            "Mills",
            "Mine",
            "Colliery",
            "Farm",
            "Garage",
            "Salon",
            "Bakery",
            "Brewery",
            "Laundry",
            "Depot",
            "University",
        ],
        "org",
    ),
}


def _word_start_trie(terms: dict[str, str]) -> str:
    """`trie_pattern(terms)` matching only where no ASCII letter comes before: every rule
    reading these cues needs its word to start there ("\\b"), and no cue word holds the
    start of another word (only a trailing space), so no cue it finds is lost. The check
    sits after each first letter so the scan can still skip to those letters."""
    first = sorted({t[0] for t in terms})
    if any(len(t) < 2 for t in terms):
        raise ValueError("cue words need two characters or more")
    return (
        "(?:"
        + "|".join(
            f"{re.escape(c)}(?<![A-Za-z]{re.escape(c)})"
            f"(?:{trie_pattern(t[1:] for t in terms if t[0] == c)})"
            for c in first
        )
        + ")"
    )


# (case-blind cues are matched at the start of a word: see `_word_start_trie`)
_LOW_CUE_RE = re.compile(_word_start_trie(_LOW_CUES))
_TEXT_CUE_RE = re.compile(trie_pattern(_TEXT_CUES))


def cues(text: str, low: str) -> Cues:
    out: Cues = {k: [] for k in (*_LOW_CUES.values(), *_TEXT_CUES.values())}
    for source, pattern, kinds in ((low, _LOW_CUE_RE, _LOW_CUES), (text, _TEXT_CUE_RE, _TEXT_CUES)):
        n = len(source)
        for m in pattern.finditer(source):
            kind = kinds[m.group()]
            if kind in _WORD_END and m.end() < n and source[m.end()].isalnum():
                continue
            if kind == "foreign_street" and not re.match(r"[ \t]\d", source[m.end() : m.end() + 2]):
                continue
            out[kind].append(m)
    return out


def detect(text: str, hits: list[Hit], low: str | None = None) -> list[Hit]:
    """Hits found by context, and the given hits grown; returns the new list."""
    low = ascii_lower(text) if low is None else low
    grown = [
        grow_date(text, h)
        if h.type == "DATE"
        else grow_address(text, h)
        if h.type == "ADDRESS" and text[h.start : h.end].isascii()
        else h
        for h in hits
    ]
    found = cues(text, low)
    new: list[Hit] = [
        *dates(text),
        *en_names(text, grown, found),
        *addresses(text, found),
        *organizations(text, found),
        *numbers(text, low, found),
    ]
    new = [grow_date(text, h) if h.type == "DATE" else h for h in new]
    new = [grow_address(text, h) if h.type == "ADDRESS" else h for h in new]
    if has_han(text):
        new += zh_names(text, grown + new)
    return _join_addresses(text, grown + new)


def _join_addresses(text: str, hits: list[Hit]) -> list[Hit]:
    """Address hits only a comma apart become one ("7 Mill Lane, Otley" and
    "West Yorkshire LS21 3AB"): the comma between them is part of the address."""
    places = sorted((h for h in hits if h.type == "ADDRESS"), key=lambda h: h.start)
    joined: list[Hit] = []
    for a, b in itertools.pairwise(places):
        gap = text[a.end : b.start]
        if a.end <= b.start and len(gap) <= 3 and gap.strip(" ,\t") == "":
            joined.append(Hit(a.start, b.end, "ADDRESS", a.strong or b.strong))
    return hits + joined
