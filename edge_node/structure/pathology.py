"""Pathology reports (lung first; other organs read by the same rules): entity rules
and field assembly.

Every rule works on the normalised text (`text.normalize`: one character for one),
so a match's offsets are evidence offsets in the input. Vocabulary (histology
names and their ICD-O-3 codes, grade words, cue words, headings) lives in
`data/pathology.json`. Rules read both languages whatever `lang` says, because
reports mix them ("EGFR 野生型").

Decisions a reader of the output should know (details in devset/README-pathology.md):
- histology category -> one ICD-O-3 code per category (8140/3 for every invasive
  adenocarcinoma subtype, MIA included); AIS -> adenocarcinoma 8140/2 (behaviour code);
  LCNEC -> other_malignant 8013/3; benign with a code only where ICD-O has one;
- ranges of grade give the worse grade; pT/pN/pM only with a p/yp prefix or as a
  T..N.. group (a "cT" clinical stage is not a pathological stage);
- PD-L1 "<1%" -> 0; a range ("1-49%") or a bound ("≥50%") -> null;
- lymph nodes: station rows are summed (each station once); a total is used only
  when no station is listed; "淋巴结未见转移" without a count gives no number.
"""

from __future__ import annotations

import itertools
import json
import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from edge_node.structure.core import Extraction, Mention
from edge_node.structure.text import Section, clauses, data, word_alternation

FIELDS: tuple[str, ...] = (
    "histology",
    "icdo3_morphology",
    "differentiation",
    "tumor_size_cm",
    "laterality",
    "lobe",
    "pT",
    "pN",
    "pM",
    "lymph_nodes_examined",
    "lymph_nodes_positive",
    "margin",
    "visceral_pleural_invasion",
    "lymphovascular_invasion",
    "egfr",
    "alk",
    "pdl1_tps_percent",
)

_NUM = r"\d+(?:\.\d+)?"


def _lex() -> dict[str, Any]:
    lex: dict[str, Any] = data("pathology.json")
    return lex


def _alt(words: Iterable[str]) -> str:
    """Alternation, longest first; ASCII words get letter boundaries; a space matches
    any white space ("adenosquamous  carcinoma"). A prefix tree (`word_alternation`)."""
    return word_alternation(set(words), flexible_space=True)


def _words(s: str) -> str:
    """A vocabulary match with its spacing made single (the key it was built from)."""
    return re.sub(r"\s+", " ", s)


# ---------------------------------------------------------------- zones


@lru_cache(maxsize=8)
def _clause_index(norm: str) -> tuple[list[int], list[tuple[int, int]]]:
    spans = clauses(norm)
    return [a for a, _ in spans], spans


def _clause_at(norm: str, pos: int) -> tuple[int, int]:
    """`text.clause_at`, with the clause list computed once per text (it is asked
    for every candidate), and never wider than 300 characters around `pos` so a
    report without punctuation stays linear."""
    starts, spans = _clause_index(norm)
    i = bisect_right(starts, pos) - 1
    if i >= 0 and spans[i][0] <= pos < spans[i][1]:
        return max(spans[i][0], pos - 300), min(spans[i][1], pos + 300)
    return pos, pos


@lru_cache(maxsize=1)
def _heading_re() -> tuple[re.Pattern[str], dict[str, str]]:
    spec = _lex()["headings"]
    names: dict[str, str] = {}
    for zone, words in spec.items():
        if zone == "comment":
            continue
        for w in words:
            names[w] = zone
    pattern = re.compile(
        r"(?:^|(?<=[\n。]))[ \t#*\[(]*(?:[一二三四五六七八九十\d]+[.,)]\s*)?"
        r"(" + "|".join(re.escape(w) for w in sorted(names, key=len, reverse=True)) + r")"
        r"[ \t\])]*(?::|\n)"
        r"|(?:^|(?<=[\n。]))[ \t]*\[(" + "|".join(re.escape(w) for w in names) + r")\]",
        re.MULTILINE,
    )
    return pattern, names


def _zones(norm: str) -> list[tuple[int, int, str]]:
    """(start, end, zone) of the report's parts by their headings ("病理诊断:")."""
    pattern, names = _heading_re()
    heads = [(m.start(), m.end(), names[m.group(1) or m.group(2)]) for m in pattern.finditer(norm)]
    out = []
    prev, zone = 0, "body"
    for start, end, name in heads:
        out.append((prev, start, zone))
        prev, zone = end, name
    out.append((prev, len(norm), zone))
    # a clinical note ends at the next labelled line ("Clinical details: …\nMacro: …")
    cut = []
    for a, b, z in out:
        nxt = _NEXT_LABEL.search(norm, a, b) if z == "clinical" else None
        cut += [(a, nxt.start(), z), (nxt.start(), b, "body")] if nxt else [(a, b, z)]
    return cut


_NEXT_LABEL = re.compile(r"(?<=\n)[ \t]*[a-z\u4e00-\u9fff][a-z /\u4e00-\u9fff]{1,28}:")


def _rank(zones: list[tuple[int, int, str]], pos: int) -> int:
    ranks: dict[str, int] = _lex()["section_rank"]
    for a, b, z in zones:
        if a <= pos < b:
            return ranks.get(z, 1)
    return 1


# ---------------------------------------------------------------- histology


@lru_cache(maxsize=1)
def _histology_re() -> re.Pattern[str]:
    return re.compile(_alt(_lex()["histology"]))


@lru_cache(maxsize=1)
def _benign_re() -> re.Pattern[str]:
    return re.compile(_alt(_lex()["benign_statements"]["phrases"]))


def _find_histology(norm: str) -> list[Mention]:
    table = _lex()["histology"]
    out = [
        Mention("histology", m.start(), m.end(), tuple(table[_words(m.group(0))]))
        for m in _histology_re().finditer(norm)
    ]
    out += [
        Mention("benign_statement", m.start(), m.end(), ("benign", None), context=False)
        for m in _benign_re().finditer(norm)
    ]
    return out


# ---------------------------------------------------------------- differentiation


@lru_cache(maxsize=1)
def _diff_re() -> tuple[re.Pattern[str], re.Pattern[str]]:
    spec = _lex()["differentiation"]
    phrases = re.compile(_alt(spec["phrases"]))
    grades = re.compile(
        r"(?:(?<![a-z])(?:histologic(?:al)? grade|iaslc grade|nottingham grade|who grade|grade)"
        r"|组织学分级|分级)\s*:?\s*(?:g)?([1-4]|iv|i{1,3})(?![0-9a-z])\s*级?"
        r"|(?<![a-z0-9])g([1-4])(?![0-9a-z])"
    )
    return phrases, grades


def _find_differentiation(norm: str) -> list[Mention]:
    spec = _lex()["differentiation"]
    phrases, grades = _diff_re()
    out = [
        Mention(
            "differentiation",
            m.start(),
            m.end(),
            spec["phrases"][_words(m.group(0))],
            context=False,
        )
        for m in phrases.finditer(norm)
    ]
    for m in grades.finditer(norm):
        g = m.group(1) or m.group(2)
        out.append(Mention("differentiation", m.start(), m.end(), spec["grades"][g], context=False))
    # a misspelt grade word ("Moderatley differentiated") read by its stem
    for m in _DIFF_TYPO.finditer(norm):
        if not any(x.start < m.end() and m.start() < x.end for x in out):
            value = {"w": "well", "m": "moderate", "p": "poor"}[m.group(1)[0]]
            out.append(Mention("differentiation", m.start(), m.end(), value, context=False))
    return out


_DIFF_TYPO = re.compile(
    # "moderately differen-\ntiated": a word broken at the line's end
    r"(?<![a-z])(wel{1,2}|mod[a-z]{4,9}|poo?r[a-z]{0,4})[\s-]+"
    r"dif{1,2}(?:[a-z]|-[ \t]*\n[ \t]*){5,12}ed(?![a-z])"
)


# ---------------------------------------------------------------- laterality / lobe


@lru_cache(maxsize=1)
def _site_res() -> list[tuple[re.Pattern[str], str]]:
    organs = _lex()["paired_organs"]
    zh_org = "|".join(re.escape(w) for w in sorted(organs["zh"], key=len, reverse=True))
    en_org = "|".join(re.escape(w) for w in sorted(organs["en"], key=len, reverse=True))
    abbrev = "|".join(_lex()["lobe"]["abbrev"])
    return [
        # side + lobe
        (re.compile(r"([左右])\s*(?:侧)?\s*(?:肺)?\s*([上中下])\s*(?:叶|肺(?!门))"), "zh_both"),
        (re.compile(r"([左右])\s*(?:侧)?\s*肺?\s*(?:上叶)?\s*舌段"), "zh_lingula"),
        (
            re.compile(
                r"(?<![a-z])(right|left),?\s+(?:lung,?\s+)?(upper|middle|lower)\s+lobe"
                r"|(?<![a-z])(upper|middle|lower)\s+lobe\s+of\s+(?:the\s+)?(right|left)\s+lung"
            ),
            "en_both",
        ),
        (re.compile(r"(?<![a-z])(" + abbrev + r")(?![a-z])"), "abbrev"),
        (re.compile(r"(?<![a-z])lingula(?:r)?(?![a-z])"), "en_lingula"),
        # side only (paired organs)
        (re.compile(r"([左右])\s*(?:侧)?\s*(?:" + zh_org + r")(?!门)"), "zh_side"),
        (re.compile(r"(?<![a-z])(right|left),?\s+(?:" + en_org + r")(?![a-z])"), "en_side"),
        (
            re.compile(
                r"(?:^|(?<=[\s;,(]))(lung|breast|kidney|pleural fluid|pleural effusion|pleura),\s+"
                r"(right|left)(?![a-z])"
            ),
            "en_side2",
        ),
        (re.compile(r"laterality\s*:\s*(right|left)"), "en_side"),
        # lobe only
        (re.compile(r"肺\s*([上中下])\s*叶"), "zh_lobe"),
        (re.compile(r"(?<![a-z])(upper|middle|lower)\s+lobe"), "en_lobe"),
    ]


