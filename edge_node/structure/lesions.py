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
- parts are keyed by site (other organs by organ); one record per key, so several
  nodes of one station group or several bone lesions make one lesion (largest size,
  highest SUVmax);
- size and SUVmax come from the findings (the impression when the findings give
  none), tendency from the impression (the findings when the impression is silent).

Vocabulary lives in `data/petct.json`.
"""

from __future__ import annotations

import bisect
import itertools
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from edge_node.structure.text import Section, clauses, data

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
    ws = sorted(words, key=len, reverse=True)
    return "|".join(_words([w], "en" if w[:1].isascii() else "zh") for w in ws)


def _words(words: list[str], lang: str) -> str:
    """Alternation of plain words; English words get word boundaries."""
    alts = []
    for w in sorted(words, key=len, reverse=True):
        e = re.escape(w)
        if lang == "en" and w[:1].isalnum():
            e = r"\b" + e
        if lang == "en" and w[-1:].isalnum():
            e += r"\b"
        alts.append(e)
    return "|".join(alts)


@dataclass(frozen=True)
class Vocab:
    sites: list[tuple[re.Pattern[str], str, str, bool]]  # pattern, site, detail, weak
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


@lru_cache(maxsize=1)
def vocab() -> Vocab:
    spec: dict[str, Any] = data(DATA)
    sites: list[tuple[re.Pattern[str], str, str, bool]] = []
    for site, pats in spec["sites"].items():
        sites += [(re.compile(p), site, "", False) for p in pats]
    for organ, pats in spec["other_organs"].items():
        sites += [(re.compile(p), "other", organ, False) for p in pats]
    for side, pats in spec["lung_generic"].items():
        if side != "comment":
            sites += [(re.compile(p), "other", f"lung:{side}", True) for p in pats]
    vert = spec["vertebra_levels"]
    st = spec["stations"]
    station_site = {n: "supraclavicular_lymph_node" for n in st["supraclavicular"]}
    station_site |= {n: "mediastinal_lymph_node" for n in st["mediastinal"]}
    station_site |= {n: "hilar_lymph_node" for n in st["hilar"]}
    cues, nouns, nl = spec["lesion_cues"], spec["lesion_nouns"], spec["not_a_lesion"]
    neg = spec["negation"]
    tendency = {
        cat: re.compile("|".join(f"(?:{p})" for p in pats))
        for cat, pats in spec["tendency"].items()
    }
    tendency["malignant"] = re.compile(tendency["malignant"].pattern + r"|(?<![a-z])mt(?![a-z])")
    return Vocab(
        sites=sites,
        vertebra=re.compile(vert["pattern"]),
        vertebra_near=re.compile(_mixed(vert["near"])),
        vertebra_window=int(vert["window"]),
        stations=[re.compile(p) for p in st["patterns"]],
        station_list=re.compile(st["list_pattern"]),
        station_site=station_site,
        lesion_cue=re.compile(_both(cues)),
        lesion_noun=re.compile(_both(nouns)),
        before=re.compile("(?:" + _mixed(nl["before"]) + r")\s*(?:the\s+)?(?:[a-z]+\s+)?$"),
        after=re.compile(r"\s*(?:" + _mixed(nl["after"]) + ")"),
        reference=re.compile(_mixed(nl["reference"])),
        physio=re.compile(_mixed(nl["physiological"])),
        neg_pre={k: re.compile(_words(neg[f"{k}_pre"], k)) for k in ("zh", "en")},
        neg_post={k: re.compile(_words(neg[f"{k}_post"], k)) for k in ("zh", "en")},
        neg_break={k: re.compile(_words(neg[f"{k}_break"], k)) for k in ("zh", "en")},
        tendency=tendency,
        node_word=re.compile("|".join(spec["role_rules"]["node_words"])),
        distant=frozenset(spec["role_rules"]["distant"]),
        ignore_heading=re.compile(
            r"(?:^|(?<=\n)|(?<=\.\s))[ \t#*\[]*(?:(?P<line>"
            + _alts(spec["ignore_headings"]["line"])
            + ")|(?P<sentence>"
            + _alts(spec["ignore_headings"]["sentence"])
            + r"))[ \t\]]*:"
        ),
        extra_heading=re.compile(
            r"(?:^|(?<=\n))[ \t#*\[]*(?:(?P<find>"
            + _alts(spec["extra_headings"]["findings"])
            + ")|(?P<imp>"
            + _alts(spec["extra_headings"]["impression"])
            + r"))[ \t\]]*(?::|\n)"
        ),
        historical=re.compile(_mixed(nl["historical"])),
        combined=[
            (re.compile(k), list(val))
            for k, val in spec["combined_sites"].items()
            if k != "comment"
        ],
        generic_node=re.compile(spec["role_rules"]["generic_node"]["pattern"]),
        mass_word=re.compile("|".join(spec["central_mass"]["mass_words"])),
        prior=re.compile(_mixed(nl["prior"])),
        conj=re.compile(
            r"^(?:\s|,|、|"
            + _words(spec["conjunctions"]["zh"], "zh")
            + "|"
            + _words(spec["conjunctions"]["en"], "en")
            + r")+$"
        ),
    )


# --------------------------------------------------------------------------- numbers

_NUM = r"(\d+(?:\.\d+)?)"
_UNIT = r"(cm|mm|厘米|毫米)"
_SIZE = re.compile(
    rf"(?<![\d.a-z]){_NUM}\s*{_UNIT}?(?:\s*[x*]\s*{_NUM}\s*{_UNIT}?)?"
    rf"(?:\s*[x*]\s*{_NUM}\s*{_UNIT}?)?(?![a-z0-9])"
)
_SUV = re.compile(
    r"(?:suv\s*[-_]?\s*max|suv\s*\(\s*max\s*\)|max(?:imum|\.)?\s+suv|suv\s*最大值|最大标准摄取值(?:\s*\(\s*suv\s*max\s*\))?"
    r"|最大摄取值|suv(?!\s*(?:mean|peak|avg|平均|均值|lbm|bw\s*mean)))"
    r"(?:\s|[:=()~≈]|值|约|为|达|高达|是|分别"
    r"|\bof\b|\bup to\b|\bwas\b|\bis\b|\bapprox\w*\.?|\babout\b)*"
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
            vals.append(float(n) / (10.0 if unit in ("mm", "毫米") else 1.0))
        if 0 < max(vals) <= MAX_SIZE_CM:
            out.append(Number(m.start(), m.end(), round(max(vals), 2)))
    return out


@lru_cache(maxsize=4)
def _table_suvs(norm: str) -> list[Number]:
    """Values under an "SUVmax" column of a table written with | or tabs."""
    out: list[Number] = []
    col: int | None = None
    pos = 0
    for line in norm.split("\n"):
        sep = "|" if "|" in line else ("\t" if "\t" in line else None)
        if sep is None:
            col = None
        else:
            cells = line.split(sep)
            heads = [i for i, c in enumerate(cells) if re.fullmatch(r"\s*suv\s*(?:max)?\s*", c)]
            if heads:
                col = heads[0]
            elif col is not None and col < len(cells):
                at = pos + sum(len(c) + 1 for c in cells[:col])
                m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*", cells[col])
                if m:
                    out.append(Number(at + m.start(1), at + m.end(1), float(m.group(1))))
        pos += len(line) + 1
    return out


def suvs(norm: str, start: int = 0, end: int | None = None) -> list[Number]:
    """SUVmax statements; a range ("SUVmax 5.2-7.8") gives its upper end."""
    out = []
    stop = len(norm) if end is None else end
    for m in _SUV.finditer(norm, start, stop):
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


def site_hits(norm: str) -> list[SiteHit]:
    """Every site word in the text, the longest where two overlap."""
    v = vocab()
    raw: list[SiteHit] = []
    for pat, site, detail, weak in v.sites:
        raw += [SiteHit(m.start(), m.end(), site, detail, weak) for m in pat.finditer(norm)]
    for m in v.vertebra.finditer(norm):
        window = re.split(r"[。;\n]|\.(?=\s)", norm[m.end() : m.end() + v.vertebra_window])[0]
        if (
            re.match(r"\s*(?:段|segment)", window)
            or norm[max(0, m.start() - 2) : m.start()].find("肝") != -1
        ):
            continue  # liver segment S7
        if v.vertebra_near.search(window):
            raw.append(SiteHit(m.start(), m.end(), "bone"))
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
        raw += [SiteHit(m.start(), m.end(), "combined", "|".join(both)) for m in pat.finditer(norm)]
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
    head = norm[max(unit_start, hit.start - 16) : hit.start]
    head = re.split(r"[,;:]", head)[-1]
    # side words between the landmark verb and the site ("邻近左侧胸膜")
    head = re.sub(r"(?:(?:左|右|双|两)侧?|\b(?:left|right|bilateral|ipsilateral)\b)\s*$", "", head)
    return bool(v.before.search(head)) or bool(v.after.match(norm, hit.end, hit.end + 12))


def _in_parens(norm: str, hit: SiteHit, lo: int, hi: int) -> bool:
    opened = norm.rfind("(", lo, hit.start)
    return opened != -1 and norm.find(")", opened, hit.start) == -1 and ")" in norm[hit.end : hi]


def _chunk(norm: str, pos: int, lo: int, hi: int) -> tuple[int, int]:
    """The comma chunk holding `pos` inside [lo, hi)."""
    a = max(norm.rfind(",", lo, pos), norm.rfind(";", lo, pos))
    b_candidates = [i for i in (norm.find(",", pos, hi), norm.find(";", pos, hi)) if i != -1]
    return (a + 1 if a != -1 else lo), (min(b_candidates) if b_candidates else hi)


def _is_reference(norm: str, hit: SiteHit, lo: int, hi: int) -> bool:
    a, b = _chunk(norm, hit.start, lo, hi)
    return bool(vocab().reference.search(norm, a, b))


# --------------------------------------------------------------------------- negation


def _lang(lang: str) -> str:
    return "zh" if lang == "zh" else "en"


def negated_before(text: str, norm: str, pos: int, lo: int, lang: str) -> bool:
    """A negation cue earlier in the unit governs `pos` ("未见A、B", "no A, B or C"):
    no break word ("见", "with") between; in Chinese a full comma ends the reach, an
    enumeration comma does not."""
    lg = _lang(lang)
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
    if lg == "zh" and any(text[i] in ",，;；" for i in range(last.end(), pos)):
        return False
    return not (lg == "en" and re.search(r"[;:]", between))


def negated_after(text: str, norm: str, hit: SiteHit, hi: int, lang: str) -> bool:
    """A negation right after the site ("肝脏未见异常", "纵隔淋巴结未见肿大",
    "adrenal glands are unremarkable") -- not after a lesion noun, which makes it a
    property ("甲状腺结节未见FDG摄取")."""
    lg = _lang(lang)
    v = vocab()
    m = v.neg_post[lg].search(norm, hit.end, min(hi, hit.end + 45))
    if m is None:
        return False
    between = norm[hit.end : m.start()]
    if v.lesion_noun.search(between) or _SIZE.search(between) or _SUV.search(between):
        return False
    if lg == "zh":
        if re.search(r"见|示", between):
            return False
        if any(text[i] in ",，;；" for i in range(hit.end, m.start())):
            return False
    return not (lg == "en" and re.search(r"\b(?:with|shows?|demonstrates?|has)\b", between))


# --------------------------------------------------------------------------- regions


def _regions(text: str, norm: str, secs: list[Section]) -> list[tuple[int, int, str]]:
    """(start, end, "findings"|"impression") of the text that may describe lesions."""
    v = vocab()
    label: list[str | None] = [None] * len(norm)
    has_findings = any(s.name == "findings" for s in secs)
    cuts = [s.end for s in secs] + [m.start() for m in v.extra_heading.finditer(norm)]
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
    for m in v.extra_heading.finditer(norm):
        kind = "impression" if m.group("imp") else "findings"
        e = min([c for c in cuts if c > m.end()] + [len(norm)])
        label[m.start() : e] = [None] * (m.end() - m.start()) + [kind] * (e - m.end())
    for m in v.ignore_heading.finditer(norm):
        stop = re.compile(r"\n") if m.group("line") else re.compile(r"\n|[。;]|\.(?=\s)")
        e = (stop.search(norm, m.end()) or re.search(r"$", norm)).start()  # type: ignore[union-attr]
        label[m.start() : e] = [None] * (e - m.start())
    out: list[tuple[int, int, str]] = []
    i = 0
    while i < len(norm):
        j = i
        while j < len(norm) and label[j] == label[i]:
            j += 1
        kind = label[i]
        if kind is not None:
            out.append((i, j, kind))
        i = j
    return out


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
    # consecutive mentions of one site are one head ("纵隔4R区、7区")
    merged: list[SiteHit] = []
    for h in heads:
        if merged and merged[-1].key == h.key:
            gap = norm[merged[-1].end : h.start]
            if not (v.lesion_cue.search(gap) or _SIZE.search(gap) or _SUV.search(gap)):
                last = merged[-1]
                merged[-1] = SiteHit(last.start, h.end, last.site, last.detail, last.weak)
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
        p = Part(hit, bounds[i], bounds[i + 1], kind)
        p.negated = negated_before(text, norm, hit.start, a, lang) or negated_after(
            text, norm, hit, b, lang
        )
        _read(text, norm, p, a, b, lang)
        parts.append(p)
    _central_mass(norm, parts, in_unit)
    _share(norm, parts)
    _pool_cues(parts)
    _respectively(norm, parts)
    return parts


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
    # what follows "伴"/"with" inside the part is an accompanying finding
    # ("肺癌伴阻塞性肺炎"): it judges the lesion only when nothing before does
    cut = re.search(r"伴|合并|并发|\bwith\b|\bassociated\b", norm[p.hit.end : p.end])
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
    p.physio = bool(physio) and not p.noun


def _cues(text: str, norm: str, p: Part, start: int, end: int, ua: int, lang: str) -> None:
    v = vocab()
    for cat, pat in v.tendency.items():
        for m in pat.finditer(norm, start, end):
            if cat in ("malignant", "metastasis", "primary", "benign") and negated_before(
                text, norm, m.start(), ua, lang
            ):
                continue
            p.cues.add(cat)


def _prior(norm: str, pos: int, lo: int) -> bool:
    """A value from an earlier study ("(previously 4.1 x 3.3 cm, SUVmax 12.6)", "原SUVmax 8.0")."""
    v = vocab()
    paren = norm.rfind("(", lo, pos)
    if paren != -1 and norm.find(")", paren, pos) == -1 and v.prior.match(norm, paren + 1):
        return True
    a, _ = _chunk(norm, pos, lo, pos + 1)
    return bool(v.prior.search(norm, max(a, pos - 12), pos))


def _in_reference_chunk(norm: str, pos: int, lo: int, hi: int) -> bool:
    a, b = _chunk(norm, pos, lo, hi)
    return bool(vocab().reference.search(norm, a, b))


def _share(norm: str, parts: list[Part]) -> None:
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
            p.noun, p.physio, p.node = src.noun, src.physio, p.node or src.node
            p.negated = nxt.negated
        elif not judged(p.cues) and p.section == "impression" and _joined(norm, tail):
            # "RML consolidation and mediastinal adenopathy, consistent with infection"
            p.cues = set((nxt.shared_from or nxt).cues if nxt.shared_from else nxt.cues)
            p.borrowed = True


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


def _pool_cues(parts: list[Part]) -> None:
    """Sites listed together share the judgement stated anywhere in the list
    ("metastatic adenopathy at stations 10L and 5")."""
    for src in parts:
        group = [p for p in parts if p.shared_from is src]
        for p in group:
            src.cues |= p.cues


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


def _conj_only(tail: str) -> bool:
    tail = re.sub(r"[()\[\]]|\bstations?\b|\blevels?\s*[ivx]+\b|第|\d+\s?[rl]?|区|组", " ", tail)
    tail = re.sub(r"[ⅠⅡⅢⅣⅤⅥⅦⅧⅨⅩ]+[ab]?", " ", tail)
    tail = re.sub(r"淋巴结|\blymph\b|\bnod(?:es?|al)\b", " ", tail)
    tail = re.sub(
        r"\b(?:left|right|bilateral|ipsilateral|contralateral)\b|[左右双两]侧?", " ", tail
    )
    return not tail.strip() or bool(vocab().conj.match(tail))


def _joined(norm: str, tail: str) -> bool:
    """The tail ends in "and"/"及" (not a comma): the two sites share one judgement."""
    return bool(re.search(r"(?:\band|及|和|与|以及|/)\s*$", tail))


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
            _continue_unit(text, norm, lang, last[kind], a, b)
    return parts


def _continue_unit(text: str, norm: str, lang: str, p: Part, a: int, b: int) -> None:
    """A unit without a site on the same line continues the part before it
    ("肝内见多发低密度灶。大者约3.4cm" ; "segment 7, 2.6 cm, SUV 8.1")."""
    if "\n" in norm[p.end : a] or re.match(r"\s*\d+\s*[.,)]", norm[a:b]):
        return
    if p.negated or p.shared_from is not None:
        return
    extra = Part(p.hit, a, b, p.section)
    _read(text, norm, extra, a, b, lang)
    if negated_before(text, norm, a, a, lang):
        return
    p.sizes += extra.sizes
    p.suvs += extra.suvs
    p.cues |= extra.cues
    p.end = b


def _qualifies(p: Part) -> bool:
    if p.negated or p.historical:
        return False
    sz, sv, cues = _measures(p)
    if p.section == "findings":
        # a node is a lesion when something is wrong with it ("数枚小淋巴结" is not)
        cue = p.abnormal if (p.hit.site in NODE_SITES or p.node) else p.lesion_cue
        return not p.physio and (cue or bool(sz) or bool(sv) or bool(cues))
    # an impression statement creates a lesion only when it names one, or judges
    # an abnormal finding ("diffuse bone marrow uptake, likely reactive")
    if p.borrowed and not (p.noun or p.sizes or p.suvs):
        return False
    judged = p.lesion_cue and bool(cues & {"benign", "indeterminate", "hedge"})
    return not p.physio and (p.noun or judged or bool(cues & {"malignant", "metastasis"}))


def build(text: str, norm: str, lang: str, secs: list[Section]) -> list[Lesion]:
    parts = [p for p in all_parts(text, norm, lang, secs) if not p.negated]
    lesions: dict[tuple[str, str], Lesion] = {}
    pending: list[Part] = []
    for p in sorted(parts, key=lambda q: q.hit.start):
        if p.section == "impression":
            pending.append(p)
            continue
        if _qualifies(p):
            lesions.setdefault(p.hit.key, Lesion(p.hit.key, p.hit.site)).parts.append(p)
        elif p.hit.key in lesions and not p.physio and not p.historical:
            lesions[p.hit.key].parts.append(p)  # a later word on a lesion already found
    generic = [p for p in pending if p.hit.detail == "nodes:any"]
    for p in pending:
        if p in generic:
            continue
        if p.hit.weak and "multiple" in p.cues:
            side = p.hit.detail.split(":")[1]
            named = {q.hit.key for q in pending if not q.hit.weak}
            many = [
                les
                for les in lesions.values()
                if les.site in LOBES
                and les.key not in named
                and (side == "any" or les.site.startswith(side))
            ]
            if many:
                # "右肺多发转移": every lesion of that lung the impression names no other way
                for les in many:
                    les.parts.append(p)
                continue
        target = _match(p, lesions)
        if target is not None:
            target.parts.append(p)
        elif _qualifies(p):
            lesions[p.hit.key] = Lesion(p.hit.key, p.hit.site, [p])
    for p in generic:
        _attach_generic(p, pending, lesions)
    return sorted(lesions.values(), key=lambda les: les.first)


def _attach_generic(p: Part, pending: list[Part], lesions: dict[tuple[str, str], Lesion]) -> None:
    """A node statement without a station: right after node sites it judges them
    ("right hilar node, possibly reactive, nodal metastasis not excluded"); else it
    judges every node lesion the impression leaves unjudged ("with nodal metastases")."""
    nodes = [
        les for les in lesions.values() if les.site in NODE_SITES or any(q.node for q in les.parts)
    ]
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


def _match(p: Part, lesions: dict[tuple[str, str], Lesion]) -> Lesion | None:
    if p.hit.key in lesions:
        return lesions[p.hit.key]
    if p.hit.weak:
        side = p.hit.detail.split(":")[1]
        for les in sorted(lesions.values(), key=lambda x: x.first):
            if les.site in LOBES and (side == "any" or les.site.startswith(side)):
                return les
    return None


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


def _role(les: Lesion, tendency: str | None, cues: set[str]) -> str | None:
    v = vocab()
    if les.site in NODE_SITES:
        return "lymph_node"
    met = "metastasis" in cues and "primary" not in cues
    if les.site in LOBES:
        if tendency in ("malignant", "indeterminate") and met:
            return "metastasis"
        if tendency == "malignant":
            return "primary"
        return None
    if les.site in v.distant:
        if tendency == "malignant" or "metastasis" in cues:
            return "metastasis"
        return None
    # other organs
    if any(p.node for p in les.parts):
        return "lymph_node"
    if "metastasis" in cues and tendency in ("malignant", "indeterminate"):
        return "metastasis"
    return None
