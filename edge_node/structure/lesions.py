"""PET-CT lesions: site mentions, measurements, judgement cues, and the matching of
the findings' and the impression's mentions of one lesion into one record.

The rules (documented with examples in `devset/README-petct.md`):
- a report is cut into units (clauses, cut again at section starts); inside a unit
  each site mention that is not a landmark ("邻近胸膜", "abutting the pleura") or a
  reference region ("纵隔血池", "liver background") owns the text from the last
  separator before it to the next owner: its *part*;
- a part describes a lesion when it holds a lesion word or a measurement that is not
  negated; a site listed with the next one ("左肺门、纵隔见淋巴结", "hilar and
  subcarinal nodes") shares that one's description;
- one record per distinct lesion: a findings part at a site that already has a
  lesion is a new lesion when both carry their own measurement (two liver lesions
  each with a size); a group described with one measurement ("多发骨转移", "nodes at
  4R and 7, the largest 1.3 cm") stays one lesion (largest size, highest SUVmax);
- an impression mention at a site with several lesions judges the one whose value
  or station it repeats, the one of the same rank, or else all of them;
- size and SUVmax come from the findings (the impression when the findings give
  none), tendency from the impression (the findings when the impression is silent).

Vocabulary lives in `data/petct.json`.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from edge_node.structure.text import (
    Section,
    clauses,
    data,
    literal_first,
    required_literal,
    word_alternation,
)

DATA = "petct.json"
MAX_SIZE_CM = 40.0  # larger "sizes" are misreadings, not lesions
MAX_SUV = 100.0

LOBES = (
    "right_upper_lobe",
    "right_middle_lobe",
    "right_lower_lobe",
    "left_upper_lobe",
    "left_lower_lobe",
)
NODE_SITES = ("mediastinal_lymph_node", "hilar_lymph_node", "supraclavicular_lymph_node")
IGNORED_SECTIONS = frozenset(
    {"history", "admission", "course", "discharge_diagnosis", "clinical", "gross",
     "microscopic", "ihc", "molecular", "ignored"}
)  # fmt: skip


@dataclass(frozen=True)
class SiteHit:
    start: int
    end: int
    site: str
    detail: str = ""  # organ for site "other", side for a lung named without its lobe
    weak: bool = False  # a lung without its lobe ("右肺", "lung cancer")
    several: bool = False  # consecutive mentions of one site merged ("纵隔4R区、7区")

    @property
    def key(self) -> tuple[str, str]:
        return (self.site, self.detail)


@dataclass(frozen=True)
class Number:
    start: int
    end: int
    value: float


@dataclass
class Part:
    """The text one site mention owns inside a unit."""

    hit: SiteHit
    start: int
    end: int
    section: str  # "findings" or "impression"
    negated: bool = False
    lesion_cue: bool = False
    noun: bool = False
    physio: bool = False
    historical: bool = False  # "右肺上叶切除术后", "status post right upper lobectomy"
    recommend: bool = False  # named only inside a recommendation ("建议…除外脑转移")
    norm_text: str = ""  # the part's normalised text, for matching by station label
    unit: int = -1  # start of the unit (clause) the part is in
    # one site, several lesions measured "respectively" ("肝S4及S7段见两枚低密度灶，大小分别
    # 约2.3cm、1.5cm，SUVmax分别为7.1、4.9"): (size, SUVmax) of each
    split: list[tuple[float | None, float | None]] = field(default_factory=list)
    node: bool = False  # a node word ("淋巴结", "node") in the part
    abnormal: bool = False  # a lesion word other than a node word
    borrowed: bool = False  # judged only by the site listed after it
    sizes: list[float] = field(default_factory=list)
    suvs: list[float] = field(default_factory=list)
    cues: set[str] = field(default_factory=set)  # tendency / role cue categories
    shared_from: Part | None = None
    suv_own: float | None = None  # "SUVmax 4.8 and 5.5 respectively"
    size_own: float | None = None


@dataclass
class Lesion:
    key: tuple[str, str]
    site: str
    parts: list[Part] = field(default_factory=list)

    @property
    def first(self) -> int:
        return min(p.hit.start for p in self.parts)


# --------------------------------------------------------------------------- vocabulary


def _alts(words: list[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


def _both(d: dict[str, list[str]]) -> str:
    return "(?:" + _words(d["zh"], "zh") + ")|(?:" + _words(d["en"], "en") + ")"


def _mixed(words: list[str]) -> str:
    """Alternation of Chinese and English words, each bounded as its language needs."""
    return _trie(words, lambda first: first.isascii())


def _words(words: list[str], lang: str) -> str:
    """Alternation of plain words; English words get word boundaries."""
    return _trie(words, lambda first: lang == "en")


def _trie(words: list[str], english: Callable[[str], bool]) -> str:
    """The alternation of `words` as a prefix tree, the longest word first where several
    match at a place (what a flat alternation sorted longest first does, but `re` tries
    only the branch of the character in front of it). An English word (decided by its
    first character) gets a word boundary before and after where it starts or ends with
    a letter or digit."""
    root: dict[str, Any] = {}
    for w in words:
        if w:
            node = root
            for ch in w:
                node = node.setdefault(ch, {})
            node[""] = {}

    def emit(node: dict[str, Any], last: str, en: bool) -> str:
        alts = [re.escape(ch) + emit(child, ch, en) for ch, child in sorted(node.items()) if ch]
        if "" in node:
            alts.append(r"\b" if en and last.isalnum() else "")
        return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"

    out = []
    for ch, child in sorted(root.items()):
        if ch:
            en = english(ch)
            lit = re.escape(ch)
            if en and ch.isascii() and ch.isalnum():
                # the start boundary tested after the first character ("c(?<!\wc)" is
                # "\bc" for a word character c): every branch then opens on a literal,
                # and `re` skips to the positions holding a possible first character
                out.append(lit + rf"(?<!\w{lit})" + emit(child, ch, en))
            else:
                out.append((r"\b" if en and ch.isalnum() else "") + lit + emit(child, ch, en))
    return "|".join(out)


@dataclass(frozen=True)
class Vocab:
    sites: list[tuple[re.Pattern[str], str, str, bool]]  # pattern, site, detail, weak
    site_literals: list[str]  # what each site pattern's every match contains
    vertebra: re.Pattern[str]
    vertebra_near: re.Pattern[str]
    vertebra_window: int
    stations: list[re.Pattern[str]]
    station_list: re.Pattern[str]
    station_site: dict[int, str]
    lesion_cue: re.Pattern[str]
    lesion_noun: re.Pattern[str]
    before: re.Pattern[str]
    after: re.Pattern[str]
    reference: re.Pattern[str]
    physio: re.Pattern[str]
    neg_pre: dict[str, re.Pattern[str]]
    neg_post: dict[str, re.Pattern[str]]
    neg_break: dict[str, re.Pattern[str]]
    tendency: dict[str, re.Pattern[str]]
    # per category, a cheap pattern of what its every match contains (None: no filter)
    tendency_literals: dict[str, re.Pattern[str] | None]
    node_word: re.Pattern[str]
    distant: frozenset[str]
    ignore_heading: re.Pattern[str]
    extra_heading: re.Pattern[str]
    historical: re.Pattern[str]
    prior: re.Pattern[str]
    combined: list[tuple[re.Pattern[str], list[str]]]
    mass_word: re.Pattern[str]
    generic_node: re.Pattern[str]
    conj: re.Pattern[str]
    physio_strong: re.Pattern[str]
    degenerative: re.Pattern[str]
    resolved: re.Pattern[str]
    tneg_pre: re.Pattern[str]
    tneg_post: re.Pattern[str]
    recommend: re.Pattern[str]
    size_bound: re.Pattern[str]
    another: re.Pattern[str]
    comparison: re.Pattern[str]
    stage: re.Pattern[str]
    treatment_change: re.Pattern[str]
    no_residual: re.Pattern[str]
    simplified: dict[int, str]
    same_lobe: re.Pattern[str]
    rest: re.Pattern[str]
    absent: re.Pattern[str]
    location: re.Pattern[str]
    side: re.Pattern[str]


def _rx(pattern: str) -> re.Pattern[str]:
    """Vocabulary patterns use ASCII word boundaries, so an English word next to a
    Chinese one still counts as a word ("RUL癌", "LN转移")."""
    return re.compile(pattern, re.ASCII)


@lru_cache(maxsize=1)
def vocab() -> Vocab:
    spec: dict[str, Any] = data(DATA)
    # (pattern as written, site, detail, weak); scanned with its look-behinds moved
    # after the first character (`literal_first`), the same matches found sooner
    written: list[tuple[str, str, str, bool]] = []
    for site, pats in spec["sites"].items():
        written += [(p, site, "", False) for p in pats]
    for organ, pats in spec["other_organs"].items():
        written += [(p, "other", organ, False) for p in pats]
    for side, pats in spec["lung_generic"].items():
        if side != "comment":
            written += [(p, "other", f"lung:{side}", True) for p in pats]
    sites = [(_rx(literal_first(p)), site, detail, weak) for p, site, detail, weak in written]
    vert = spec["vertebra_levels"]
    st = spec["stations"]
    station_site = {n: "supraclavicular_lymph_node" for n in st["supraclavicular"]}
    station_site |= {n: "mediastinal_lymph_node" for n in st["mediastinal"]}
    station_site |= {n: "hilar_lymph_node" for n in st["hilar"]}
    cues, nouns, nl = spec["lesion_cues"], spec["lesion_nouns"], spec["not_a_lesion"]
    neg = spec["negation"]
    tendency = {
        cat: _rx("|".join(f"(?:{literal_first(p)})" for p in pats))
        for cat, pats in spec["tendency"].items()
    }
    tendency["malignant"] = _rx(
        tendency["malignant"].pattern + "|" + literal_first(r"(?<![a-z])mt(?![a-z])")
    )
    tendency_literals: dict[str, re.Pattern[str] | None] = {}
    for cat, pats in spec["tendency"].items():
        lits = [required_literal(_rx(p)) for p in pats] + (["mt"] if cat == "malignant" else [])
        tendency_literals[cat] = (
            None if "" in lits else re.compile(word_alternation(lits, bound=False))
        )
    return Vocab(
        sites=sites,
        site_literals=[required_literal(_rx(p)) for p, *_ in written],
        vertebra=_rx(vert["pattern"]),
        vertebra_near=_rx(_mixed(vert["near"])),
        vertebra_window=int(vert["window"]),
        stations=[_rx(p) for p in st["patterns"]],
        station_list=_rx(st["list_pattern"]),
        station_site=station_site,
        lesion_cue=_rx(_both(cues)),
        lesion_noun=_rx(_both(nouns)),
        # up to two describing words between ("abutting the posterior costal pleura")
        before=_rx("(?:" + _mixed(nl["before"]) + r")\s*(?:the\s+)?(?:[a-z]+\s+){0,2}$"),
        after=_rx(r"\s*(?:" + _mixed(nl["after"]) + ")"),
        reference=_rx(_mixed(nl["reference"])),
        physio=_rx(_mixed(nl["physiological"])),
        neg_pre={k: _rx(_words(neg[f"{k}_pre"], k)) for k in ("zh", "en")},
        neg_post={k: _rx(_words(neg[f"{k}_post"], k)) for k in ("zh", "en")},
        neg_break={k: _rx(_words(neg[f"{k}_break"], k)) for k in ("zh", "en")},
        tendency=tendency,
        tendency_literals=tendency_literals,
        node_word=_rx(literal_first("|".join(spec["role_rules"]["node_words"]))),
        distant=frozenset(spec["role_rules"]["distant"]),
        ignore_heading=_rx(
            r"(?:(?:^|(?<=\n)|(?<=\.\s))[ \t#*\[]*(?:(?P<line>"
            + _alts(spec["ignore_headings"]["line"])
            + ")|(?P<sentence>"
            + _alts(spec["ignore_headings"]["sentence"])
            # a Chinese heading may follow other header fields on its line
            # ("检查日期:2026-10-22 适应症:…")
            + r"))|(?<=[ \t])(?P<zline>"
            + _alts([w for w in spec["ignore_headings"]["line"] if not w.isascii()])
            + r"))[ \t\]]*:"
        ),
        extra_heading=_rx(
            r"(?:^|(?<=\n))[ \t#*\[]*(?:(?P<find>"
            + _alts(spec["extra_headings"]["findings"])
            + ")|(?P<imp>"
            + _alts(spec["extra_headings"]["impression"])
            + r"))[ \t\]]*(?::|\n)"
        ),
        historical=_rx(_mixed(nl["historical"])),
        combined=[
            (_rx(k), list(val)) for k, val in spec["combined_sites"].items() if k != "comment"
        ],
        generic_node=_rx(literal_first(spec["role_rules"]["generic_node"]["pattern"])),
        mass_word=_rx("|".join(spec["central_mass"]["mass_words"])),
        prior=_rx(_mixed(nl["prior"])),
        conj=_rx(
            r"^(?:\s|,|、|"
            + _words(spec["conjunctions"]["zh"], "zh")
            + "|"
            + _words(spec["conjunctions"]["en"], "en")
            + r")+$"
        ),
        physio_strong=_rx(_mixed(nl["physiological_strong"])),
        degenerative=_rx(_mixed(nl["degenerative"])),
        resolved=_rx(_mixed(nl["resolved"])),
        tneg_pre=_rx("(?:" + _mixed(spec["tendency_negation"]["pre"]) + r")[^,;:]{0,25}$"),
        tneg_post=_rx(
            r"^[^,;:]{0,6}(?:(?:"
            + _mixed(spec["tendency_negation"]["copula"])
            + r")\s+)*(?:"
            + _mixed(spec["tendency_negation"]["post"])
            + ")"
        ),
        recommend=_rx(literal_first("|".join(spec["recommendation"]["words"]))),
        stage=_rx(spec["stage_statement"]["pattern"]),
        treatment_change=_rx(literal_first(spec["treatment_change"]["pattern"])),
        no_residual=_rx("|".join(spec["treatment_change"]["no_residual"])),
        comparison=_rx(_mixed(nl["comparison"])),
        another=_rx("(?:" + "|".join(spec["another_lesion"]["words"]) + ")"),
        simplified={
            ord(t): s
            for t, s in zip(
                spec["traditional_chars"]["map"][::2],
                spec["traditional_chars"]["map"][1::2],
                strict=True,
            )
        },
        same_lobe=_rx(literal_first("|".join(spec["same_lobe"]["patterns"]))),
        rest=_rx(literal_first("|".join(spec["rest_of_site"]["words"]))),
        absent=_rx(r"\s*(?:" + _mixed(nl["absent_after_surgery"]) + ")"),
        location=_rx("(?:" + _mixed(nl["location"]) + r")\s*(?:the\s+)?$"),
        side=_rx(spec["side_list"]["pattern"]),
        size_bound=_rx(
            "(?:" + _mixed(spec["size_bounds"]["words"]) + r")\s*(?:约|approx\w*\.?|about)?\s*$"
        ),
    )


# Patterns of the rules below, compiled once (not looked up in `re`'s cache per call).
_WINDOW_END = re.compile(r"[。;\n]|\.(?=\s)")
_SEGMENT = re.compile(r"\s*(?:段|segment)")
_BLANK = re.compile(r"\s")
_HEAD_CUT = re.compile(r"[,;:]")
_LEAD_CUT = re.compile(r"[,;:。]")
_SIDE_AT_END = re.compile(r"(?:(?:左|右|双|两)侧?|\b(?:left|right|bilateral|ipsilateral)\b)\s*$")
_BRACKETED = re.compile(r"\([^()]*\)")
_EN_STOP = re.compile(r"[;:]")
_ZH_SEES = re.compile(r"见|示")
_EN_SEES = re.compile(r"\b(?:with|shows?|demonstrates?|has)\b")
_RESPECTIVELY = re.compile(r"respectively|分别")
_ACCOMPANY = re.compile(literal_first(r"伴|合并|并发|\bwith\b|\bassociated\b|\("))


def _blanked(m: re.Match[str]) -> str:
    return " " * len(m.group(0))


# --------------------------------------------------------------------------- numbers

_NUM = r"(\d+(?:\.\d+)?)"
_UNIT = r"(cm|mm|厘米|毫米|公分|公厘|㎝|㎜)"
_SIZE = re.compile(
    # "(?<![\d.a-z])(\d+" with the look-behind after the first digit: `re` then jumps
    # from digit to digit instead of trying every position
    rf"(\d(?<![\d.a-z]\d)\d*(?:\.\d+)?)\s*{_UNIT}?(?:\s*[x*]\s*{_NUM}\s*{_UNIT}?)?"
    rf"(?:\s*[x*]\s*{_NUM}\s*{_UNIT}?)?(?:(?<=cm)s)?(?![a-z0-9])"  # "2.5 cms"
)
_SUV = re.compile(
    r"(?:suv\s*[-_]?\s*max|suv\s*\(\s*max\s*\)|max(?:imum|\.)?\s+suv|suv\s*最大值|最大标准摄取值(?:\s*\(\s*suv\s*max\s*\))?"
    r"|最大摄取值|suv(?!\s*(?:mean|peak|avg|平均|均值|lbm|bw\s*mean)))"
    r"(?:\s|[:=()~≈]|值|约|为|达|高达|是|分别|早期相?|\bearly\b"
    r"|\bof\b|\bup to\b|\bwas\b|\bis\b|\bnow\b|\bcurrently\b|\bapprox\w*\.?|\babout\b)*"
    r"(\d+(?:\.\d+)?)(?:\s*(?:-|~|至|to)\s*(\d+(?:\.\d+)?))?"
)


_SUV_DELAYED = re.compile(
    r"(?:delayed|延迟(?:显像|相|期)?)(?:\s|[:=()]|suv\s*max|值|约|为|\bof\b)*"
    r"(\d+(?:\.\d+)?)(?![\d.]|\s*(?:cm|mm|h\b|min|小时|分钟|hours?))"
)


def sizes(norm: str, start: int = 0, end: int | None = None) -> list[Number]:
    """Size statements in cm: the largest dimension of each ("2.3x1.8cm" -> 2.3,
    "18mm" -> 1.8, "45mmx38mm" -> 4.5)."""
    out = []
    for m in _SIZE.finditer(norm, start, len(norm) if end is None else end):
        nums = [m.group(i) for i in (1, 3, 5)]
        units = [m.group(i) for i in (2, 4, 6)]
        got = [(n, u) for n, u in zip(nums, units, strict=True) if n is not None]
        if got[-1][1] is None:
            continue  # no unit after the last number: not a size
        vals = []
        unit = got[-1][1]
        for n, u in reversed(got):
            unit = u or unit
            vals.append(float(n) / (10.0 if unit in ("mm", "毫米", "公厘", "㎜") else 1.0))
        if vocab().size_bound.search(norm, max(0, m.start() - 12), m.start()):
            continue  # "短径均<1.0cm": a threshold, not a measurement
        if 0 < max(vals) <= MAX_SIZE_CM:
            out.append(Number(m.start(), m.end(), round(max(vals), 2)))
    stop = len(norm) if end is None else end
    out += [n for n in _table_sizes(norm) if start <= n.start and n.end <= stop]
    return sorted(out, key=lambda n: n.start)


def _table_column(norm: str, head: re.Pattern[str]) -> list[tuple[Number, str]]:
    """Cells under a column of a table written with | or tabs whose heading matches
    `head`, with the heading: each cell a number or numbers joined by "x"."""
    out: list[tuple[Number, str]] = []
    col: int | None = None
    title = ""
    pos = 0
    for line in norm.split("\n"):
        sep = "|" if "|" in line else ("\t" if "\t" in line else None)
        if sep is None:
            col = None
        else:
            cells = line.split(sep)
            heads = [i for i, c in enumerate(cells) if head.fullmatch(c.strip())]
            if heads:
                col, title = heads[0], cells[heads[0]]
            elif col is not None and col < len(cells):
                at = pos + sum(len(c) + 1 for c in cells[:col])
                m = re.fullmatch(
                    r"\s*(\d+(?:\.\d+)?(?:\s*[x*]\s*\d+(?:\.\d+)?){0,2})\s*", cells[col]
                )
                if m:
                    vals = [float(x) for x in re.findall(r"\d+(?:\.\d+)?", m.group(1))]
                    out.append((Number(at + m.start(1), at + m.end(1), max(vals)), title))
        pos += len(line) + 1
    return out


@lru_cache(maxsize=4)
def _table_suvs(norm: str) -> list[Number]:
    """Values under an "SUVmax" column of a table."""
    return [n for n, _ in _table_column(norm, re.compile(r"suv\s*(?:max)?"))]


_TABLE_SIZE_HEAD = re.compile(
    r"(?:size|diameter|大小|尺寸|直径|长径)\s*\(?\s*(cm|mm|厘米|毫米|公分|公厘)\s*\)?"
)


@lru_cache(maxsize=4)
def _table_sizes(norm: str) -> list[Number]:
    """Values under a size column whose heading gives the unit ("Size (cm)", "大小(mm)");
    a bare "Size" column says no unit, so its numbers are not read as sizes."""
    out = []
    for n, title in _table_column(norm, _TABLE_SIZE_HEAD):
        unit = _TABLE_SIZE_HEAD.fullmatch(title.strip())
        scale = 10.0 if unit and unit.group(1) in ("mm", "毫米", "公厘") else 1.0
        value = round(n.value / scale, 2)
        if 0 < value <= MAX_SIZE_CM:
            out.append(Number(n.start, n.end, value))
    return out


_SUV_CHANGE = re.compile(
    r"(?:suv\s*max|suv|最大标准摄取值)[^0-9;,.]{0,24}?(?:(?:由|从|\bfrom\b)\s*(\d+(?:\.\d+)?)"
    r"[^0-9;,]{0,12}?(?:至|到|\bto\b|->|→)|(\d+(?:\.\d+)?)\s*(?:->|→))\s*(\d+(?:\.\d+)?)"
)


def suvs(norm: str, start: int = 0, end: int | None = None) -> list[Number]:
    """SUVmax statements; a range ("SUVmax 5.2-7.8") gives its upper end, a change
    ("SUVmax由14.2降至3.3", "SUVmax fell from 13.6 to 4.1", "SUVmax 9.0 -> 4.2") its
    current value."""
    out = []
    stop = len(norm) if end is None else end
    changed = list(_SUV_CHANGE.finditer(norm, start, stop))
    changes = [(m.start(), m.end()) for m in changed]
    out += [Number(m.start(), m.end(), float(m.group(3))) for m in changed]
    for m in _SUV.finditer(norm, start, stop):
        if any(a <= m.start() < b for a, b in changes):
            continue
        vals = [float(g) for g in m.groups() if g is not None]
        out.append(Number(m.start(), m.end(), max(vals)))
    out += [n for n in _table_suvs(norm) if start <= n.start and n.end <= stop]
    if out:
        # a delayed-phase value right after an SUV ("SUVmax 9.1, delayed 10.4")
        for m in _SUV_DELAYED.finditer(norm, start, stop):
            if any(0 <= m.start() - n.end <= 6 for n in out):
                out.append(Number(m.start(), m.end(), float(m.group(1))))
    return [n for n in out if n.value <= MAX_SUV]


# --------------------------------------------------------------------------- sites


@lru_cache(maxsize=4)
def simplify(norm: str) -> str:
    """Traditional characters of the report vocabulary as simplified ones, and sizes
    dictated in words as digits, one for one (kept for the report: finding and
    assembling both ask)."""
    norm = norm.translate(vocab().simplified)
    if "metre" in norm or "meter" in norm:
        norm = _SPOKEN_SIZE.sub(_spoken_size, norm)
    return norm


_NUMBER_WORDS = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen", "twenty",
]  # fmt: skip
_WHOLE = "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True))
_DIGIT = "|".join(_NUMBER_WORDS[:10])
# "measuring one point four centimetres", "a new nine millimetre nodule": each
# alternative opens on a letter, so `re` skips to candidate positions
_SPOKEN_SIZE = re.compile(
    rf"({_WHOLE})((?: point (?:{_DIGIT}))?(?: (?:{_DIGIT}))*)"
    r"[ -](centi|milli)met(?:re|er)s?(?![a-z])"
)


def _spoken_size(m: re.Match[str]) -> str:
    """The dictated size as "1.4 cm", padded with blanks to the words' length."""
    if m.start() > 0 and m.string[m.start() - 1].isalpha():
        return m.group(0)  # "someone …": not a number word
    decimals = m.group(2).replace(" point ", " ").split()
    if decimals and " point " not in m.group(2):
        return m.group(0)  # "one two centimetres": no point, not one number
    value = str(_NUMBER_WORDS.index(m.group(1)))
    if decimals:
        value += "." + "".join(str(_NUMBER_WORDS.index(d)) for d in decimals)
    out = value + (" cm" if m.group(3) == "centi" else " mm")
    return out.ljust(len(m.group(0)))