def _find_site(norm: str) -> list[Mention]:
    lobes = _lex()["lobe"]
    sides = _lex()["side"]
    lobe_word = {**lobes["zh"], **lobes["en"]}
    side_word = {**sides["zh"], **sides["en"]}
    out: list[Mention] = []
    taken: list[tuple[int, int]] = []
    for rx, how in _site_res():
        for m in rx.finditer(norm):
            if any(a < m.end() and m.start() < b for a, b in taken):
                continue
            side: str | None = None
            lobe: str | None = None
            if how == "zh_both":
                side, lobe = side_word[m.group(1)], lobe_word[m.group(2)]
            elif how == "en_both":
                if m.group(1):
                    side, lobe = side_word[m.group(1)], lobe_word[m.group(2)]
                else:
                    side, lobe = side_word[m.group(4)], lobe_word[m.group(3)]
            elif how == "zh_lingula":
                side, lobe = side_word[m.group(1)], "upper"
            elif how == "en_lingula":
                side, lobe = "left", "upper"
            elif how == "abbrev":
                side, lobe = lobes["abbrev"][m.group(1)]
            elif how in ("zh_side", "en_side"):
                side = side_word[m.group(1)]
            elif how == "en_side2":
                side = side_word[m.group(2)]
            else:
                lobe = lobe_word[m.group(1)]
            taken.append((m.start(), m.end()))
            out.append(Mention("site", m.start(), m.end(), (side, lobe), context=False))
    return out


# ---------------------------------------------------------------- tumour size

_SIZE_RE = re.compile(
    r"(?<![\d.a-z])(?<![-~]\s)(?<![-~至])"
    r"(" + _NUM + r")(?:\s*(?:cm|mm|厘米|毫米|㎝|㎜))?"
    r"((?:\s*[x*]\s*" + _NUM + r"(?:\s*(?:cm|mm|厘米|毫米|㎝|㎜))?){0,2})"
    r"\s*-?\s*(cm|mm|厘米|毫米|公分|㎝|㎜)(?:s(?![a-z]))?(?![a-z0-9²])"  # "2.5 cms"
)
_DIST_AFTER = re.compile(r"\s*(?:from|away|to the|distant|proximal|distal|of normal|距)")


@lru_cache(maxsize=1)
def _size_cues() -> tuple[re.Pattern[str], frozenset[str], frozenset[str], re.Pattern[str]]:
    spec = _lex()["tumour_size"]
    neutral = frozenset(spec["neutral_cues"])
    words = spec["tumour_cues"] + spec["specimen_cues"] + spec["neutral_cues"]
    tumour = frozenset(spec["tumour_cues"]) - neutral
    ahead = re.compile(
        r"^[\s,]*(?:(?:" + _alt(spec["size_words_lookahead_en"]) + r")[\s,-]*){0,4}"
        r"(?:tumou?r|mass|nodule|lesion|carcinoma|neoplasm)(?![a-z])"
    )
    return re.compile(_alt(words)), tumour, neutral, ahead


_LOCATION_BEFORE = re.compile(
    r"(?<![a-z])(?:on|at|into|towards?|near|abutting|involving|within|invading|reaching|along)"
    r"\s+(?:the\s+)?(?:[a-z0-9]+\s+){0,3}$"
)


_BRACKET_BEFORE = re.compile(r"\)\s*[,:]?\s*$")


def _opening(norm: str, close: int) -> int | None:
    """Offset of the "(" that the ")" at `close` shuts, on the same line."""
    depth = 0
    for i in range(close, max(-1, close - 300), -1):
        ch = norm[i]
        if ch == "\n":
            return None
        depth += ch == ")"
        depth -= ch == "("
        if depth == 0:
            return i
    return None


def _size_kind(norm: str, start: int, end: int) -> str | None:
    """Whose size norm[start:end] is: "tumour", "specimen", or None (a distance, or
    nothing says)."""
    cue_re, tumour_words, neutral, ahead = _size_cues()
    if _DIST_AFTER.match(norm, end):
        return None
    c_start, c_end = _clause_at(norm, start)
    if ahead.match(norm[end : min(c_end, end + 60)]):
        return "tumour"  # "a 28 x 22 mm tan mass": the noun after the size decides
    shut = _BRACKET_BEFORE.search(norm, max(0, start - 6), start)
    if shut:
        # "Squamous cell carcinoma (p40 positive; TTF-1 negative), 3.7 cm": the
        # words before the bracket own the size
        opened = _opening(norm, shut.start())
        if opened is not None:
            start = opened
            c_start = _clause_at(norm, start)[0]
    lo = max(c_start, start - 80)
    if re.search(r"(?<![a-z])margins?(?![a-z])[^,;。]{0,30}\(\s*$", norm[lo:start]):
        return None  # "Bronchial margin: clear of tumour (22 mm)": the clearance
    if re.search(r"距[^,;。]{0,12}$", norm[lo:start]):
        return None  # "距支气管切缘2cm", "切缘距肿瘤2cm": a distance
    cues = list(cue_re.finditer(norm, lo, start))
    cues += list(_histology_re().finditer(norm, lo, start))
    cues.sort(key=lambda m: m.end())
    saw_neutral = False
    for m in reversed(cues):
        w = _words(m.group(0))
        if m.re is _histology_re():
            return "tumour"
        if w in neutral:
            saw_neutral = True
            continue
        if w in tumour_words:
            return "tumour"
        if _LOCATION_BEFORE.search(norm, max(0, m.start() - 24), m.start()):
            continue  # "centred on the LUL bronchus": where the tumour lies, not what is measured
        if w in ("距", "from", "away", "distance") or re.search(
            r"(?:距|from)[^,;。]{0,8}$", norm[max(0, m.start() - 12) : m.start()]
        ):
            continue  # the far end of a distance ("距胸膜0.5cm"), not the measured thing
        return "specimen"
    return "tumour" if saw_neutral else None


_INVASIVE_SIZE = re.compile(
    r"(?:(?<![a-z])invasive\s+(?:component|size|focus|part|portion|area|foci)"
    r"|(?<![a-z])(?:focus|foci)\s+of\s+(?:[a-z]+\s+)?invasion|(?<![a-z])invasion\s+measur"
    r"|浸润灶|浸润成分|浸润性成分|浸润部分|浸润范围|浸润最大径|浸润深度)"
    r"[^,;。]{0,25}$"
)


def _find_sizes(norm: str) -> list[Mention]:
    out = []
    for m in _SIZE_RE.finditer(norm):
        if _size_kind(norm, m.start(), m.end()) != "tumour":
            continue
        nums = [float(m.group(1))] + [float(x) for x in re.findall(_NUM, m.group(2))]
        unit = m.group(3)
        value = max(nums) / 10 if unit in ("mm", "毫米", "㎜") else max(nums)
        out.append(Mention("tumor_size_cm", m.start(), m.end(), round(value, 2), context=False))
    return out


# ---------------------------------------------------------------- pTNM

_T = r"(x|is|[0-4][a-d]?(?:mi)?)"
_TNM_GROUP = re.compile(
    # "rpT2a": the r of a recurrence is dropped like p and yp
    r"(?<![a-z0-9])(?:r?y?p|r)?t" + _T + r"(?:\s*\(m\))?\s*,?\s*(?:y?p)?n([0-3][a-c]?|x)"
    r"(?:\s*,?\s*(?:y?p)?m([01][a-d]?|x))?(?![a-z0-9])"
)
_TNM_ONE = re.compile(
    r"(?<![a-z0-9])r?y?p([tnm])\s*(?:分期|分类|stage|category)?\s*:?\s*([tnm])?"
    r"(x|is|[0-4][a-d]?(?:mi)?)(?![0-9])"
)


def _stage_value(axis: str, v: str) -> str:
    return axis.upper() + (v.upper() if v == "x" else v)