def site_hits(norm: str) -> list[SiteHit]:
    """Every site word in the text, the longest where two overlap."""
    return list(_site_hits_of(norm))


@lru_cache(maxsize=8)
def _site_hits_of(norm: str) -> tuple[SiteHit, ...]:
    # finding and assembling both ask for one report's hits (a third of the time)
    return tuple(_site_hits(norm))


@lru_cache(maxsize=1)
def _sites_by_first_char() -> tuple[dict[str, tuple[int, ...]], tuple[int, ...]]:
    """Indices of the site patterns by the first character of their required literal,
    and those with none (always scanned)."""
    by: dict[str, list[int]] = {}
    always = []
    for i, lit in enumerate(vocab().site_literals):
        if lit:
            by.setdefault(lit[0], []).append(i)
        else:
            always.append(i)
    return {c: tuple(ix) for c, ix in by.items()}, tuple(always)


def _site_candidates(norm: str) -> list[int]:
    """Indices, in vocabulary order, of the site patterns whose literal the text holds:
    most of ~200 patterns cannot match, and their literals' first characters rule out
    most of them with one set operation per report."""
    by_first, always = _sites_by_first_char()
    lits = vocab().site_literals
    found = [*always]
    for ch in by_first.keys() & set(norm):
        found += [i for i in by_first[ch] if lits[i] in norm]
    found.sort()
    return found