def _find_tnm(norm: str) -> list[Mention]:
    out = []
    spans: list[tuple[int, int]] = []
    for m in _TNM_GROUP.finditer(norm):
        spans.append((m.start(), m.end()))
        for axis, g in (("t", 1), ("n", 2), ("m", 3)):
            if m.group(g):
                out.append(
                    Mention(
                        "p" + axis.upper(),
                        m.start(g) - 1,
                        m.end(g),
                        _stage_value(axis, m.group(g)),
                        context=False,
                    )
                )
    for m in _TNM_ONE.finditer(norm):
        if any(a <= m.start() < b for a, b in spans):
            continue
        axis, again, v = m.group(1), m.group(2), m.group(3)
        if again and again != axis:
            continue
        if (axis != "t" and v == "is") or (axis == "n" and v[:1] == "4"):
            continue
        out.append(
            Mention("p" + axis.upper(), m.start(), m.end(), _stage_value(axis, v), context=False)
        )
    return out


# ---------------------------------------------------------------- lymph nodes

_FRAC = re.compile(r"(?<![\d/.a-z])(\d{1,3})\s*/\s*(\d{1,3})(?![\d/]|\.\d)")


@dataclass
class _Nodes:
    start: int
    end: int
    examined: int | None
    positive: int | None
    station: str | None  # a station key ("4r", "肺门"), None for a total


@lru_cache(maxsize=1)
def _ln_res() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    spec = _lex()["lymph_node"]
    cue = re.compile(_alt(spec["cues"]))
    station = re.compile("|".join(sorted(spec["station_names"], key=len, reverse=True)))
    total = re.compile(_alt(spec["total_words"]))
    return cue, station, total


def _station_key(label: str) -> str:
    m = re.search(r"\d{1,2}\s*[rl]?(?![a-z])", label)
    if m:
        return re.sub(r"\s", "", m.group(0))
    m = re.search(r"[rl]\d{1,2}", label)
    if m:
        return m.group(0)[1:] + m.group(0)[0]
    return label.strip()


def _label_before(norm: str, lo: int, hi: int) -> tuple[str | None, bool]:
    """The station named in norm[lo:hi] (the words just before a count), and whether
    the words say it is a total."""
    _, station, total = _ln_res()
    seg = norm[lo:hi]
    st = _last(station.finditer(seg))  # "station 4r nil of 3 station 7 nil of 4"
    if st is None:
        # "stations 2r 0/3, 7 0/3": a bare station number right before the count
        bare = re.search(r"(?<![\da-z./])(\d{1,2}[rl]?)\s*[:-]?\s*\(?\s*$", seg)
        if bare:
            return bare.group(1), False
    return (_station_key(st.group(0)) if st else None), bool(total.search(seg))


def _ln_ok(norm: str, pos: int) -> bool:
    """A count belongs to lymph nodes when its clause, or the text shortly before a
    station label, names lymph nodes."""
    cue, station, _ = _ln_res()
    c_start, c_end = _clause_at(norm, pos)
    if cue.search(norm, c_start, c_end):
        return True
    lo = max(0, pos - 25)
    if station.search(norm[lo:pos]):
        return bool(cue.search(norm, max(0, pos - 400), pos))
    return False


_ZH_COUNT = re.compile(
    r"(?:淋巴结[^0-9,;。]{0,6}?(\d{1,3})\s*(?:枚|个)|(\d{1,3})\s*(?:枚|个)\s*淋巴结)"
)
_ZH_POS = re.compile(
    r"(?:其中|内)?\s*(\d{1,3})\s*(?:枚|个)\s*(?:淋巴结)?\s*(?:见|有|查见|可见)?\s*(?:癌|肿瘤)?"
    r"(?:转移|阳性)|(均未见|未见|无)\s*(?:癌|肿瘤)?(?:转移)|(均阴性|均为阴性)"
)
_EN_OF = re.compile(
    r"(?<![\da-z/])(\d{1,3}|[a-z]{2,12})\s{1,3}(?:out\s)?of\s{1,3}(\d{1,3}|[a-z]{2,12})\s{1,3}"
    r"(?:[a-z()-]{1,20}\s{1,3}){0,3}?"
    r"(?:lymph\s+)?nodes?(?![a-z])"
)
_EN_OF_BARE = re.compile(
    r"(?<![\da-z/])(\d{1,3}|[a-z]{2,12})\s{1,3}(?:out\s)?of\s{1,3}(\d{1,3}|[a-z]{2,12})(?![\da-z])"
)
_EN_COUNT = re.compile(
    r"(?:number of\s+)?(?:lymph\s+)?nodes?\s+examined\s*:\s*(\d{1,3})"
    r"|(?<![\da-z/])(\d{1,3}|[a-z]{2,12})\s{1,3}(?:[a-z()-]{1,20}\s{1,3}){0,3}?lymph\s+nodes?\s+"
    r"(?:(?:were|are|was)\s+)?(?:examined|identified|retrieved|recovered|harvested|submitted|"
    r"found|isolated|received)"
    r"|(?<![\da-z/])(\d{1,3}|[a-z]{2,12})\s{1,3}(?:benign\s|reactive\s|regional\s)?lymph\s+nodes"
    r"(?![a-z])"
)
_CAP_POS = re.compile(
    r"(?:number of\s+)?(?:lymph\s+)?nodes?\s+(?:positive|involved)\s*:\s*(\d{1,3})"
)


def _last(it: Iterable[re.Match[str]]) -> re.Match[str] | None:
    found = None
    for m in it:
        found = m
    return found


_STATION_WORD = re.compile(r"(?:station|level|group|#|组|第)\s*$")
# the last of listed stations ("level 5 and 7 lymph nodes", "stations 4R, 7 and 10R nodes")
_STATION_LIST = re.compile(
    r"(?:stations?|levels?|stns?|groups?)\s*(?:\d{1,2}[rl]?\s*(?:,|and|&|/|or)\s*)+$"
)
_EN_POS = re.compile(
    r"(?:number of\s+)?(?:lymph\s+)?nodes?\s+(?:positive|involved)\s*:\s*(\d{1,3})"
    r"|(all|each)\s+(?:\w+\s+){0,2}?(?:negative|benign|free)"
    r"|(?:negative|free)\s+(?:of|for)\s+(?:metasta|tumou?r|carcinoma|malignan)"
    r"|(?:no|without)\s+(?:evidence\s+of\s+)?(?:metastatic|metastas|tumou?r|carcinoma|malignan)"
    r"|(\d{1,3})\s+(?:\w+\s+){0,2}?(?:positive|involved|metastatic)"
)


def _en_num(s: str) -> int | None:
    if s.isdigit():
        return int(s)
    words: dict[str, int] = _lex()["number_words"]
    return words.get(s)


@lru_cache(maxsize=1)
def _table_res() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    spec = _lex()["lymph_node"]["table"]
    return re.compile(spec["station"]), re.compile(spec["examined"]), re.compile(spec["positive"])


_ROW = re.compile(r"[ \t]*(\S+(?:[ \t]\S+)??)[ \t]+(\d{1,3})[ \t]+(\d{1,3})[ \t]*")


def _node_table(norm: str) -> list[_Nodes]:
    """Rows of a station table ("Station | Examined | Involved", one row a station);
    the total row is left out, as the stations already sum to it."""
    station, examined, positive = _table_res()
    total = _ln_res()[2]
    out: list[_Nodes] = []
    pos = 0
    for line in norm.splitlines(keepends=True):
        pos += len(line)
        head = line.strip()
        if not (len(head) < 60 and station.search(head)):
            continue
        ex_m, pos_m = examined.search(head), positive.search(head)
        if not (ex_m and pos_m and ex_m.start() != pos_m.start()):
            continue
        flip = pos_m.start() < ex_m.start()  # "Positive / Examined" columns
        row_at = pos
        for row in norm[pos:].splitlines(keepends=True):
            m = _ROW.fullmatch(row.rstrip("\n"))
            if m is None:
                break
            a, b = int(m.group(2)), int(m.group(3))
            n_ex, n_pos = (b, a) if flip else (a, b)
            if n_pos <= n_ex and not total.search(m.group(1)):
                key = _station_key(m.group(1))
                out.append(_Nodes(row_at + m.start(1), row_at + m.end(3), n_ex, n_pos, key))
            row_at += len(row)
    return out


_OWN_COUNT = re.compile(r"\s*[:-]?\s*\(?\s*\d{1,3}\s*/\s*\d{1,3}")
_LIST_STATION = re.compile(r"[\s;,、]*\d{1,2}[rl]?\s*:?\s*")


def _find_nodes(norm: str) -> list[Mention]:
    found: list[_Nodes] = _node_table(norm)
    table = [(n.start, n.end) for n in found]
    prev_end = 0
    key: str | None
    positive: int | None
    for m in _FRAC.finditer(norm):
        pos_n, ex_n = int(m.group(1)), int(m.group(2))
        # "(5: 0/2; 6: 0/1": a station number after the previous count continues its list
        listed = bool(found) and found[-1].station is not None
        listed = (
            listed
            and re.fullmatch(r"[\s;,、]*\d{1,2}[rl]?\s*:?\s*", norm[found[-1].end : m.start()])
            is not None
        )
        if ex_n == 0 or pos_n > ex_n or not (_ln_ok(norm, m.start()) or listed):
            continue
        lo = max(prev_end, m.start() - 25, _clause_at(norm, m.start())[0])
        # a label written after the count ("0/3 hilar, 0/5 mediastinal") is its own
        gap = len(norm[m.end() : m.end() + 3]) - len(norm[m.end() : m.end() + 3].lstrip(" "))
        after = _ln_res()[1].match(norm, m.end() + gap) if gap else None
        if after and _OWN_COUNT.match(norm, after.end()):
            after = None  # "Station 5: 0/2   Station 6: 0/1": the next station's label
        if after:
            key, is_total = _station_key(after.group(0)), False
            prev_end = after.end()
        else:
            key, is_total = _label_before(norm, lo, m.start())
            if key is None and not is_total:
                # "Lymph node, level 7, excision: one node, negative (0/1)": the one
                # station named earlier in the clause (several make it their total)
                c_lo = max(prev_end, _clause_at(norm, m.start())[0])
                named = {
                    _station_key(x.group(0)) for x in _ln_res()[1].finditer(norm, c_lo, m.start())
                }
                key = named.pop() if len(named) == 1 else None
            prev_end = m.end()
        found.append(_Nodes(m.start(), m.end(), ex_n, pos_n, None if is_total else key))
    # "all negative (0/3, 0/4, 0/1)": counts written as one list are separate stations
    for prev, row in itertools.pairwise(found):
        if row.station is None and re.fullmatch(r"[\s,;、]*", norm[prev.end : row.start]):
            row.station = f"#{row.start}"
            if prev.station is None:
                prev.station = f"#{prev.start}"
    taken = [(n.start, n.end) for n in found] + table

    def free(a: int, b: int) -> bool:
        return not any(x < b and a < y for x, y in taken)

    for m in _ZH_COUNT.finditer(norm):
        c_start, c_end = _clause_at(norm, m.start())
        tail_end = c_end
        # the positive count follows in the same clause, before the next station
        nxt = re.search(r"第?\d{1,2}[rl]?组|淋巴结", norm[m.end() : c_end])
        if nxt:
            tail_end = m.end() + nxt.start()
        seg_start = max(c_start, m.start() - 15)
        if not free(seg_start, tail_end):
            continue
        examined = int(m.group(1) or m.group(2))
        positive = None
        end = m.end()
        p = _ZH_POS.search(norm, m.end(), tail_end)
        if p:
            positive = int(p.group(1)) if p.group(1) else 0
            end = p.end()
        key, is_total = _label_before(norm, seg_start, m.start() + 3)
        found.append(_Nodes(m.start(), end, examined, positive, None if is_total else key))
        taken.append((m.start(), end))

    of_rows = list(_EN_OF.finditer(norm))
    of_rows += [m for m in _EN_OF_BARE.finditer(norm) if _ln_ok(norm, m.start())]
    for m in of_rows:
        of_pos, of_ex = _en_num(m.group(1)), _en_num(m.group(2))
        if of_pos is None or of_ex is None or not free(m.start(), m.end()):
            continue
        if of_ex == 0 or of_pos > of_ex:
            continue
        key, is_total = _label_before(norm, max(0, m.start() - 25), m.start())
        found.append(_Nodes(m.start(), m.end(), of_ex, of_pos, None if is_total else key))
        taken.append((m.start(), m.end()))
    for m in _EN_COUNT.finditer(norm):
        raw = m.group(1) or m.group(2) or m.group(3)
        n = _en_num(raw) if raw else None
        if n is None or n == 0 or not free(m.start(), m.end()):
            continue
        if _STATION_WORD.search(norm, max(0, m.start() - 10), m.start()):
            continue
        if _STATION_LIST.search(norm, max(0, m.start() - 40), m.start()):
            continue
        c_start, c_end = _clause_at(norm, m.start())
        positive = None
        end = m.end()
        start = m.start()
        p = _EN_POS.search(norm, m.end(), min(len(norm), c_end + 80))
        if p and p.start() - m.end() >= 80:
            p = None
        if m.group(1) and p is None:
            # CAP lists may give "Number of Lymph Nodes Involved: 0" first
            p = _last(_CAP_POS.finditer(norm, max(0, m.start() - 120), m.start()))
            start = p.start() if p else start
        if p:
            if p.group(1):
                positive = int(p.group(1))
            elif p.group(3):
                positive = int(p.group(3))
            else:
                positive = 0
            end = max(end, p.end())
        key, is_total = _label_before(norm, max(c_start, m.start() - 25), m.start())
        found.append(_Nodes(start, end, n, positive, None if is_total else key))
        taken.append((start, end))
    return [
        Mention("lymph_nodes", n.start, n.end, (n.examined, n.positive, n.station), context=False)
        for n in found
    ]


# ---------------------------------------------------------------- margin

_MARGIN_KW = re.compile(r"切缘|断端|残端|(?<![a-z])(?:margins?|stump)(?![a-z])")
_MARGIN_STATUS = re.compile(
    r"(?P<neg>未见|未查见|未受累|未累及|未侵及|无癌|无肿瘤|阴性|\(-\)|干净|净|"
    r"(?<![a-z])(?:negative|free|clear|uninvolved|not involved|no tumou?r|no carcinoma|"
    r"no malignan\w*|without|unremarkable|neg)(?![a-z]))"
    r"|(?P<pos>可见癌|查见癌|见癌|见肿瘤|癌累及|阳性|\(\+\)|受累|累及|"
    r"(?<![a-z])(?:involved|positive|tumou?r (?:is )?(?:present|seen) at)(?![a-z]))"
)
_MARGIN_BEFORE = re.compile(
    r"(?P<neg>(?:negative|free|clear|uninvolved)\s+(?:[a-z]+\s+){0,2})$"
    r"|(?P<pos>(?:extends?|extending|present|involv\w*|reaches?)\s+(?:to|at)?\s*(?:the\s+)?"
    r"(?:[a-z]+\s+){0,2}|(?:positive|involved)\s+(?:[a-z]+\s+){0,2})$"
)
_R_STATUS = re.compile(r"(?<![a-z0-9])r([012])(?![a-z0-9])\s*(?:切除|resection)")


_MARGIN_ASIDE = re.compile(r"\s*\([^()\n]{1,60}\)")
_MARGIN_NAME = (
    r"(?:bronchial|vascular|arterial|venous|parenchymal|pleural|staple(?:d)?(?: line)?|"
    r"soft tissue|chest wall|fissure|resection|surgical|all)"
)
_MARGIN_NAMES = re.compile(
    r"[\s:]*(?:" + _MARGIN_NAME + r"(?:\s*\([a-z ]{1,20}\))?\s*(?:,|and|&|/)?\s*)+"
)
# "; staple line: involved": a further margin named after the first status
_LATER_MARGIN = re.compile(
    r"\s*[;,]\s*(?:and\s+)?" + _MARGIN_NAME + r"(?:\s*\([a-z ]{1,20}\))?\s*(?:margins?)?\s*[:-]?\s*"
)


def _later_margins(norm: str, pos: int, stop: int | None) -> list[Mention]:
    """Statuses of further margins listed on the same line after the first one."""
    out = []
    end = norm.find("\n", pos)
    end = len(norm) if end < 0 else end
    if stop is not None:
        end = min(end, stop)
    while pos < end:
        named = _LATER_MARGIN.match(norm, pos, end)
        if not named:
            break
        s = _MARGIN_STATUS.match(norm, named.end(), end)
        if not s:
            break
        value = "negative" if s.group("neg") else "positive"
        out.append(Mention("margin", named.start(), s.end(), value, context=False))
        pos = s.end()
    return out


def _find_margins(norm: str) -> list[Mention]:
    out = []
    kws = list(_MARGIN_KW.finditer(norm))
    for i, m in enumerate(kws):
        c_start, c_end = _clause_at(norm, m.start())
        # "Margins (bronchial, vascular, parietal pleural): negative": the bracket
        # names the margins; the status follows it
        hi = min(c_end, m.end() + 30)
        if i + 1 < len(kws):
            hi = min(hi, kws[i + 1].start())
        names = _MARGIN_NAMES.match(norm, m.end(), c_end)
        if names and names.end() > m.end():
            # "Margins: bronchial, arterial and parenchymal clear": the names, then the status
            hi = max(hi, min(c_end, names.end() + 20))
            if i + 1 < len(kws):
                hi = min(hi, kws[i + 1].start())
        s = _MARGIN_STATUS.search(norm, m.end(), hi)
        aside = None if s else _MARGIN_ASIDE.match(norm, m.end())
        if aside:
            lo = aside.end()
            hi = min(_clause_at(norm, lo)[1], lo + 30)
            if i + 1 < len(kws):
                hi = min(hi, kws[i + 1].start())
            s = _MARGIN_STATUS.search(norm, lo, hi) if lo < hi else None
        if s:
            value = "negative" if s.group("neg") else "positive"
            out.append(Mention("margin", m.start(), s.end(), value, context=False))
            out += _later_margins(norm, s.end(), kws[i + 1].start() if i + 1 < len(kws) else None)
            continue
        b = _MARGIN_BEFORE.search(norm[max(c_start, m.start() - 40) : m.start()])
        if b:
            value = "negative" if b.group("neg") else "positive"
            start = max(c_start, m.start() - 40) + b.start()
            out.append(Mention("margin", start, m.end(), value, context=False))
    for m in _R_STATUS.finditer(norm):
        value = "negative" if m.group(1) == "0" else "positive"
        out.append(Mention("margin", m.start(), m.end(), value, context=False))
    for m in _R_IN_TNM.finditer(norm):
        # "pT1c pN0 (0/14) L0 V0 Pn0 R0": the residual-tumour code closes the staging line
        value = "negative" if m.group(1) == "0" else "positive"
        out.append(Mention("margin", m.start(1) - 1, m.end(), value, context=False))
    for m in _BR_CODE.finditer(norm):
        # Japanese General Rules "br(-)": the bronchial margin
        value = "negative" if m.group(1) == "-" else "positive"
        out.append(Mention("margin", m.start(), m.end(), value, context=False))
    return out