def _site_hits(norm: str) -> list[SiteHit]:
    v = vocab()
    raw: list[SiteHit] = []
    for i in _site_candidates(norm):
        pat, site, detail, weak = v.sites[i]
        raw += [SiteHit(m.start(), m.end(), site, detail, weak) for m in pat.finditer(norm)]
    levels: list[re.Match[str]] = []
    spinal: set[str] = set()
    for m in v.vertebra.finditer(norm):
        window = _WINDOW_END.split(norm[m.end() : m.end() + v.vertebra_window])[0]
        if _SEGMENT.match(window) or norm[max(0, m.start() - 2) : m.start()].find("肝") != -1:
            continue  # liver segment S7
        levels.append(m)
        if v.vertebra_near.search(window):
            spinal.add(_BLANK.sub("", m.group(0)))
    # a level the report once calls vertebral ("T9 vertebral body") is the same bone
    # when named bare later ("right adrenal and T9 lesions")
    raw += [
        SiteHit(m.start(), m.end(), "bone") for m in levels if _BLANK.sub("", m.group(0)) in spinal
    ]
    for pat in v.stations:
        for m in pat.finditer(norm):
            station = v.station_site.get(int(m.group(1)))
            if station:
                raw.append(SiteHit(m.start(), m.end(), station))
    for m in v.station_list.finditer(norm):
        # "stations 10L and 5": every number of the list is a station
        for n in re.finditer(r"(1[0-4]|[1-9])[rl]?", m.group(1)):
            station = v.station_site.get(int(n.group(1)))
            if station:
                at = m.start(1) + n.start()
                raw.append(SiteHit(at, m.start(1) + n.end(), station))
    for pat, both in v.combined:
        if required_literal(pat) in norm:
            raw += [
                SiteHit(m.start(), m.end(), "combined", "|".join(both)) for m in pat.finditer(norm)
            ]
    for m in v.same_lobe.finditer(norm):
        # "同叶后段另见一小结节": the lobe named last
        lobes = [h for h in raw if h.site in LOBES and h.end <= m.start()]
        if lobes:
            last = max(lobes, key=lambda h: h.start)
            raw.append(SiteHit(m.start(), m.end(), last.site))
    raw.sort(key=lambda h: (h.start, -(h.end - h.start)))
    out: list[SiteHit] = []
    for h in raw:
        if out and h.start < out[-1].end:
            continue
        if h.site == "combined":
            # "右肺中下叶": the two lobes, listed together (they share one description)
            first, second = h.detail.split("|")
            out += [SiteHit(h.start, h.start + 1, first), SiteHit(h.start + 1, h.end, second)]
            continue
        out.append(h)
    return out