_R_IN_TNM = re.compile(
    r"(?<![a-z0-9])(?:y?p?t[0-4x][a-c]?|y?p?n[0-3x]|v[0-2]|pn[01])(?![a-z0-9])"
    r"[^\n.;]{0,30}?(?<![a-z0-9])r([012])(?![a-z0-9])"
)
_BR_CODE = re.compile(r"(?<![a-z0-9])br\s*\(\s*([-+])\s*\)")


# ---------------------------------------------------------------- pleura / vessels

_VPI_RE = re.compile(
    r"(?P<verb>(?:侵犯|侵及|累及|突破|浸润|侵透)(?:脏层|壁层)?胸膜(?:弹力层)?"
    r"|(?:脏层)?胸膜(?:侵犯|侵及|受累|累及|浸润)"
    r"|(?P<vneg>(?:脏层)?胸膜(?:弹力层)?\s*(?:未见|未|无)\s*(?:明显|明确)?(?:侵犯|侵及|受累|累及|浸润|突破))"
    r"|(?<![a-z])(?:visceral pleural invasion|visceral pleura invasion|"
    r"visceral pleura(?:l)? involvement|"
    r"(?:invad\w*|involv\w*|penetrat\w*|breach\w*|extends? (?:into|through))"
    r" (?:the |into the |through the )?(?:visceral )?pleura|pleural invasion|vpi)(?![a-z]))"
    r"|(?P<plain>脏层胸膜(?:弹力层)?|胸膜弹力层|胸膜(?=\s*:)|(?<![a-z])visceral pleura(?![a-z])"
    r"|(?<![a-z])pleura(?=\s*(?::|-\s)))"
    r"|(?P<pl>(?<![a-z])pl(?P<pln>[0-3])(?![a-z0-9]))"
)
_LVI_RE = re.compile(
    r"(?P<mid>(?:脉管|淋巴管|微血管|血管|静脉)内?\s*:?\s*"
    r"(?P<mneg>未见明确|未见明显|未见|未查见|无|可见明确|可见|查见|见)?\s*"
    r"(?:癌栓|瘤栓|侵犯|浸润|侵袭|肿瘤栓子))"
    r"|(?P<en>(?<![a-z])(?:lymphovascular|lympho-vascular|lymph-vascular|lymphatic|vascular|"
    r"angiolymphatic|venous|perivascular|lymphovascular space) (?:invasion|permeation)(?![a-z])"
    r"|(?<![a-z])(?:lvi|lvsi)(?![a-z])|(?<![a-z])(?:vascular )?tumou?r (?:emboli|thromb(?:us|i))"
    r"|(?<![a-z])(?:lympho-?)?vascular emboli(?![a-z]))"
    r"|(?<![a-z])microvascular invasion(?![a-z])"
    r"|(?P<lplain>脉管(?=\s*:))"
)
_LV_CODES = re.compile(r"(?<![a-z0-9])(?:ly|l)([0-2])\s*[,;]?\s*v([0-2])(?![a-z0-9])")
_POS_AFTER = re.compile(
    r"^[\s:=]*(?:-\s+)?(?:(?:is|was|are)\s+)?(?:\(\+\)|阳性|有|可见|受累|累及|侵犯|present|identified|seen|yes|"
    r"positive|invaded|involved|"
    r"\(?pl[123]\)?|\+)"
)
_NEG_AFTER = re.compile(
    r"^[\s:=]*(?:-\s+(?=[a-z]))?(?:(?:is|was|are)\s+)?"
    r"(?:\(-\)|阴性|无|未见|未受累|未累及|absent|not identified|"
    r"free(?![a-z])|clear(?![a-z])|"
    r"not seen|not present|not involved|uninvolved|no(?![a-z])|negative|none|not detected|"
    r"未受侵|-(?!\d|\s+[a-z])|\(?pl0\)?)"
)
_NEG_BEFORE = {
    "zh": re.compile(r"(?:未见|未查见|未发现|未|无|不伴|没有|否认)[^,;。]{0,14}$"),
    "en": re.compile(
        r"(?<![a-z])(?:no|not|without|negative for|absence of|free of)(?![a-z])[^;.]{0,45}$"
    ),
}
_NEG_BREAK = re.compile(r"可见|见到|伴有|但|(?<![a-z])(?:but|however|shows?|with)(?![a-z])")


def _own_negation(text: str, norm: str, start: int, end: int) -> tuple[bool | None, int, int]:
    """(negated, cue start, cue end): whether the words right after the mention
    ("脉管侵犯: (-)", "LVI: present") or before it ("未见脉管内癌栓", "no LVI") state
    absence or presence; negated None when they say nothing. A colon form after the
    mention decides first. Chinese scope stops at a comma (a list is joined by
    、/及/和), English scope runs over list commas up to ';' or '.'."""
    c_start, c_end = _clause_at(norm, start)
    after = norm[end : min(c_end, end + 30)]
    colon = bool(re.match(r"\s*[:=(]", after))
    neg_a, pos_a = _NEG_AFTER.match(after), _POS_AFTER.match(after)
    if colon and (neg_a or pos_a):
        hit = neg_a or pos_a
        assert hit is not None
        return bool(neg_a), start, end + hit.end()
    lo = max(c_start, start - 50)
    cut = lo
    for i in range(start - 1, lo - 1, -1):
        if norm[i] == "," and text[i] != "、":
            cut = i + 1
            break
    for seg_lo, rx in ((cut, _NEG_BEFORE["zh"]), (lo, _NEG_BEFORE["en"])):
        seg = norm[seg_lo:start]
        m = rx.search(seg)
        if m and not _NEG_BREAK.search(seg, m.start() + 2):
            return True, seg_lo + m.start(), end
    if neg_a or pos_a:
        hit = neg_a or pos_a
        assert hit is not None
        return bool(neg_a), start, end + hit.end()
    return None, start, end


_NOT_ASSESSED = re.compile(
    r"[\s:=(-]*(?:(?:status|involvement|情况|状态)\s*)?(?:均|都|亦|也)?"
    r"(?:(?:is|was|are)\s+)?(?:cannot be (?:assessed|evaluated|determined)|"
    r"not assessable|indeterminate|not applicable|n/a|无法评估|不能评估|无法判断|不详|不适用)"
)


_NOT_ASSESSED_BEFORE = re.compile(
    r"(?:无法|不能|未能|难以)(?:评估|评价|判断)[^,;。]{0,12}$"
    r"|(?:cannot|could not|unable to)\s+(?:be\s+)?(?:assess|evaluat)\w*[^;.]{0,30}$"
)


_NOT_ASSESSED_LIST = re.compile(
    r"(?:无法|不能|未能|难以)(?:评估|评价|判断)(?:[^,;。]{1,12},)+\s*$"
    r"|(?:cannot|could not|unable to)\s+(?:be\s+)?(?:assess|evaluat)\w*(?:[^;.,]{1,30},)+\s*$"
)


_AND_ANOTHER = re.compile(
    r"\s*(?:及|和|与|、|/|\band\b|\bor\b)\s*[a-z\u4e00-\u9fff ]{1,20}?"
    r"(?:侵犯|浸润|invasion|involvement)"
)


def _not_assessed(norm: str, m: re.Match[str]) -> bool:
    """ "cannot be assessed" after the feature, or "无法评估脉管及胸膜侵犯" before it."""
    if _NOT_ASSESSED.match(norm, m.end()):
        return True
    # "脉管侵犯及胸膜侵犯无法评估" (a needle biopsy), "LVI and pleural invasion cannot be
    # assessed": a list of features judged together after the last one
    joined = _AND_ANOTHER.match(norm, m.end())
    if joined and _NOT_ASSESSED.match(norm, joined.end()):
        return True
    c_start = _clause_at(norm, m.start())[0]
    if _NOT_ASSESSED_BEFORE.search(norm, max(c_start, m.start() - 40), m.start()):
        return True
    # "无法评估胸膜侵犯、脉管侵犯及切缘": one "cannot assess" over a list of features
    lead = norm[max(0, m.start() - 40) : m.start()]
    lead = re.split(r"[。;\n]|\.(?=\s)", lead)[-1]
    return bool(_NOT_ASSESSED_LIST.search(lead))