def generic_nodes(norm: str, a: int, b: int, hits: list[SiteHit]) -> list[SiteHit]:
    """Node words in [a, b) that name no station ("伴淋巴结转移", "with nodal metastases")."""
    out = []
    for m in vocab().generic_node.finditer(norm, a, b):
        before = [h for h in hits if a <= h.start and h.end <= m.start()]
        if (
            before
            and m.start() - before[-1].end <= 14
            and not _SEP_NODE.search(norm, before[-1].end, m.start())
        ):
            continue  # "纵隔淋巴结", "mediastinal nodal": the node word belongs to the site
        out.append(SiteHit(m.start(), m.end(), "other", "nodes:any", weak=True))
    return out


_SEP_NODE = re.compile(r"[;:]|伴|并|\bwith\b")


def _is_landmark(norm: str, hit: SiteHit, unit_start: int) -> bool:
    v = vocab()
    # wide enough for "abutting the mediastinal pleura"
    head = norm[max(unit_start, hit.start - 32) : hit.start]
    head = _HEAD_CUT.split(head)[-1]
    # side words between the landmark verb and the site ("邻近左侧胸膜")
    head = _SIDE_AT_END.sub("", head)
    after = v.after.match(norm, hit.end, hit.end + 12)
    if after and norm.startswith(_POLE, after.end() - 1):
        after = None  # "腮腺下极见一结节": the organ's lower pole, not "胸膜下"
    return bool(v.before.search(head)) or bool(after) or _listed_landmark(norm, head)


_POLE = ("下极", "下缘", "下部", "下段")
_LANDMARK_CONJ = re.compile(r"(?:及|和|与|、|\band\b|&|/)\s*$")


def _listed_landmark(norm: str, head: str) -> bool:
    """A site listed after a landmark shares its verb ("包绕右主支气管及右肺门",
    "encasing the right main bronchus and hilum"): a landmark too."""
    m = _LANDMARK_CONJ.search(head)
    if m is None:
        return False
    before = vocab().before
    # the landmark named between the verb and the conjunction is at most 16 characters
    return any(before.search(head, 0, m.start() - k) for k in range(1, min(17, m.start())))


def _in_parens(norm: str, hit: SiteHit, lo: int, hi: int) -> bool:
    opened = norm.rfind("(", lo, hit.start)
    return opened != -1 and norm.find(")", opened, hit.start) == -1 and ")" in norm[hit.end : hi]


def _chunk(norm: str, pos: int, lo: int, hi: int) -> tuple[int, int]:
    """The comma chunk holding `pos` inside [lo, hi)."""
    a = max(norm.rfind(",", lo, pos), norm.rfind(";", lo, pos))
    b_candidates = [i for i in (norm.find(",", pos, hi), norm.find(";", pos, hi)) if i != -1]
    return (a + 1 if a != -1 else lo), (min(b_candidates) if b_candidates else hi)


def _is_reference(norm: str, hit: SiteHit, lo: int, hi: int) -> bool:
    """The site's comma chunk names a reference region. A bracket speaks only for itself:
    "hepatic segment VI with SUVmax 6.7 (liver background SUVmean 2.4)" keeps the
    hepatic lesion, and the bracket's "liver" is the reference."""
    a, b = _chunk(norm, hit.start, lo, hi)
    if _in_parens(norm, hit, a, b):
        opened = norm.rfind("(", a, hit.start)
        close = norm.find(")", hit.end, b)
        return bool(vocab().reference.search(norm, opened, close))
    chunk = _BRACKETED.sub(_blanked, norm[a:b])
    return bool(vocab().reference.search(chunk))


# --------------------------------------------------------------------------- negation


def negated_before(text: str, norm: str, pos: int, lo: int, lang: str) -> bool:
    """A negation cue earlier in the unit governs `pos` ("未见A、B", "no A, B or C"):
    no break word ("见", "with") between; in Chinese a full comma ends the reach, an
    enumeration comma does not. Both languages' cues are tried: mixed reports
    ("PET/CT report（18F-FDG）… 脑未见异常") are common and the cue sets do not overlap."""
    return _negated_before(text, norm, pos, lo, "zh") or _negated_before(text, norm, pos, lo, "en")


def _negated_before(text: str, norm: str, pos: int, lo: int, lg: str) -> bool:
    v = vocab()
    lo = max(lo, pos - 60)
    last = None
    for m in v.neg_pre[lg].finditer(norm, lo, pos):
        last = m
    if last is None:
        return False
    between = norm[last.end() : pos]
    if v.neg_break[lg].search(between):
        return False
    if ")" in between and "(" not in between and "(" in norm[lo : last.start()]:
        # "5 mm nodule (no FDG uptake) and LUL 7 mm nodule": the cue was an
        # aside about the lesion before, closed by its bracket
        return False
    if lg == "zh" and any(text[i] in ",，;；" for i in range(last.end(), pos)):
        return False
    return not (lg == "en" and _EN_STOP.search(between))


def negated_after(text: str, norm: str, hit: SiteHit, hi: int, lang: str) -> bool:
    """A negation right after the site ("肝脏未见异常", "纵隔淋巴结未见肿大",
    "adrenal glands are unremarkable") -- not after a lesion noun, which makes it a
    property ("甲状腺结节未见FDG摄取")."""
    return any(_negated_after(text, norm, hit, hi, lg) for lg in ("zh", "en"))


def _negated_after(text: str, norm: str, hit: SiteHit, hi: int, lg: str) -> bool:
    v = vocab()
    m = v.neg_post[lg].search(norm, hit.end, min(hi, hit.end + 45))
    if m is None:
        return False
    between = norm[hit.end : m.start()]
    if v.lesion_noun.search(between) or _SIZE.search(between) or _SUV.search(between):
        return False
    if lg == "zh":
        if _ZH_SEES.search(between):
            return False
        if any(text[i] in ",，;；" for i in range(hit.end, m.start())):
            return False
    return not (lg == "en" and _EN_SEES.search(between))


# --------------------------------------------------------------------------- regions


def _regions(text: str, norm: str, secs: list[Section]) -> list[tuple[int, int, str]]:
    """(start, end, "findings"|"impression") of the text that may describe lesions."""
    v = vocab()
    label: list[str | None] = [None] * len(norm)
    has_findings = any(s.name == "findings" for s in secs)
    cuts = [s.end for s in secs] + [m.start() for m in v.extra_heading.finditer(norm)]
    # a "comparison" or "technique" section starts right after its own heading: not a
    # section the ignored sentence or line ("Technique: … liver SUVmax 2.7.") should stop at
    starts = [
        s.start
        for s in secs
        if s.name not in IGNORED_SECTIONS and s.name not in ("body", "comparison", "technique")
    ]
    starts += [m.start() for m in v.extra_heading.finditer(norm)]
    for s in secs:
        e = s.end
        # the heading finder can take "8" of "SUV 8.8.\nIMPRESSION" for an item
        # number: give the digits back to the section they end
        while (
            e < len(norm)
            and norm[e].isdigit()
            and e >= 2
            and norm[e - 1] == "."
            and (norm[e - 2].isdigit())
        ):
            e += 1
        if s.name in IGNORED_SECTIONS or (s.name == "body" and has_findings):
            kind = None
        else:
            kind = "impression" if s.name in ("impression", "diagnosis") else "findings"
        label[s.start : e] = [kind] * (e - s.start)
        if kind is None and not has_findings and s.name in ("clinical", "history"):
            # no findings heading: the clinical note ends at the next labelled line
            # ("Indication: …\nObservations:\n- …", "Clinical: …\nChest: mass …")
            nxt = _NEXT_LABEL.search(norm, s.start, e)
            if nxt:
                label[nxt.start() : e] = ["findings"] * (e - nxt.start())
    for m in v.extra_heading.finditer(norm):
        kind = "impression" if m.group("imp") else "findings"
        e = min([c for c in cuts if c > m.end()] + [len(norm)])
        label[m.start() : e] = [None] * (m.end() - m.start()) + [kind] * (e - m.end())
    title = _TITLE.match(norm)
    if title and "\n" in norm[title.end() :] and not re.search(r"\d", _F18.sub("", title.group(0))):
        # "PET/CT - solitary pulmonary nodule (dictated)": the report's title names the
        # study and its indication, no finding
        label[: title.end()] = [None] * title.end()
    for m in v.ignore_heading.finditer(norm):
        stop = (
            re.compile(r"\n")
            if m.group("line") or m.group("zline")
            else re.compile(r"\n|[。;]|\.(?=\s)")
        )
        e = (stop.search(norm, m.end()) or re.search(r"$", norm)).start()  # type: ignore[union-attr]
        if norm.count("(", m.end(), e) > norm.count(")", m.end(), e):
            # "Comparison: 05/30/2026 (RLL mass 3.9 cm, SUVmax 13.0; right hilar node …)":
            # the prior study's values in brackets belong to the ignored sentence
            close = norm.find(")", e, norm.find("\n", e) % (len(norm) + 1))
            if close >= 0:
                e = (stop.search(norm, close) or re.search(r"$", norm)).start()  # type: ignore[union-attr]
        # a one-paragraph report ("History: … Findings: … Impression: …"): the
        # ignored heading ends where the next section begins
        e = min([c for c in starts if m.end() <= c < e] + [e])
        label[m.start() : e] = [None] * (e - m.start())
    out: list[tuple[int, int, str]] = []
    i = 0
    for kind, run in itertools.groupby(label):  # runs of one label, counted in C
        j = i + len(list(run))
        if kind is not None:
            out.append((i, j, kind))
        i = j
    return out


_TITLE = re.compile(
    r"[ \t#*]*(?:(?:18)?f-?(?:18)?\s*-?\s*)?(?:fdg\s+)?pet\s*[/-]?\s*ct\b[^\n:]{0,90}(?=\n)"
)
_F18 = re.compile(r"\b(?:18f|f-?18)\b")
_NEXT_LABEL = re.compile(r"(?<=\n)[ \t]*[a-z\u4e00-\u9fff][a-z /\u4e00-\u9fff]{1,28}:")


def _units(norm: str, regions: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Clauses cut at region edges, in text order."""
    out = []
    cl = clauses(norm)
    ends = [e for _, e in cl]
    for ra, rb, kind in regions:
        i = bisect.bisect_right(ends, ra)
        while i < len(cl) and cl[i][0] < rb:
            a2, b2 = max(cl[i][0], ra), min(cl[i][1], rb)
            if a2 < b2:
                out.append((a2, b2, kind))
            i += 1
    out.sort()
    return out


_LABEL = re.compile(r"^[ \t]*(?:[-*•]\s*)?([^:\n\d,;.]{1,30}):")


def _label_end(norm: str, unit_start: int) -> int:
    """End of a region label ("Chest:", "- Right lower lobe:") opening the unit's line."""
    line_start = norm.rfind("\n", 0, unit_start) + 1
    if norm[line_start:unit_start].strip():
        return -1
    m = _LABEL.match(norm, line_start)
    return m.end() if m else -1


# --------------------------------------------------------------------------- parts

_SEP = re.compile(
    r",|;|:|、|伴|并|及|和|与|以及|\((?!\s*(?:\d|[a-z]{0,8}\s*\d))|\b(?:and|with|or|plus)\b"
)


def _parts_of_unit(
    text: str, norm: str, a: int, b: int, kind: str, hits: list[SiteHit], lang: str
) -> list[Part]:
    v = vocab()
    label = _label_end(norm, a)
    in_unit = [h for h in hits if a <= h.start and h.end <= b]
    if kind == "impression":
        in_unit = sorted(in_unit + generic_nodes(norm, a, b, in_unit), key=lambda h: h.start)
    if label > a:
        rest = [h for h in in_unit if h.start >= label]
        if rest:
            in_unit = rest  # the line names its own site: the label is just a heading
    heads: list[SiteHit] = []
    for h in in_unit:
        if _is_landmark(norm, h, a) or _is_reference(norm, h, a, b):
            continue
        if any(x.key == h.key for x in heads) and _in_parens(norm, h, a, b):
            continue  # "大者约0.8cm（右肺下叶）": a reminder, not a new description
        heads.append(h)
    lobes = [h.site for h in heads if not h.weak and h.site in LOBES]
    # "右肺上叶肺癌", "right upper lobe mass, primary lung carcinoma": the lung word is
    # the lobe's; "左肺上叶肺癌，右肺多发转移": the other lung is a site of its own
    heads = [
        h
        for h in heads
        if not h.detail.startswith("lung:")
        or not any(h.detail == "lung:any" or lobe.startswith(h.detail[5:]) for lobe in lobes)
    ]
    # consecutive mentions of one site are one head ("纵隔4R区、7区"), unless the
    # findings give them one value each ("paratracheal, subcarinal … respectively")
    each = kind == "findings" and bool(_RESPECTIVELY.search(norm[a:b]))
    merged: list[SiteHit] = []
    for h in heads:
        if merged and merged[-1].key == h.key and not each:
            gap = norm[merged[-1].end : h.start]
            ga, gb = merged[-1].end, h.start
            if not (v.lesion_cue.search(gap) or sizes(norm, ga, gb) or suvs(norm, ga, gb)):
                last = merged[-1]
                merged[-1] = SiteHit(last.start, h.end, last.site, last.detail, last.weak, True)
                continue
        merged.append(h)
    if not merged:
        return []
    # a region label ("胸部:", "Chest:") is no part of the first lesion's text
    bounds = [label if a < label <= merged[0].start else a]
    for prev, h in itertools.pairwise(merged):
        cut = h.start
        for m in _SEP.finditer(norm, prev.end, h.start):
            cut = m.start()
        bounds.append(cut)
    bounds.append(b)
    parts: list[Part] = []
    for i, hit in enumerate(merged):
        p = Part(hit, bounds[i], bounds[i + 1], kind, norm_text=norm[bounds[i] : bounds[i + 1]])
        p.negated = negated_before(text, norm, hit.start, a, lang) or negated_after(
            text, norm, hit, b, lang
        )
        p.recommend = kind == "impression" and bool(v.recommend.search(norm, a, hit.start))
        p.unit = a
        _read(text, norm, p, a, b, lang)
        parts.append(p)
    parts = _located(norm, parts)
    _central_mass(norm, parts, in_unit)
    _share(text, norm, parts)
    _pool_cues(parts)
    _resolved(text, norm, parts, lang)
    _respectively(norm, parts)
    if kind == "impression":
        parts = _restated(parts)
    return parts


def _located(norm: str, parts: list[Part]) -> list[Part]:
    """ "左肺上叶中央型软组织肿块，位于左肺门区，大小5.6cm": a site after a locating word
    ("位于", "located in") with no lesion word of its own places the lesion just
    described; it is that lesion's text, not another lesion. A lobe is the more exact
    site of the two (a central tumour "at the hilum" is the lobe's)."""
    v = vocab()
    out: list[Part] = []
    for p in parts:
        prev = out[-1] if out else None
        lead = norm[p.start : p.hit.start]
        lead = re.sub(
            r"^[\s,;:]+|(?:(?:左|右|双|两)侧?|\b(?:left|right|bilateral)\b)\s*$", "", lead
        )
        if (
            prev is not None
            and not p.lesion_cue
            and not p.node
            and not prev.negated
            and (prev.lesion_cue or prev.sizes or prev.suvs)
            and v.location.search(lead)
        ):
            if p.hit.site in LOBES and prev.hit.site not in LOBES and not prev.node:
                prev.hit = p.hit
            prev.end = p.end
            prev.norm_text = norm[prev.start : prev.end]
            prev.sizes += p.sizes
            prev.suvs += p.suvs
            prev.cues |= p.cues
            continue
        out.append(p)
    return out


def _sides(norm: str, parts: list[Part]) -> None:
    """ "Bilateral supraclavicular LNs: right 1.1cm, SUVmax 4.2; left 1.4cm, SUVmax 6.0":
    side words after the site, each opening its own measurement, are one lesion per side."""
    v = vocab()
    for p in parts:
        if p.section != "findings" or p.split or p.shared_from is not None:
            continue
        if any(q.shared_from is p for q in parts):
            continue
        cuts = [m.start() for m in v.side.finditer(norm, p.hit.end, p.end)]
        if len(cuts) < 2:
            continue
        if sizes(norm, p.hit.end, cuts[0]) or suvs(norm, p.hit.end, cuts[0]):
            continue  # a value before the first side word: not a list by side
        each: list[tuple[float | None, float | None]] = []
        ua, ub = p.unit, p.end
        for a, b in itertools.pairwise([*cuts, p.end]):
            sz = [n.value for n in sizes(norm, a, b) if not _prior(norm, n.start, ua)]
            sv = [
                n.value
                for n in suvs(norm, a, b)
                if not _prior(norm, n.start, ua) and not _in_reference_chunk(norm, n.start, ua, ub)
            ]
            if not sz and not sv:
                break
            each.append((max(sz, default=None), max(sv, default=None)))
        if len(each) == len(cuts):
            p.split = each


def _restated(parts: list[Part]) -> list[Part]:
    """ "Multiple bilateral pulmonary nodules, consistent with pulmonary metastases",
    "双肺多发小结节，考虑肺内转移": the site named again right after an unjudged mention
    is that mention's judgement, not another lesion."""
    out: list[Part] = []
    for p in parts:
        prev = out[-1] if out else None
        if (
            prev is not None
            and prev.hit.key == p.hit.key
            and not judged(prev.cues)
            and judged(p.cues)
            and not p.noun
            and prev.shared_from is None
            and p.shared_from is None
        ):
            prev.cues |= p.cues
            prev.end = p.end
            prev.norm_text += p.norm_text
            continue
        out.append(p)
    return out


def _read(text: str, norm: str, p: Part, ua: int, ub: int, lang: str) -> None:
    """Lesion words, measurements and judgement cues of one part."""
    v = vocab()
    for m in v.lesion_cue.finditer(norm, p.start, p.end):
        if not negated_before(text, norm, m.start(), ua, lang):
            p.lesion_cue = True
            if not v.generic_node.fullmatch(m.group(0)) and m.group(0) not in ("node", "nodal"):
                p.abnormal = True
            if v.lesion_noun.fullmatch(m.group(0)):
                p.noun = True
    for m in v.lesion_noun.finditer(norm, p.start, p.end):
        if not negated_before(text, norm, m.start(), ua, lang):
            p.noun = True
    for num in sizes(norm, p.start, p.end):
        if not _in_reference_chunk(norm, num.start, ua, ub) and not _prior(norm, num.start, ua):
            p.sizes.append(num.value)
    for num in suvs(norm, p.start, p.end):
        if not _in_reference_chunk(norm, num.start, ua, ub) and not _prior(norm, num.start, ua):
            p.suvs.append(num.value)
    if v.historical.search(norm, p.hit.end, min(p.end, p.hit.end + 12)) and not p.noun:
        p.historical = True
    if v.absent.match(norm, p.hit.end) and not p.sizes and not p.suvs:
        # "术区：右肺上叶缺如，支气管残端金属缝线影": the lobe was removed; its
        # staple line is no lesion (a measured recurrence at the stump still is)
        p.historical = True
    # what follows "伴"/"with" inside the part is an accompanying finding
    # ("肺癌伴阻塞性肺炎"): it judges the lesion only when nothing before does
    # and so is a bracket after the lesion ("肺癌（阻塞性炎症代谢不高）", "考虑肺腺癌可能大
    # （low FDG avidity不能除外惰性病变）")
    cut = _ACCOMPANY.search(norm[p.hit.end : p.end])
    spans = [(p.start, p.end)]
    if cut:
        spans.insert(0, (p.start, p.hit.end + cut.start()))
    for a, b in spans:
        _cues(text, norm, p, a, b, ua, lang)
        if judged(p.cues):
            break
    p.node = bool(v.node_word.search(norm, p.start, p.end))
    a, b = _chunk(norm, p.hit.start, ua, ub)
    physio = v.physio.search(norm, p.start, p.end) or v.physio.search(norm, a, b)
    # "呈生理性显影", "physiologic activity in …" governs even a noun-like word
    strong = v.physio_strong.search(norm, p.start, p.end) or v.physio_strong.search(norm, a, b)
    p.physio = bool(strong) or (bool(physio) and not p.noun)
    if not p.physio and not p.noun and b < ub:
        # "甲状腺弥漫性轻度摄取增高，考虑甲状腺炎所致生理性改变": the next chunk explains
        # the uptake as physiological
        na, nb = _chunk(norm, b + 1, b + 1, ub)
        nxt = norm[na:nb]
        if _EXPLAINS.match(nxt) and v.physio.search(nxt):
            p.physio = True
    if v.resolved.search(norm, p.hit.end, p.end):
        # "原纵隔7区高代谢淋巴结现已不明显", "… has resolved": gone, like an absent lesion
        p.negated = True


_EXPLAINS = re.compile(
    r"\s*(?:考虑|多考虑|多为|提示|符合|系"
    r"|\b(?:likely|probably|consistent with|in keeping with|c/w))"
)


def _cues(text: str, norm: str, p: Part, start: int, end: int, ua: int, lang: str) -> None:
    v = vocab()
    for cat, pat in v.tendency.items():
        lits = v.tendency_literals[cat]
        if lits is not None and not lits.search(norm, start, end):
            continue  # no alternative can match: skip the slow scan
        for m in pat.finditer(norm, start, end):
            if cat in ("malignant", "metastasis", "primary", "benign") and negated_before(
                text, norm, m.start(), ua, lang
            ):
                continue
            if cat in ("malignant", "metastasis", "primary") and (
                v.tneg_pre.search(norm[max(ua, m.start() - 40) : m.start()])
                or v.tneg_post.search(norm[m.end() : m.end() + 40])
            ):
                continue  # "favour infection rather than malignancy"
            p.cues.add(cat)


def _prior(norm: str, pos: int, lo: int) -> bool:
    """A value from an earlier study ("(previously 4.1 x 3.3 cm, SUVmax 12.6)", "原SUVmax 8.0")."""
    v = vocab()
    paren = norm.rfind("(", lo, pos)
    if paren != -1 and norm.find(")", paren, pos) == -1:
        if v.prior.match(norm, paren + 1):
            return True
        # "SUVmax 5.9，较前（2026-03，SUVmax 3.1）升高": the bracket holds the earlier study
        if re.search(r"(?:" + v.prior.pattern + r")\s*$", norm[max(lo, paren - 12) : paren]):
            return True
    a, _ = _chunk(norm, pos, lo, pos + 1)
    if _CHANGED_FROM.search(norm, max(a, pos - 40), pos):
        return True  # "has decreased from 5.8 cm to 2.5 cm": 5.8 is the earlier study's
    if _COMPARED_WITH_A.search(norm, max(a, pos - 70), pos):
        return True  # "SUVmax 3.1, compared with a 4.2 cm mass at SUVmax 14.8 at baseline"
    return bool(v.prior.search(norm, max(a, pos - 12), pos))


# the earlier finding a value is set against, introduced by "a"/"an"
_COMPARED_WITH_A = re.compile(r"compared (?:with|to) an? [^,;()]{0,60}$")
_CHANGED_FROM = re.compile(
    r"\b(?:decreased|increased|reduced|shrunk|shrank|grown|enlarged|regressed|progressed"
    r"|risen|fallen|dropped)\s+(?:in\s+(?:size|uptake|suvmax)\s+)?from\s*$"
    r"|[由从](?=[^,;。]{0,6}$)"
)


def _in_reference_chunk(norm: str, pos: int, lo: int, hi: int) -> bool:
    """The value's comma chunk names a reference region. A bracket belongs to the words
    before it, not they to it: "SUVmax 6.8 (liver reference SUVmax 2.4)" keeps 6.8 and
    drops 2.4."""
    a, b = _chunk(norm, pos, lo, hi)
    opened = norm.rfind("(", a, pos)
    if opened != -1 and norm.find(")", opened, pos) == -1:
        close = norm.find(")", pos, b)
        # the bracket and the words that name it ("below blood pool (SUVmax 1.9)",
        # "below liver (SUVmax 2.5)")
        v = vocab()
        stop = close if close != -1 else b
        return bool(v.reference.search(norm, a, stop) or v.comparison.search(norm, a, opened))
    chunk = _BRACKETED.sub(_blanked, norm[a:b])
    ref = vocab().reference.search(chunk)
    if ref and a + ref.start() > pos and vocab().comparison.search(norm, pos, a + ref.start()):
        return False  # "SUVmax 3.2 - mildly above blood pool": the value is the lesion's
    return bool(ref)


def _share(text: str, norm: str, parts: list[Part]) -> None:
    """A site listed before the next one with nothing of its own shares its description."""
    for i in range(len(parts) - 2, -1, -1):
        p, nxt = parts[i], parts[i + 1]
        if p.negated:
            continue
        tail = norm[p.hit.end : nxt.hit.start]
        if _conj_only(tail):
            # "左肺门、纵隔见淋巴结", "hilar and subcarinal nodes (SUVmax 3.4)"
            src = nxt.shared_from or nxt
            if p.sizes or p.suvs:
                continue
            p.shared_from = src
            p.lesion_cue = p.lesion_cue or src.lesion_cue
            p.abnormal = p.abnormal or src.abnormal
            p.noun, p.node = src.noun, p.node or src.node
            p.physio = p.physio or src.physio
            p.negated = nxt.negated
        elif (
            not judged(p.cues)
            and p.section == "impression"
            and _joined(text, p.hit.end, nxt.hit.start)
        ):
            # "RML consolidation and mediastinal adenopathy, consistent with infection"
            p.cues = set((nxt.shared_from or nxt).cues if nxt.shared_from else nxt.cues)
            p.borrowed = True
    for prev, p in itertools.pairwise(parts):
        # "Metastases to the right adrenal gland and liver": a judgement written before
        # the first site of a list covers the sites listed after it
        if p.section != "impression" or p.negated or p.noun or judged(p.cues):
            continue
        if prev.negated or not judged(prev.cues) or not _joined(text, prev.hit.end, p.hit.start):
            continue
        if _leads(norm, prev):
            p.cues = set(prev.cues)
            p.borrowed = True


def _leads(norm: str, p: Part) -> bool:
    """A malignant judgement stands before the part's site ("metastases to the …")."""
    lead = _LEAD_CUT.split(norm[p.start : p.hit.start])[-1]
    return any(vocab().tendency[c].search(lead) for c in ("malignant", "metastasis"))


_RESPECTIVELY = re.compile(
    r"(?:suv\s*max|suv|最大标准摄取值)[^0-9;]{0,12}"
    r"((?:\d+(?:\.\d+)?\s*(?:,|and|及|和|与|/)\s*)+\d+(?:\.\d+)?)"
)


def _central_mass(norm: str, parts: list[Part], unit_hits: list[SiteHit]) -> None:
    """ "左肺门区见软组织肿块影，与左肺上叶支气管关系密切": a hilar mass that is no node is
    the central tumour of the lobe named in the same sentence."""
    v = vocab()
    for p in parts:
        if (
            p.hit.site != "hilar_lymph_node"
            or p.node
            or not v.mass_word.search(norm, p.start, p.end)
        ):
            continue
        side = norm[max(p.start, p.hit.start - 3) : p.hit.end]
        lobes = [h for h in unit_hits if h.site in LOBES]
        if "左" in side or "left" in side:
            lobes = [h for h in lobes if h.site.startswith("left")]
        elif "右" in side or "right" in side:
            lobes = [h for h in lobes if h.site.startswith("right")]
        if len({h.site for h in lobes}) == 1:
            h = lobes[0]
            p.hit = SiteHit(p.hit.start, p.hit.end, h.site)


_EARLIER = re.compile(r"(?:原(?!发)|\bpreviously\b|\bprior\b|前次|上次)[^,;:]{0,16}$")


def _resolved(text: str, norm: str, parts: list[Part], lang: str) -> None:
    """A lesion of the earlier study with no uptake now ("原左肺门及纵隔7区肿大淋巴结现
    均明显缩小，未见FDG摄取增高") has resolved metabolically: like an absent lesion."""
    for src in parts:
        if src.shared_from is not None or src.suvs:
            continue
        group = [p for p in parts if p.shared_from is src] + [src]
        first = min(group, key=lambda p: p.hit.start)
        if not _EARLIER.search(norm[first.start : first.hit.start]):
            continue
        tail = norm[src.hit.end : src.end]
        v = vocab()
        if v.resolved.search(tail) or v.neg_pre["zh"].search(tail) or v.neg_pre["en"].search(tail):
            for p in group:
                p.negated = True


def _pool_cues(parts: list[Part]) -> None:
    """Sites listed together share the judgement stated anywhere in the list
    ("metastatic adenopathy at stations 10L and 5"), and a physiological word before
    the list covers the whole list ("physiologic activity in the brain, tonsils and …")."""
    for src in parts:
        group = [p for p in parts if p.shared_from is src]
        for p in group:
            src.cues |= p.cues
        if group and any(p.physio for p in group) and not src.sizes and not src.suvs:
            for p in [*group, src]:
                p.physio = True


def _respectively(norm: str, parts: list[Part]) -> None:
    """Listed sites with one value each ("SUVmax 4.8 and 5.5 respectively", "SUVmax
    分别为4.8、5.5") get their own value, in order."""
    for src in parts:
        group = [p for p in parts if p.shared_from is src] + [src]
        text = norm[src.start : src.end]
        if len(group) < 2 or not re.search(r"respectively|分别", text):
            continue
        m = _RESPECTIVELY.search(text)
        vals = [float(x) for x in re.findall(r"\d+(?:\.\d+)?", m.group(1))] if m else []
        if len(vals) == len(group):
            for p, val in zip(group, vals, strict=True):
                p.suv_own = val
            src.suvs = [vals[-1]]
        # "短径分别约1.3cm、1.0cm", "measuring 1.3 and 1.0 cm respectively"
        found = [n.value for n in sizes(norm, src.start, src.end)]
        if len(found) == len(group):
            for p, val in zip(group, found, strict=True):
                p.size_own = val
            src.sizes = [found[-1]]
    for p in parts:
        # one site, several values "respectively": as many lesions there
        if p.shared_from is not None or any(q.shared_from is p for q in parts):
            continue
        if p.section != "findings" or not re.search(r"respectively|分别", p.norm_text):
            continue
        m = _RESPECTIVELY.search(p.norm_text)
        sv = [float(x) for x in re.findall(r"\d+(?:\.\d+)?", m.group(1))] if m else []
        sz = [n.value for n in sizes(norm, p.start, p.end)]
        k = max(len(sv), len(sz))
        if k >= 2 and len(sv) in (0, k) and len(sz) in (0, k):
            p.split = [(sz[i] if sz else None, sv[i] if sv else None) for i in range(k)]


def _conj_only(tail: str) -> bool:
    # "Hepatic (x2), left adrenal and osseous metastases": a count after a site
    tail = re.sub(r"\(\s*(?:x\s*\d+|\d+\s*[处个枚]|two|three|multiple)\s*\)", " ", tail)
    tail = re.sub(r"[()\[\]]|\bstations?\b|\blevels?\s*[ivx]+\b|第|\d+\s?[rl]?|区|组", " ", tail)
    tail = re.sub(r"[ⅠⅡⅢⅣⅤⅥⅦⅧⅨⅩ]+[ab]?", " ", tail)
    tail = re.sub(r"淋巴结|\blymph\b|\bnod(?:es?|al)\b", " ", tail)
    tail = re.sub(
        r"\b(?:left|right|bilateral|ipsilateral|contralateral)\b|[左右双两]侧?", " ", tail
    )
    return not tail.strip() or bool(vocab().conj.match(tail))


def _joined(text: str, a: int, b: int) -> bool:
    """The tail [a, b) between two sites ends in "and"/"及"/"、" (not a full comma), give
    or take a few words before the next site ("nodule and new left femoral neck",
    "多发及全身多处骨骼"): the two sites share one judgement."""
    tail = text[a:b].lower()
    return bool(
        re.search(r"(?:\band|/)(?:\s+[a-z-]+){0,3}\s*$", tail)
        or re.search(r"(?:及|和|与|以及|、)[^\s,，;；:：。]{0,4}$", tail.rstrip())
    )


def _measures(p: Part) -> tuple[list[float], list[float], set[str]]:
    src = p.shared_from
    if src is None:
        return p.sizes, p.suvs, p.cues
    suv = [p.suv_own] if p.suv_own is not None else src.suvs
    size = [p.size_own] if p.size_own is not None else src.sizes
    return size, suv, p.cues | src.cues


# --------------------------------------------------------------------------- assembly


def all_parts(text: str, norm: str, lang: str, secs: list[Section]) -> list[Part]:
    hits = site_hits(norm)
    starts = [h.start for h in hits]
    parts: list[Part] = []
    last: dict[str, Part] = {}
    for a, b, kind in _units(norm, _regions(text, norm, secs)):
        unit_hits = hits[bisect.bisect_left(starts, a) : bisect.bisect_left(starts, b)]
        new = _parts_of_unit(text, norm, a, b, kind, unit_hits, lang)
        if new:
            parts += new
            last[kind] = new[-1]
        elif not unit_hits and kind in last:
            other = _continue_unit(text, norm, lang, last[kind], a, b)
            if other is not None:
                parts.append(other)
                last[kind] = other
    # after the units that continue a part ("right 1.1cm, SUVmax 4.2; left 1.4cm, …")
    _sides(norm, parts)
    return parts


_JUDGES_BEFORE = re.compile(r"[ \t]*;[ \t]*")
_ANAPHOR = re.compile(
    r"\s*(?:其(?!余|他|它)|该(?:病灶|结节|肿块|处)|此处|(?:at|along|within|adjacent to) its\b)"
)


def _continue_unit(text: str, norm: str, lang: str, p: Part, a: int, b: int) -> Part | None:
    """A unit without a site on the same line continues the part before it
    ("肝内见多发低密度灶。大者约3.4cm" ; "segment 7, 2.6 cm, SUV 8.1"), or, when it
    describes a lesion measured on its own after one already measured ("…SUVmax
    10.5；另见一结节状高代谢灶，直径约0.9cm，SUVmax 7.8"), is another lesion there."""
    # "其外侧缘新见一结节…": a sentence that points back at the site goes on with it,
    # on the next line too
    back = _ANAPHOR.match(norm, a, b)
    if ("\n" in norm[p.end : a] and not back) or re.match(r"\s*\d+\s*[.,)]", norm[a:b]):
        return None
    if p.negated or p.shared_from is not None:
        return None
    v = vocab()
    if v.stage.match(norm, a, b):
        return None  # "Stage T2a N2 M0.": the patient's stage, no lesion's judgement
    extra = Part(p.hit, a, b, p.section, norm_text=norm[a:b])
    _read(text, norm, extra, a, b, lang)
    if negated_before(text, norm, a, a, lang):
        return None
    if p.section == "impression" and extra.noun:
        # "Calcified granuloma, benign.": a sentence about another lesion, unless it
        # points back at the site ("其外侧缘新发高代谢结节，考虑局部复发")
        if back and extra.lesion_cue:
            return extra
        if not _JUDGES_BEFORE.fullmatch(norm, p.end, a):
            return None
        # "RML nodule with low uptake; adenocarcinoma versus hamartoma": after a
        # semicolon the same statement goes on to judge it
    lead = len(norm[a:b]) - len(norm[a:b].lstrip())
    if extra.physio and v.physio.match(norm, a + lead):
        # "…SUVmax 6.1. Physiologic bowel uptake.": a sentence about the normal uptake
        # elsewhere, not a judgement of the lesion before
        return None
    measured = (extra.sizes and p.sizes) or (extra.suvs and p.suvs)
    if measured and (extra.noun or extra.abnormal or v.another.match(norm, a, b)):
        return extra
    p.sizes += extra.sizes
    p.suvs += extra.suvs
    p.cues |= extra.cues
    p.end = b
    p.norm_text = norm[p.start : b]
    return None


def _qualifies(p: Part) -> bool:
    if p.negated or p.historical:
        return False
    sz, sv, cues = _measures(p)
    if p.section == "findings":
        # a node is a lesion when something is wrong with it ("数枚小淋巴结" is not)
        cue = p.abnormal if (p.hit.site in NODE_SITES or p.node) else p.lesion_cue
        if not (p.noun or sz or sv) and vocab().degenerative.search(p.norm_text):
            # "degenerative uptake at the facet joints": like physiological uptake
            return False
        return not p.physio and (cue or bool(sz) or bool(sv) or bool(cues))
    # an impression statement creates a lesion only when it names one, or judges
    # an abnormal finding ("diffuse bone marrow uptake, likely reactive")
    if p.borrowed and not (p.noun or p.sizes or p.suvs):
        return False
    judged = p.lesion_cue and bool(cues & {"benign", "indeterminate", "hedge"})
    return not p.physio and (p.noun or judged or bool(cues & {"malignant", "metastasis"}))


def build(text: str, norm: str, lang: str, secs: list[Section]) -> list[Lesion]:
    found = all_parts(text, norm, lang, secs)
    gone = [p for p in found if p.negated and p.section == "impression" and _says_gone(p)]
    parts = [p for p in found if not p.negated]
    lesions: list[Lesion] = []
    pending: list[Part] = []
    for p in sorted(parts, key=lambda q: q.hit.start):
        if p.section == "impression":
            pending.append(p)
            continue
        same = [les for les in lesions if les.key == p.hit.key]
        if p.split and _qualifies(p):
            for sz, sv in p.split:
                one = replace(p, sizes=[sz] if sz else [], suvs=[sv] if sv else [], split=[])
                lesions.append(Lesion(p.hit.key, p.hit.site, [one]))
            continue
        if _qualifies(p):
            if same and not _separate(same[-1], p):
                same[-1].parts.append(p)
            else:
                lesions.append(Lesion(p.hit.key, p.hit.site, [p]))
        elif same and not p.physio and not p.historical:
            same[-1].parts.append(p)  # a later word on a lesion already found
    generic = [p for p in pending if p.hit.detail == "nodes:any"]
    for p in pending:
        if p in generic:
            continue
        if p.hit.weak and "multiple" in p.cues:
            side = p.hit.detail.split(":")[1]
            named = {q.hit.key for q in pending if not q.hit.weak}
            many = [
                les
                for les in lesions
                if les.site in LOBES
                and les.key not in named
                and (side == "any" or les.site.startswith(side))
            ]
            if many:
                # "右肺多发转移": every lesion of that lung the impression names no other way
                for les in many:
                    les.parts.append(p)
                continue
        targets = _match(p, lesions, pending)
        for les in targets:
            les.parts.append(p)
        if not targets and _qualifies(p) and not p.recommend:
            lesions.append(Lesion(p.hit.key, p.hit.site, [p]))
    for p in generic:
        _attach_generic(p, pending, lesions)
    lesions = [les for les in lesions if not _treatment_change(les)]
    lesions = [les for les in lesions if not _gone_in_impression(les, gone)]
    return sorted(lesions, key=lambda les: les.first)


def _says_gone(p: Part) -> bool:
    v = vocab()
    return bool(v.resolved.search(p.norm_text) or v.no_residual.search(p.norm_text))


def _gone_in_impression(les: Lesion, gone: list[Part]) -> bool:
    """The impression calls a lesion the findings still describe resolved ("Complete
    metabolic response of the 4R nodal disease", "治疗后纤维化，代谢完全缓解，无残存活性
    肿瘤") and nothing else in the impression names it: no lesion (a node of the same
    region with other station labels stays)."""
    if any(p.section == "impression" for p in les.parts):
        return False
    mine: set[str] = set().union(*(_labels(p) for p in les.parts))
    for g in gone:
        if g.hit.key != les.key:
            continue
        theirs = _labels(g)
        if not theirs or not mine or theirs & mine:
            return True
    return False


def _treatment_change(les: Lesion) -> bool:
    """The report calls the lesion the expected change of treatment ("post-SBRT change
    at the RUL treatment site without evidence of local recurrence", "放疗后改变") and no
    malignant word judges it: like post-surgical change, no lesion."""
    if not any(vocab().treatment_change.search(p.norm_text) for p in les.parts):
        return False
    if any(vocab().no_residual.search(p.norm_text) for p in les.parts):
        return True
    judging = [p for p in les.parts if p.section == "impression"] or les.parts
    return not any(p.cues & {"malignant", "metastasis"} for p in judging)


_STATION_LABEL = re.compile(r"(?<![\d.])(1[0-4]|[1-9])\s?([rl]?)(?![\d.]|\s*(?:mm|cm|毫米|厘米|%))")


def _labels(p: Part) -> set[str]:
    """Station labels ("4r", "7") a node part names; empty for other sites."""
    if p.hit.site not in NODE_SITES:
        return set()
    reach = p.hit.end - p.start + 12
    # a bracket right after the site lists its stations in full ("mediastinal (2R, 4R, 4L, 7)")
    bracket = re.match(r"\s*\([^()]*\)", p.norm_text[p.hit.end - p.start :])
    if bracket:
        reach = max(reach, p.hit.end - p.start + bracket.end())
    return {a + b for a, b in _STATION_LABEL.findall(p.norm_text[:reach])}


def _separate(les: Lesion, p: Part) -> bool:
    """A findings mention at a site that already has a lesion is another lesion when
    both carry their own measurement ("右侧额叶…1.3cm…；左侧小脑…0.9cm", "left iliac
    wing (SUV 10.1) and L2 (SUV 7.5)"); a group measured once stays one lesion."""
    sz, sv, _ = _measures(p)
    if not sz and not sv:
        return False
    if _DELAYED.search(p.norm_text):
        return False  # "延迟显像右肺上叶病灶SUVmax 14.0": the same lesion, later phase
    old = [q for q in les.parts if q.section == "findings"]
    old_sz = {x for q in old for x in _measures(q)[0]}
    old_sv = {x for q in old for x in _measures(q)[1]}
    if set(sz) <= old_sz and set(sv) <= old_sv:
        return False  # the same values again: the same lesion named twice
    if (sz and old_sz) or (sv and old_sv):
        return True
    # another sentence, another spot at that site, measured ("T12椎体…0.8cm。左侧股骨头…
    # SUVmax 3.1"); the same words again ("右肺上叶…3.2cm。右肺上叶…SUVmax") stay one
    named = {_hit_text(q) for q in old}
    return bool(
        (old_sz or old_sv) and all(q.unit != p.unit for q in old) and _hit_text(p) not in named
    )


def _hit_text(p: Part) -> str:
    at = p.hit.start - p.start
    return p.norm_text[at : at + p.hit.end - p.hit.start] if at >= 0 else ""


_DELAYED = re.compile(r"delayed|延迟")


def _attach_generic(p: Part, pending: list[Part], lesions: list[Lesion]) -> None:
    """A node statement without a station: right after node sites it judges them
    ("right hilar node, possibly reactive, nodal metastasis not excluded"); else it
    judges every node lesion the impression leaves unjudged ("with nodal metastases")."""
    nodes = [les for les in lesions if les.site in NODE_SITES or any(q.node for q in les.parts)]
    prev = [q for q in pending if q.end == p.start and q is not p]
    chain: list[Part] = []
    while prev and (prev[0].hit.site in NODE_SITES or prev[0].node):
        chain.append(prev[0])
        prev = [q for q in pending if q.end == prev[0].start and q is not prev[0]]
    if chain:
        targets = [les for les in nodes if any(q in les.parts for q in chain)]
    else:
        targets = [
            les
            for les in nodes
            if not any(q.section == "impression" and judged(_measures(q)[2]) for q in les.parts)
        ]
    for les in targets:
        les.parts.append(p)


def _match(p: Part, lesions: list[Lesion], pending: list[Part]) -> list[Lesion]:
    """The lesions an impression mention judges. Several lesions at its site: the one
    whose size or SUVmax it repeats; else, when the impression names the site as often
    as the findings measured lesions there, the one of the same rank; else all of them
    ("脑多发转移（右额叶、左小脑）", "osseous metastases (left ilium, L2)")."""
    same = [les for les in lesions if les.key == p.hit.key]
    if len(same) > 1:
        vals = set(p.sizes) | set(p.suvs)
        hit = [
            les
            for les in same
            if vals & {v for q in les.parts if q.section == "findings" for v in q.sizes + q.suvs}
        ]
        if len(hit) == 1:
            return hit
        # "纵隔淋巴结（4R区）转移": the lesion whose findings name that station
        labels = set() if p.hit.several else _labels(p)
        hit = [les for les in same if labels & {x for q in les.parts for x in _labels(q)}]
        if labels and hit:
            return hit
        named = [q for q in pending if q.hit.key == p.hit.key]
        if vocab().rest.search(p.norm_text):
            # "余纵隔淋巴结炎性摄取": the lesions the other phrases do not name
            taken = {
                id(les)
                for q in named
                if q is not p and _labels(q)
                for les in same
                if _labels(q) & {x for r in les.parts for x in _labels(r)}
            }
            rest = [les for les in same if id(les) not in taken]
            return rest or same
        if len(named) == len(same):
            return [same[named.index(p)]]
        return same
    if same:
        return same
    if p.hit.weak:
        side = p.hit.detail.split(":")[1]
        for les in sorted(lesions, key=lambda x: x.first):
            if les.site in LOBES and (side == "any" or les.site.startswith(side)):
                return [les]
    return []


def judged(cues: set[str]) -> bool:
    return tendency_of(cues) is not None


def tendency_of(cues: set[str]) -> str | None:
    mal = bool(cues & {"malignant", "metastasis"})
    ben = "benign" in cues
    if "indeterminate" in cues or "hedge" in cues or (mal and ben):
        return "indeterminate"
    if mal:
        return "malignant"
    if ben:
        return "benign"
    if "follow_up" in cues:
        return "indeterminate"
    return None


def record(les: Lesion) -> dict[str, Any]:
    """The contract record of one lesion."""
    find = [p for p in les.parts if p.section == "findings"]
    imp = [p for p in les.parts if p.section == "impression"]
    size = max((s for p in find for s in _measures(p)[0]), default=None)
    if size is None:
        size = max((s for p in imp for s in _measures(p)[0]), default=None)
    suv = max((s for p in find for s in _measures(p)[1]), default=None)
    if suv is None:
        suv = max((s for p in imp for s in _measures(p)[1]), default=None)
    imp_cues: set[str] = set().union(*(_measures(p)[2] for p in imp)) if imp else set()
    find_cues: set[str] = set().union(*(_measures(p)[2] for p in find)) if find else set()
    use = imp if tendency_of(imp_cues) else find
    cues = imp_cues if use is imp else find_cues
    # several mentions of one site group ("4R区淋巴结转移, 余纵隔淋巴结炎性摄取"):
    # the gravest judgement stands for the group
    judged = [tendency_of(_measures(p)[2]) for p in use]
    if any(t and t != "indeterminate" for t in judged):
        # "建议EBUS评估" after "考虑反应性增生": a bare recommendation judges nothing
        judged = [t for t, p in zip(judged, use, strict=True) if _measures(p)[2] - {"follow_up"}]
    tendency = min(
        (t for t in judged if t), key=("malignant", "indeterminate", "benign").index, default=None
    )
    return {
        "site": les.site,
        "size_cm": size,
        "suvmax": suv,
        "tendency": tendency,
        "role": _role(les, tendency, cues),
    }


_PSEUDO = re.compile(r"假性进展|假进展|\bpseudo-?\s?progression\b")


def _role(les: Lesion, tendency: str | None, cues: set[str]) -> str | None:
    v = vocab()
    if les.site in NODE_SITES:
        return "lymph_node"
    # a role names what the lesion is judged to be: an indeterminate lesion
    # ("new primary versus metastasis", "骨转移不除外") has none
    met = "metastasis" in cues and "primary" not in cues
    if les.site in LOBES:
        if tendency == "malignant":
            return "metastasis" if met else "primary"
        if tendency == "indeterminate" and any(_PSEUDO.search(p.norm_text) for p in les.parts):
            # "肿瘤进展与免疫治疗相关假性进展鉴别": the known tumour, only its course in doubt
            return "primary"
        return None
    if les.site in v.distant:
        return "metastasis" if tendency == "malignant" else None
    # other organs
    if any(p.node for p in les.parts):
        return "lymph_node"
    if "metastasis" in cues and tendency == "malignant":
        return "metastasis"
    return None