def _find_invasion(text: str, norm: str) -> list[Mention]:
    out = []
    for m in _VPI_RE.finditer(norm):
        if _not_assessed(norm, m):
            continue
        if m.group("pl"):
            out.append(Mention("vpi", m.start(), m.end(), m.group("pln") != "0", context=False))
            continue
        if m.group("vneg"):
            out.append(Mention("vpi", m.start(), m.end(), False, context=False))
            continue
        neg, a, b = _own_negation(text, norm, m.start(), m.end())
        if neg is None and m.group("plain"):
            continue  # "紧邻脏层胸膜" says where, not whether it is invaded
        out.append(Mention("vpi", a, b, not neg, context=False))
    for m in _LV_CODES.finditer(norm):
        # "L0 V0" (UICC), "ly0, v1" (Japanese General Rules): lymphatic and venous
        # invasion graded 0-2 side by side; either one present is LVI
        out.append(
            Mention(
                "lvi", m.start(), m.end(), m.group(1) != "0" or m.group(2) != "0", context=False
            )
        )
    for m in _LVI_RE.finditer(norm):
        if _not_assessed(norm, m):
            continue
        mneg = m.group("mneg")
        a, b = m.start(), m.end()
        if mneg and mneg.startswith(("未", "无")):
            value = False
        elif mneg:
            value = True
        else:
            neg, a, b = _own_negation(text, norm, m.start(), m.end())
            if neg is None and m.group("lplain"):
                continue  # a "脉管:" label with no readable status
            value = not neg
        out.append(Mention("lvi", a, b, value, context=False))
    return out


# ---------------------------------------------------------------- molecular

_GENE_RE = re.compile(
    r"(?<![a-z0-9])(egfr|alk|ros-?1|kras|braf|met|ret|her-?2|erbb2|ntrk\d?|pik3ca|tp53|"
    r"pd-?l1|pd l1|pdl-1|msi|stk11|keap1|nras|ki-?67|ttf-?1|p40|p63|napsin\s?a|ck\d?|syn|"
    r"cga|cd56|er|pr)(?![a-z0-9])"
)
_LIST_SEP = re.compile(r"[\s,/]*(?:及|和|与|或|and|or)?[\s,/]*$")
_EGFR_SPECIFIC = re.compile(
    r"l858r|t790m|g719[a-z]?|l861q|s768i|c797s|"
    r"(?:exon|外显子)\s*(?:19|20|21|18)\s*(?:del\w*|deletion|缺失|插入|ins\w*|突变|mutation|"
    r"point mutation|点突变)?|"
    r"(?:19|20|21|18)\s*(?:号)?\s*外显子\s*(?:\w{0,3})?(?:缺失|插入|突变|点突变)|"
    r"ex19del|19del|del19|e746_a750del"
)
_SPEC_NEG_AFTER = re.compile(
    r"^[^;,。]{0,12}?(?:not detected|未检测到|未检出|未见|negative|阴性|\(-\)|absent|wild)"
)
_EGFR_TOKENS = re.compile(
    r"(?P<neutral>突变检测|突变分析|基因突变检测|mutation analysis|mutation testing|"
    r"mutation status|mutational analysis|mutation test|检测方法)"
    r"|(?P<wt>野生型|wild[- ]?type|(?<![a-z])wt(?![a-z])|未检测到\w{0,6}突变|未检出\w{0,6}突变|"
    r"未见\w{0,6}突变|无突变|阴性|\(-\)|"
    r"(?<![a-z])no (?:\w+ ){0,3}(?:mutations?|variants?|alterations?)|negative|"
    r"not detected|未检测到|未检出|not identified|none detected|未突变)"
    r"|(?P<mut>突变型|突变阳性|\(\+\)|阳性|positive|mutation detected|mutations? detected|mutated|"
    r"mutant|发生突变|检测到\w{0,6}突变|检出\w{0,6}突变|存在\w{0,6}突变|detected)"
    r"|(?P<generic>突变|mutations?)"
)
_ALK_TOKENS = re.compile(
    r"(?P<neg>阴性|\(-\)|negative|not detected|未检测到|未检出|"
    r"(?<![a-z])no (?:\w+ ){0,2}(?:rearrangements?|fusions?|translocation)|野生型|wild[- ]?type|"
    r"未见\w{0,4}(?:融合|重排)|无融合|无重排|not rearranged|non-rearranged|not identified|"
    r"未发生\w{0,4}(?:融合|重排)|(?<![a-z])neg(?![a-z]))"
    r"|(?P<pos>阳性|\(\+\)|positive|rearrangement detected|fusion detected|融合阳性|"
    r"(?<!未)检出(?!\s*(?:阴性|\(-\)))|检测到\w{0,6}融合|存在\w{0,4}融合|发生\w{0,4}(?:融合|重排)|重排阳性|eml4-alk|rearranged|"
    r"detected|(?<![a-z])pos(?![a-z]))"
)
_PRE_NEG = re.compile(
    r"(?:(?<![a-z])no|未检测到|未检出|未见|无|negative for|without)\s*(?:\w+\s*)?$"
)
_PRE_POS = re.compile(r"(?:检测到|检出|发现|存在|detected|positive for)\s*(?:\w+\s*)?$")
# "No alterations detected in EGFR, ALK, ROS1 or RET": one negation before a gene list
_LIST_NEG = re.compile(
    r"no(?<![a-z]no) (?:[a-z-]+ ){0,2}"
    r"(?:alterations?|mutations?|variants?|rearrangements?|fusions?)"
    r"(?: (?:were|was))? (?:detected|identified|found|seen) (?:in|for)\s+"
    r"(?:[a-z0-9-]+\s*(?:,|/|\band\b|\bor\b)\s*)*$"
)


def _gene_window(norm: str, m: re.Match[str]) -> tuple[int, int]:
    """Where a gene's result is written: after its name (and after the other genes of a
    list sharing one result, "EGFR、ALK、ROS1均阴性"), up to the next gene or sentence end."""
    pos = m.end()
    while True:
        nxt = _next_gene(norm, pos, pos + 12)
        if nxt and _LIST_SEP.match(norm[pos : nxt.start()]):
            pos = nxt.end()
            continue
        break
    hi = min(len(norm), pos + 70)
    stop = re.compile(r"[。;]|\n\s*\n")
    s = stop.search(norm, pos, hi)
    if s:
        hi = s.start()
    nxt = _next_gene(norm, pos, hi)
    if nxt:
        hi = nxt.start()
    return pos, hi


def _next_gene(norm: str, lo: int, hi: int) -> re.Match[str] | None:
    """The next gene name, not a fusion partner ("EML4-ALK" is ALK's result)."""
    for g in _GENE_RE.finditer(norm, lo, hi):
        if norm[g.end() : g.end() + 1] != "-" and norm[max(0, g.start() - 1) : g.start()] != "-":
            return g
    return None


def _egfr_status(norm: str, lo: int, hi: int) -> tuple[str, int, int] | None:
    any_neg_spec = None
    for s in _EGFR_SPECIFIC.finditer(norm, lo, hi):
        if _SPEC_NEG_AFTER.match(norm[s.end() : hi]):
            any_neg_spec = any_neg_spec or (s.start(), s.end())
            continue
        return "mutant", s.start(), s.end()
    for t in _EGFR_TOKENS.finditer(norm, lo, hi):
        if t.group("neutral"):
            continue
        if t.group("wt"):
            return "wild_type", t.start(), t.end()
        if t.group("mut"):
            return "mutant", t.start(), t.end()
        # a bare "突变"/"mutation": the words after it decide, else it states a mutation
        after = _EGFR_TOKENS.search(norm, t.end(), min(hi, t.end() + 25))
        if after and after.group("wt"):
            return "wild_type", t.start(), after.end()
        return "mutant", t.start(), t.end()
    if any_neg_spec:
        return "wild_type", any_neg_spec[0], any_neg_spec[1]
    return None


def _alk_status(norm: str, lo: int, hi: int) -> tuple[str, int, int] | None:
    t = _ALK_TOKENS.search(norm, lo, hi)
    if t:
        return ("negative" if t.group("neg") else "positive"), t.start(), t.end()
    return None


_PCT = re.compile(
    r"(?P<lt1><\s*1(?:\.0)?\s*%)"
    r"|(?P<range>" + _NUM + r"\s*%?\s*(?:-|~|至|到|to)\s*" + _NUM + r"\s*%)"
    r"|(?P<bound>(?:≥|≤|>=|<=|>|<)\s*" + _NUM + r"\s*%)"
    r"|(?P<val>" + _NUM + r")\s*(?:%|per\s?cent(?![a-z]))"
)
_TPS_NUM = re.compile(r"tps\s*(?:score)?\s*[:=]?\s*(?:约|为)?\s*(\d{1,3})(?![\d.%-])")


_EXACT_AFTER = re.compile(
    r"\s*(?:之间|区间)?\s*[(,;]?\s*(?:约|大约|approximately|approx\.?|about|estimated|~|≈)\s*"
    r"(\d{1,3}(?:\.\d+)?)\s*%"
)


def _pdl1_value(norm: str, lo: int, hi: int) -> tuple[float | None, int, int] | None:
    m_lo = lo
    tps = norm.find("tps", lo, hi)
    if tps >= 0:
        lo = tps
        n = _TPS_NUM.match(norm, tps, hi)
        if n:
            return float(n.group(1)), tps, n.end()
        # "PD-L1 22C3: <1% (TPS)": the label after the value names it
        named = _last(_PCT.finditer(norm, m_lo, tps))
        if named and re.fullmatch(r"\s*\(?\s*", norm[named.end() : tps]):
            lo = named.start()
    for p in _PCT.finditer(norm, lo, hi):
        before = norm[max(lo, p.start() - 12) : p.start()]
        if re.search(r"(?<![a-z])(?:cps|ic|immune)(?![a-z])|免疫细胞", before):
            continue
        if p.group("lt1"):
            return 0.0, p.start(), p.end()
        if p.group("range") or p.group("bound"):
            # "TPS >=50% (approximately 70%)", "TPS 1-49%之间，约35%": the band, then the value
            exact = _EXACT_AFTER.match(norm, p.end(), hi)
            if exact:
                return float(exact.group(1)), p.start(), exact.end()
            return None, p.start(), p.end()
        return float(p.group("val")), p.start(), p.end()
    return None


def _find_molecular(norm: str) -> list[Mention]:
    out = []
    for m in _GENE_RE.finditer(norm):
        gene = m.group(1)
        if gene not in ("egfr", "alk") and not gene.startswith("pd"):
            continue
        lo, hi = _gene_window(norm, m)
        # the words before, back to the line start ("EGFR｜未检出突变\n ALK｜检出…": the
        # line before is another gene's result)
        pre = re.split(r"[\n。;]", norm[max(0, m.start() - 12) : m.start()])[-1]
        listed_neg = _LIST_NEG.search(norm, max(0, m.start() - 120), m.start()) is not None
        if gene.startswith("pd"):
            v = _pdl1_value(norm, lo, hi)
            if v is not None:
                out.append(Mention("pdl1", m.start(), v[2], v[0], context=False))
            continue
        status: tuple[str, int, int] | None
        if gene == "egfr":
            status = _egfr_status(norm, lo, hi)
            if status is None and (_PRE_NEG.search(pre) or listed_neg):
                status = ("wild_type", m.start(), m.end())
            elif (
                status
                and status[0] == "mutant"
                and _PRE_NEG.search(pre)
                and not _EGFR_SPECIFIC.search(norm, lo, hi)
            ):
                status = ("wild_type", status[1], status[2])
        else:
            status = _alk_status(norm, lo, hi)
            if status is None and (_PRE_NEG.search(pre) or listed_neg):
                status = ("negative", m.start(), m.end())
            elif status is None and _PRE_POS.search(pre):
                status = ("positive", m.start(), m.end())
            elif status and status[0] == "positive" and _PRE_NEG.search(pre):
                status = ("negative", status[1], status[2])
        if status:
            out.append(Mention(gene, m.start(), max(m.end(), status[2]), status[0], context=False))
    return out


# ---------------------------------------------------------------- rules and assembly


@lru_cache(maxsize=1)
def _traditional() -> dict[int, str]:
    # table pipes read as spaces, so "| Lymphovascular invasion | Not identified |"
    # is one phrase
    return str.maketrans(_lex()["traditional"]["map"] | {"|": " "})


_PL_CODE = re.compile(r"(?<![a-z])pl\s*[0-3](?![0-9])")
_FULL_STOP = re.compile(r"(?<![a-z])full stop(?![a-z])")


def _fold(norm: str, text: str = "") -> str:
    """Traditional characters, pipes and a dictated "full stop" folded, one for one."""
    norm = norm.translate(_traditional())  # "陰性" reads as "阴性"
    norm = _OCR_WORD.sub(_ocr_fix, norm)
    if len(text) == len(norm):
        norm = _ocr_capital_i(text, norm)
    norm = _blank_voided(norm)
    return _FULL_STOP.sub(lambda m: "." + " " * (len(m.group()) - 1), norm)


# a scanned or faxed report's "adenocarcin0ma", "moderate1y": a 1 or 0 inside a word
_OCR_WORD = re.compile(
    r"(?<![a-z0-9])[a-z]+[01][a-z01]*[a-z](?![a-z0-9])"
    r"|(?<![a-z0-9])[a-z][01][a-z]{2,}(?![a-z0-9])"
)


@lru_cache(maxsize=1)
def _lexicon_words() -> frozenset[str]:
    """Every word of four letters or more the pathology vocabulary uses, and the words of
    the invasion and margin rules written in this module."""
    return frozenset(re.findall(r"[a-z]{4,}", json.dumps(_lex()).lower())) | _RULE_WORDS


_RULE_WORDS = frozenset(
    {
        "lymphovascular", "angiolymphatic", "lymphatic", "vascular", "visceral", "pleural",
        "parenchymal", "bronchial", "margin", "margins", "invasion", "identified",
        "involved", "absent", "present",
    }
)  # fmt: skip

# a voided original printed above an amended report ("——以下为原报告，已作废——" …
# "——以上为原报告——"; "ORIGINAL REPORT (SUPERSEDED)" … "AMENDED DIAGNOSIS"): it feeds nothing
_VOIDED = re.compile(
    r"(?:以下为原报告|原报告如下|original report|superseded report|previous report)"
    r"[^\n]*(?:作废|废止|superseded|void|withdrawn|cancel+ed)[^\n]*"
    r"(?:\n(?![ \t]*【|[^\n]*(?:以上为原报告|修正后|修订后|更正后|amended|corrected|revised))"
    r"[^\n]*)*"
)


def _blank_voided(norm: str) -> str:
    return _VOIDED.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), norm)


def _ocr_fix(m: re.Match[str]) -> str:
    """The word read with 1 as l and 0 as o, when that is a vocabulary word; else as is
    (a code such as "pt1a" stays)."""
    word = m.group(0).translate(_OCR_DIGITS)
    return word if word in _lexicon_words() else m.group(0)


_OCR_DIGITS = str.maketrans("10", "lo")

# a faxed capital I read as a small l inside an upper-case word: "CARClNOMA", "SPEClMEN"
_CAPS_WORD = re.compile(r"[A-Zl](?<![A-Za-z][A-Zl])[A-Zl]{3,}(?![A-Za-z])")


def _ocr_capital_i(text: str, norm: str) -> str:
    """`norm` with the small l of an upper-case word of `text` read as i, when that makes
    a vocabulary word; offsets unchanged."""
    for m in _CAPS_WORD.finditer(text):
        word = m.group(0)
        if "l" not in word or word.count("l") == len(word):
            continue
        fixed = word.replace("l", "I").lower()
        if fixed in _lexicon_words():
            norm = norm[: m.start()] + fixed + norm[m.end() :]
    return norm


def find(text: str, norm: str, lang: str, secs: list[Section]) -> list[Mention]:
    norm = _fold(norm, text)
    out: list[Mention] = []
    out += _find_histology(norm)
    out += _find_differentiation(norm)
    out += _find_site(norm)
    out += _find_sizes(norm)
    out += _find_tnm(norm)
    out += _find_nodes(norm)
    out += _find_margins(norm)
    out += _find_invasion(text, norm)
    out += _find_molecular(norm)
    return sorted(out, key=lambda m: (m.start, m.end))


def _ordered(ms: list[Mention], zones: list[tuple[int, int, str]]) -> list[Mention]:
    """Mentions in the order to trust them: diagnosis lines first, clinical notes last,
    then text order."""
    return sorted(ms, key=lambda m: (_rank(zones, m.start), m.start))


@lru_cache(maxsize=1)
def _weak_res() -> tuple[re.Pattern[str], re.Pattern[str]]:
    spec = _lex()["weak_uncertainty"]
    return re.compile("(?:" + _alt(spec["before"]) + ")[^,;。]{0,12}$"), re.compile(
        r"^\s*(?:" + _alt(spec["after"]) + ")"
    )


_QUERY = re.compile(r"\?\s*$")  # "?hamartoma ?carcinoid": a clinical query, not a finding


def _weakly_doubted(norm: str, m: Mention) -> bool:
    """ "不除外腺癌", "suspicious for adenocarcinoma": a doubt too weak to be a diagnosis."""
    if not m.uncertain:
        return False
    before, after = _weak_res()
    c_start, c_end = _clause_at(norm, m.start)
    return bool(
        before.search(norm[max(c_start, m.start - 30) : m.start])
        or after.match(norm[m.end : min(c_end, m.end + 12)])
    )


def _pick_histology(
    ms: list[Mention], zones: list[tuple[int, int, str]], norm: str
) -> Mention | None:
    """The diagnosis: a malignant type before a benign one; the best-placed statement
    (diagnosis lines, certain before doubted); a not-specified carcinoma yields to a
    specific type named in the same part of the report."""
    hist = [
        m
        for m in ms
        if m.label == "histology"
        and not m.negated
        and not m.historical
        and not _weakly_doubted(norm, m)
        and not _QUERY.search(norm, max(0, m.start - 3), m.start)
    ]
    generic = set(_lex()["generic_codes"]["codes"])
    malignant = [m for m in hist if m.value[0] != "benign"]
    for group in (malignant, [m for m in hist if m.value[0] == "benign"]):
        if not group:
            continue
        group.sort(key=lambda m: (_rank(zones, m.start), m.uncertain, m.start))
        first = group[0]
        if first.value[1] in generic:
            rank = _rank(zones, first.start)
            for m in group:
                if _rank(zones, m.start) == rank and m.value[1] not in generic:
                    return m
        return first
    stated = [m for m in ms if m.label == "benign_statement"]
    return _ordered(stated, zones)[0] if stated else None


_NOT_THIS_SPECIMEN = re.compile(
    r"本次(?:标本)?未(?:做|检测|检|测|行)|"
    r"(?<![a-z])not (?:repeated|retested|re-?tested|performed|done) (?:on|in) "
    r"(?:this|the current|the present) (?:specimen|sample|resection)"
)


def _line(norm: str, pos: int) -> str:
    end = norm.find("\n", pos)
    return norm[norm.rfind("\n", 0, pos) + 1 : len(norm) if end < 0 else end]


_NET_GRADE = re.compile(r"(?:[a-z ]*grade|组织学分级|分级)?\s*:?\s*g?(?:[1-4]|iv|i{1,3})\s*级?")
_GRADE_ORDER = ("well", "moderate", "poor", "undifferentiated")


def _worst_in_sentence(norm: str, ms: list[Mention]) -> list[Mention]:
    """The first grade statement, made the worst grade its sentence names ("高分化为主，
    局灶中分化" -> moderate, "moderately differentiated with poorly differentiated
    areas" -> poor)."""
    if not ms:
        return ms
    first = ms[0]
    same = [
        m
        for m in ms
        if m.value in _GRADE_ORDER
        and not _SENTENCE_END.search(norm, min(first.end, m.end), max(first.start, m.start))
    ]
    worst = max(same, key=lambda m: _GRADE_ORDER.index(str(m.value)), default=first)
    return [worst] if first.value in _GRADE_ORDER else ms


_SENTENCE_END = re.compile(r"[。\n]|\.(?=\s)")


def _nodes(ex: Extraction, ms: list[Mention], zones: list[tuple[int, int, str]]) -> None:
    rows = [m for m in ms if m.label == "lymph_nodes"]
    stations: dict[str, Mention] = {}
    for m in rows:
        key = m.value[2]
        if key is not None and key not in stations:
            stations[key] = m
        elif key is not None and None in stations[key].value[:2] and None not in m.value[:2]:
            # "three lymph nodes, negative (0/3)": the count that says both numbers
            stations[key] = m
    if len(stations) >= 3:
        # "stn 10L 1/3, stn 11L 2/4, … ; metastatic carcinoma in hilar nodes (3/14)": a
        # count after the numbered stations that is their sum repeats them
        key, m = max(stations.items(), key=lambda kv: kv[1].start)
        rest = [o.value for k, o in stations.items() if k != key]
        if (
            not re.search(r"\d", key)
            and None not in m.value[:2]
            and all(None not in v[:2] for v in rest)
            and m.value[:2] == (sum(v[0] for v in rest), sum(v[1] for v in rest))
        ):
            del stations[key]
    totals = [m for m in rows if m.value[2] is None and None not in m.value[:2]]
    if stations and totals and all(None not in m.value[:2] for m in stations.values()):
        # "Lymph nodes 1/9 (level 10L 1/2)": a total over more nodes than the stations
        # named is the count; the stations are only part of it
        total = max(totals, key=lambda m: m.value[0])
        named = [m.value for m in stations.values()]
        if total.value[0] > sum(v[0] for v in named) and total.value[1] >= sum(v[1] for v in named):
            stations = {}
            rows = [total]
    if stations:
        use = list(stations.values())
    elif rows:
        use = [_ordered(rows, zones)[0]]
    else:
        return
    examined = [m.value[0] for m in use]
    positive = [m.value[1] for m in use]
    if all(v is not None for v in examined):
        for m in use:
            ex.put("lymph_nodes_examined", sum(examined), m.start, m.end)
    if all(v is not None for v in positive):
        for m in use:
            ex.put("lymph_nodes_positive", sum(positive), m.start, m.end)


_PART = re.compile(r"\n[ \t]*[a-h][.)][ \t]+(?=[a-z\u4e00-\u9fff(])")


def _tumour_part(norm: str, h: Mention | None) -> tuple[int, int]:
    """The lettered specimen part ("B. Lung, right upper lobe, wedge resection: …") that
    names the chosen histology, when it is not the first part: a benign first specimen
    ("A. … hamartoma") does not give the tumour's site or size. Else the whole text."""
    if h is None:
        return 0, len(norm)
    # a "\n" put before the text: each match's start is its line's start in `norm`
    starts = [m.start() for m in _PART.finditer("\n" + norm)]
    before = [a for a in starts if a <= h.start]
    if len(starts) < 2 or len(before) < 2:
        return 0, len(norm)
    after = [a for a in starts if a > h.start]
    return before[-1], after[0] if after else len(norm)


def assemble(
    mentions: list[Mention], text: str, norm: str, lang: str, secs: list[Section]
) -> Extraction:
    ex = Extraction.empty(FIELDS)
    norm = _fold(norm, text)
    zones = _zones(norm)

    def by(label: str) -> list[Mention]:
        return _ordered([m for m in mentions if m.label == label], zones)

    h = _pick_histology(mentions, zones, norm)
    if h is not None:
        ex.put("histology", h.value[0], h.start, h.end)
        if h.value[1]:
            ex.put("icdo3_morphology", h.value[1], h.start, h.end)

    grades = by("differentiation")
    if h is not None and h.value[0] == "carcinoid":
        # a carcinoid's "G1"/"grade 2" is its neuroendocrine tumour grade (mitoses,
        # Ki-67), not a differentiation
        grades = [m for m in grades if not _NET_GRADE.fullmatch(norm, m.start, m.end)]
    for m in _worst_in_sentence(norm, grades)[:1]:
        ex.put("differentiation", m.value, m.start, m.end)

    part = _tumour_part(norm, h)
    sites = by("site")
    sites = [m for m in sites if part[0] <= m.start < part[1]] or sites
    both = [m for m in sites if m.value[0] and m.value[1]]
    for m in (both or [m for m in sites if m.value[0]])[:1]:
        ex.put("laterality", m.value[0], m.start, m.end)
    for m in (both or [m for m in sites if m.value[1]])[:1]:
        ex.put("lobe", m.value[1], m.start, m.end)

    # a clinical note's size is the imaging size, not a measurement of the specimen
    sizes = [m for m in mentions if m.label == "tumor_size_cm" and _rank(zones, m.start) < 3]
    whole = [m for m in sizes if not _INVASIVE_SIZE.search(norm, max(0, m.start - 40), m.start)]
    sizes = whole or sizes  # "total size 14 mm, invasive size 3 mm": the total is the size
    sizes = [m for m in sizes if part[0] <= m.start < part[1]] or sizes
    sizes.sort(key=lambda m: m.start)
    for m in sizes[:1]:
        ex.put("tumor_size_cm", m.value, m.start, m.end)

    for axis in ("pT", "pN", "pM"):
        # a stage quoted in the clinical note is an earlier operation's ("History of
        # renal cell carcinoma (nephrectomy 2021, pT2N0)"), not this specimen's
        for m in [m for m in by(axis) if _rank(zones, m.start) < 3][:1]:
            ex.put(axis, m.value, m.start, m.end)

    _nodes(ex, mentions, zones)

    margins = by("margin")
    positive = [m for m in margins if m.value == "positive"]
    for m in (positive or margins)[:1]:
        ex.put("margin", m.value, m.start, m.end)

    for label, name in (("vpi", "visceral_pleural_invasion"), ("lvi", "lymphovascular_invasion")):
        found = by(label)
        # a PL0-PL3 code is the pathologist's graded statement; it outranks prose
        # such as a gross "abuts ... the pleura"
        coded = [m for m in found if _PL_CODE.search(norm, m.start, m.end)]
        for m in (coded or found)[:1]:
            ex.put(name, m.value, m.start, m.end)

    for label, name in (("egfr", "egfr"), ("alk", "alk")):
        # "EGFR、ALK：治疗前穿刺已检测（均阴性），本次未做": an earlier specimen's result
        own = [m for m in by(label) if not _NOT_THIS_SPECIMEN.search(_line(norm, m.start))]
        for m in own[:1]:
            ex.put(name, m.value, m.start, m.end)
    # a value quoted in the clinical note is an earlier test's ("外院 PD-L1 TPS 60%")
    pdl1 = [m for m in by("pdl1") if m.value is not None and _rank(zones, m.start) < 3]
    for m in pdl1[:1]:
        ex.put("pdl1_tps_percent", m.value, m.start, m.end)
    return ex
