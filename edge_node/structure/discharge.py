"""Discharge summaries: diagnoses (ICD-10), surgery, chemotherapy regimens, smoking.

Vocabulary and coding choices live in `data/discharge.json` (read its `coding_notes`,
`surgery.comment`, `drugs.comment`, `smoking.comment`). The rules here:

- diagnoses: vocabulary terms, lung and other primary cancers (organ and lobe read
  from the words before the cancer word, or after "of" in English), metastases
  (site lists before "转移"/"metastases" or after "metastatic to"), explicit codes.
  Negated or doubted diagnoses are left out; an unspecified code (C34.9) gives way
  to a specific one of the same category (C34.1).
- procedures: operations only, named as written, dated from the same phrase or
  sentence; the same operation named twice is listed once.
- regimens: drug names (generic, brand, abbreviation) and regimen abbreviations
  joined by dose and schedule words form one regimen; a regimen needs a cytotoxic
  drug; planned or refused treatment is not listed.
- smoking: current / former / never statements, advice to quit ignored.

Every mention reads its own negation (`Mention.context = False`): the shared cues
reach across history narratives ("无明显诱因出现咳嗽,...诊断为肺癌").
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from edge_node.structure.core import Extraction, Mention
from edge_node.structure.text import Section, data, literal_first, word_alternation

FIELDS = ("diagnosis_icd10", "procedures", "chemotherapy_regimens", "smoking")

_HAN = re.compile(r"[\u4e00-\u9fff]")


class _FoldTable(dict[int, str]):
    """`str.translate` table filled on first sight of each character: NFKC per
    character once per process, not once per character of every report."""

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        u = unicodedata.normalize("NFKC", ch) if code > 127 else ch
        self[code] = folded = u if len(u) == 1 else ch
        return folded


_FOLD_TABLE = _FoldTable()


@lru_cache(maxsize=4)
def _fold(text: str) -> str:
    """Full-width forms folded one for one, case kept (for case-sensitive names)."""
    return text.translate(_FOLD_TABLE)


def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = data("discharge.json")
    return spec


def _alt(words: list[str] | Any, *, bound: bool = True) -> str:
    """Alternation, longest first; ASCII words get word boundaries (a prefix tree)."""
    return word_alternation(words, bound=bound)


# ---------------------------------------------------------------- assertion


@lru_cache(maxsize=1)
def _cues() -> dict[str, re.Pattern[str]]:
    a = _spec()["assertion"]
    out = {}
    for key in ("neg_zh_pre", "neg_zh_post", "neg_en_pre", "neg_en_post"):
        out[key] = re.compile(_alt(a[key]))
    for key in ("unc_zh_pre", "unc_zh_post", "unc_en_pre", "unc_en_post"):
        out[key] = re.compile(_alt(a[key]))
    out["block_zh"] = re.compile(a["block_zh"])
    out["block_en"] = re.compile(a["block_en"])
    out["plan"] = re.compile(a["plan_zh"] + "|" + a["plan_en"])
    out["family"] = re.compile(a["family"])
    return out


def _family(norm: str, start: int) -> bool:
    """Whether the clause names a relative before the mention ("父亲死于肺癌",
    "family history of breast cancer"), or the line is a family-history line."""
    c_start = _clause(norm, start, start + 1)[0]
    line_start = norm.rfind("\n", 0, start) + 1
    return bool(
        _cues()["family"].search(norm, max(c_start, start - 25), start)
        or _cues()["family"].match(norm, line_start)
    )


_CLAUSE_END = re.compile(r"[。;!?\n]|\.(?=\s|$)")
_HARD_STOP = re.compile(r"[。;\n]")
# Phrase ends: punctuation, and list numbering inside a line ("... 2.肺部感染").
_PHRASE_END = re.compile(r"[。;!?\n,:()\[\]]|\.(?=\s|$)|\s\d{1,2}[.)](?!\d)")


@lru_cache(maxsize=4)
def _clause_ends(norm: str) -> list[int]:
    """Where `_CLAUSE_END` matches in the whole text (one character each): found once
    per report, not in a 400-character window for every mention."""
    return [m.start() for m in _CLAUSE_END.finditer(norm)]


def _clause(norm: str, start: int, end: int) -> tuple[int, int]:
    """The clause around norm[start:end] (looked for within 400 characters)."""
    a = lo = max(0, start - 400)
    stop = min(start, len(norm))
    ends = _clause_ends(norm)
    i = bisect.bisect_left(ends, stop) - 1
    if i >= 0 and ends[i] >= lo:
        a = ends[i] + 1
    if lo <= stop - 1 and norm[stop - 1] == ".":
        a = stop  # a full stop right before the mention ends the clause as the text's last would
    j = bisect.bisect_left(ends, end)
    return a, (ends[j] if j < len(ends) else len(norm))


# Site lists run over commas ("骨、脑转移", "bone, liver and brain metastases").
_LIST_END = re.compile(r"[。;!?\n:()\[\]]|\.(?=\s|$)|\s\d{1,2}[.)](?!\d)")


def _phrase_start(norm: str, pos: int, floor: int = 0, ends: re.Pattern[str] = _PHRASE_END) -> int:
    a = floor
    for m in ends.finditer(norm, floor, pos):
        a = m.end()
    return a


# What may stand between a mention and its post cue: "脑转移待排", "TB was ruled out".
_POST_GAP = {"zh": re.compile(r"[^\d\s,(]{0,2}"), "en": re.compile(r"[a-z ]{0,12}")}


def _status(norm: str, start: int, end: int) -> tuple[bool, bool]:
    """(negated, uncertain) for norm[start:end], read with the discharge cues. A pre
    cue counts when no blocker lies between it and the mention; a post cue when it
    follows within a few characters."""
    c = _cues()
    c_start = _clause(norm, start, end)[0]
    negated = uncertain = False
    for kind, lang in (("neg", "zh"), ("neg", "en"), ("unc", "zh"), ("unc", "en")):
        limit = 30 if lang == "zh" else 50
        lo = max(c_start, start - limit)
        hit = False
        for m in c[f"{kind}_{lang}_pre"].finditer(norm, lo, start):
            between = norm[m.end() : start]
            if c[f"block_{lang}"].search(between):
                continue
            hit = True
        after = _HARD_STOP.split(norm[end : end + 25])[0]
        pm = c[f"{kind}_{lang}_post"].search(after)
        if pm and _POST_GAP[lang].fullmatch(after[: pm.start()]):
            hit = True
        if hit and kind == "neg":
            negated = True
        elif hit:
            uncertain = True
    return negated, uncertain


# ---------------------------------------------------------------- diagnoses


@dataclass(frozen=True)
class _Dx:
    terms: re.Pattern[str]
    term_codes: dict[str, str]
    zh_cancer: re.Pattern[str]
    en_cancer: re.Pattern[str]
    zh_lobes: re.Pattern[str]
    en_lobes: re.Pattern[str]
    lobe_codes: dict[str, str]
    lung_self: re.Pattern[str]
    lung_word: re.Pattern[str]
    organs: list[tuple[re.Pattern[str], str, dict[str, str]]]
    zh_met: re.Pattern[str]
    zh_met_list: re.Pattern[str]
    zh_met_tok: re.Pattern[str]
    en_met_after: re.Pattern[str]
    en_met_before: re.Pattern[str]
    en_met_list_back: re.Pattern[str]
    en_met_list_fwd: re.Pattern[str]
    en_met_tok: re.Pattern[str]
    sites: dict[str, str]
    stations: dict[str, str]
    node_word: re.Pattern[str]


@lru_cache(maxsize=1)
def _dx() -> _Dx:
    s = _spec()
    lung, met = s["lung"], s["metastasis"]
    organs = []
    for lang in ("zh", "en"):
        for pattern, code, subs in s["organs"][lang]:
            pat = pattern if lang == "zh" else r"\b(?:" + pattern + r")"
            organs.append((re.compile(pat), code, subs))
    sites = {**met["zh_sites"], **met["en_sites"]}
    stations = {**met["zh_stations"], **met["en_stations"]}
    zh_tok = _alt([*met["zh_sites"], *met["zh_stations"], met["zh_node_word"]], bound=False)
    zh_noise = met["zh_list_noise"]
    en_words = [*met["en_sites"], *met["en_stations"]]
    en_tok = _alt(en_words) + "|" + met["en_node_word"]
    en_noise = met["en_list_noise"]
    return _Dx(
        terms=re.compile(_alt(s["terms"])),
        term_codes=s["terms"],
        zh_cancer=re.compile(lung["zh_cancer"]),
        en_cancer=re.compile(r"\b" + lung["en_cancer"] + r"\b"),
        zh_lobes=re.compile(_alt(lung["zh_lobes"], bound=False)),
        en_lobes=re.compile(_alt(lung["en_lobes"])),
        lobe_codes={**lung["zh_lobes"], **lung["en_lobes"]},
        lung_self=re.compile(_alt(lung["self_terms"])),
        lung_word=re.compile(
            _alt(lung["zh_lung_words"], bound=False) + "|" + _alt(lung["en_lung_words"])
        ),
        organs=organs,
        zh_met=re.compile(met["zh_anchor"]),
        zh_met_list=re.compile(rf"(?:(?:{zh_tok}|{zh_noise})[\s,/+&]*)+$"),
        zh_met_tok=re.compile(zh_tok),
        en_met_after=re.compile(r"\b(?:" + met["en_anchor_after"] + r")\b"),
        en_met_before=re.compile(r"\b(?:" + met["en_anchor_before"] + r")\b"),
        en_met_list_back=re.compile(rf"(?:\b(?:{en_tok}|{en_noise})\b[\s,/+&]*)+$"),
        en_met_list_fwd=re.compile(rf"(?:[\s,/+&]*\b(?:{en_tok}|{en_noise})\b)+"),
        en_met_tok=re.compile(en_tok),
        sites=sites,
        stations=stations,
        node_word=re.compile(met["zh_node_word"] + r"|\b(?:" + met["en_node_word"] + r")\b"),
    )


_CODE = re.compile(r"(?<![A-Za-z0-9])([A-Z]\d{2})(?:\.([0-9xX])[0-9xX]*(?:[a-z]\d+)?)?(?![A-Za-z])")
_ICD_CUE = re.compile(r"icd[- ]?(?:10)?\s*(?:编码|code)?\s*[:=]?\s*$")


def _lung_code(window: str) -> str:
    d = _dx()
    codes = {d.lobe_codes[m.group(0)] for m in d.zh_lobes.finditer(window)}
    codes |= {d.lobe_codes[m.group(0)] for m in d.en_lobes.finditer(window)}
    if not codes:
        return "C34.9"
    if len(codes) > 1:
        return "C34.8"
    return codes.pop()


def _organ_code(back: str, ahead: str, zh: bool, near: str = "") -> str | None:
    """The organ named last before the cancer word (or, in English, after it: "of the
    right upper lobe") with its code; what follows refines the sub-site ("(外上象限)")."""
    d = _dx()
    window = back if zh else back + " " + ahead
    best: tuple[str, int] | None = None
    for pat in (d.lung_word, d.zh_lobes, d.en_lobes):
        for m in pat.finditer(window):
            if best is None or m.end() >= best[1]:
                best = ("lung", m.end())
    for pat, code, subs in d.organs:
        for m in pat.finditer(window):
            if best is None or m.end() > best[1]:
                whole = back + " " + ahead + " " + near
                best = (next((c for w, c in subs.items() if w in whole), code), m.end())
    if best is None:
        return None
    if best[0] == "lung":
        return _lung_code(back + " " + ahead)
    return best[0]


def _cancers(norm: str) -> list[Mention]:
    d = _dx()
    out: list[Mention] = []
    taken: list[tuple[int, int]] = []
    for m in d.lung_self.finditer(norm):
        a = _phrase_start(norm, m.start(), max(0, m.start() - 20))
        win = norm[a : m.end()] + " " + _ahead(norm, m.end())
        start = a + _site_start(norm[a : m.start()])
        out.append(Mention("dx", start, m.end(), _lung_code(win), context=False))
        taken.append((m.start(), m.end()))
    for pat, zh_pat in ((d.zh_cancer, True), (d.en_cancer, False)):
        for m in pat.finditer(norm):
            if any(a <= m.start() < b for a, b in taken):
                continue
            zh = zh_pat and bool(_HAN.search(m.group(0)))  # "Ca LUL" reads as English
            a = _phrase_start(norm, m.start(), max(0, m.start() - (20 if zh else 45)))
            back = norm[a : m.start()]
            if zh and ("转移" in back or back.endswith("继发")):
                continue  # 肝继发恶性肿瘤: a metastasis (_metastases), not a liver primary
            if not zh and re.search(r"\b(?:secondary|metastatic)\s+$", back):
                # "metastatic SCC of the right upper lobe" names the primary's lobe
                if not _LOBE_OF.match(norm, m.end()):
                    continue
                back = ""
            near = norm[m.end() : _clause(norm, m.start(), m.end())[1]][:60]
            found = _organ_code(back, _ahead(norm, m.end()), zh, near)
            if found is None:
                out.append(Mention("dx_orphan", m.start(), m.end(), None, context=False))
                continue
            out.append(Mention("dx", a + _site_start(back), m.end(), found, context=False))
    return out


_LOBE_OF = re.compile(
    r"\s+of\s+(?:the\s+)?(?:right\s+|left\s+)?(?:upper|middle|lower)\s+lobe|\s+of\s+(?:the\s+)?(?:rul|rml|rll|lul|lll|lingula)\b"
)


def _site_start(back: str) -> int:
    """Where the words naming the cancer's site begin in its look-back ("右肺上叶"),
    so that evidence starts there; the cancer word itself when none precede it."""
    d = _dx()
    pats = [d.lung_word, d.zh_lobes, d.en_lobes, *(p for p, _, _ in d.organs)]
    starts = [m.start() for p in pats for m in [p.search(back)] if m]
    return min(starts) if starts else len(back)


_LEAD = re.compile(r"^[\s,.)\d]*(?:[a-z]\)|[a-z]\.(?=\s))?\s*")


def _lead(back: str) -> int:
    """Offset past the spaces and list numbering that open a look-back window."""
    m = _LEAD.match(back)
    return m.end() if m else 0


_EN_TAIL = re.compile(
    r"\s*(?:(?:of|in|involving|arising in|arising from)\s+(?:the\s+)?"
    r"|\s(?=(?:right|left|rul|rml|rll|lul|lll|lung|upper|middle|lower)\b"
    # "Adenocarcinoma R middle lobe": an abbreviated side before the lobe
    r"|(?:r|l|rt|lt)\.?\s+(?:upper|middle|lower)\s+lobe\b))([^,;.()]{0,40})"
)
_EN_TAIL_STOP = re.compile(
    r"\b(?:with|and|status|treated|s/p|on|which|who|metastatic|metastas[ie]s|mets)\b|伴|并|转移"
)


_AHEAD = re.compile(r"[^.;\n]{0,40}")


def _ahead(norm: str, end: int) -> str:
    """What names the site after a cancer word: "of the right upper lobe", an
    apposition ", left upper lobe", a parenthesis "(adenocarcinoma, RUL)"."""
    m = _EN_TAIL.match(norm, end)
    if m:
        tail = m.group(1)
        paren = re.match(r"\s*\(([^()]{0,30})\)", norm[m.end() : m.end() + 34])
        tail += " " + paren.group(1) if paren else ""
    elif re.match(r"\s*[(,]", norm[end : end + 3]):
        tail = _AHEAD.match(norm, end).group(0)  # type: ignore[union-attr]
    else:
        return ""
    stop = _EN_TAIL_STOP.search(tail)
    return tail[: stop.start()] if stop else tail


def _met_codes(span: str, tok: re.Pattern[str]) -> list[str]:
    d = _dx()
    words = [m.group(0) for m in tok.finditer(span)]
    node = any(d.node_word.fullmatch(w) for w in words)
    codes: list[str] = []
    stations = [d.stations[w] for w in words if w in d.stations]
    if node or (stations and not any(w in d.sites for w in words)):
        codes += stations or [_spec()["metastasis"]["node_unspecified"]]
    codes += [d.sites[w] for w in words if w in d.sites]
    return list(dict.fromkeys(codes))


def _metastases(norm: str) -> list[Mention]:
    d = _dx()
    out: list[Mention] = []
    for m in d.zh_met.finditer(norm):
        a = _phrase_start(norm, m.start(), max(0, m.start() - 25), _LIST_END)
        back = norm[a : m.start()]
        cut = max((c.end() for c in d.zh_cancer.finditer(back)), default=0)
        for word in ("伴", "并", "合并", "及其"):
            k = back.rfind(word)
            if k >= 0:
                cut = max(cut, k + len(word))
        back = back[cut:]
        lm = d.zh_met_list.search(back)
        if not lm:
            continue
        start = a + cut + lm.start() + _lead(lm.group(0))
        for code in _met_codes(lm.group(0), d.zh_met_tok):
            out.append(Mention("dx", start, m.end(), code, context=False))
    for m in d.en_met_after.finditer(norm):
        a = _phrase_start(norm, m.start(), max(0, m.start() - 60), _LIST_END)
        back = norm[a : m.start()]
        lm = d.en_met_list_back.search(back)
        if not lm:
            continue
        start = a + lm.start() + _lead(lm.group(0))
        for code in _met_codes(lm.group(0), d.en_met_tok):
            out.append(Mention("dx", start, m.end(), code, context=False))
    for m in d.en_met_before.finditer(norm):
        fm = d.en_met_list_fwd.match(norm, m.end())
        if not fm:
            continue
        for code in _met_codes(fm.group(0), d.en_met_tok):
            out.append(Mention("dx", m.start(), fm.end(), code, context=False))
    return out


def _terms(text: str, norm: str) -> list[Mention]:
    d = _dx()
    out = [
        Mention("dx", m.start(), m.end(), d.term_codes[m.group(0)], context=False)
        for m in d.terms.finditer(norm)
    ]
    cased, pattern = _cased_terms()
    for m in pattern.finditer(_fold(text)):
        out.append(Mention("dx", m.start(), m.end(), cased[m.group(0)], context=False))
    return out


@lru_cache(maxsize=1)
def _cased_terms() -> tuple[dict[str, str], re.Pattern[str]]:
    """The case-sensitive terms ("DM", "COPD") and their pattern: the words in the
    file's order, each with the start boundary after its first letter
    (`literal_first`), so `re` tries a word only where its first letter stands."""
    cased: dict[str, str] = _spec()["terms_case_sensitive"]
    words = [w for w in cased if w != "comment"]
    alts = "|".join(literal_first(rf"(?<![A-Za-z0-9]){w}") for w in words)
    return cased, re.compile(r"(?:" + alts + r")(?![A-Za-z0-9])")


def _codes(text: str, norm: str) -> list[Mention]:
    out = []
    for m in _CODE.finditer(_fold(text)):
        letter, sub = m.group(1), m.group(2)
        if sub is None and not _ICD_CUE.search(norm[max(0, m.start() - 20) : m.start()]):
            continue
        code = f"{letter}.{sub}" if sub and sub.isdigit() else letter
        out.append(Mention("dx_code", m.start(), m.end(), code, context=False))
    return out


def _diagnoses(text: str, norm: str) -> list[Mention]:
    found = _cancers(norm) + _metastases(norm) + _terms(text, norm)
    for mention in found:
        mention.negated, mention.uncertain = _status(norm, mention.start, mention.end)
        mention.negated = mention.negated or _family(norm, mention.start)
        _cured(norm, mention)
    return found + _codes(text, norm)


_ITEM_END = re.compile(r"\n|\s\d{1,2}[.)](?!\d)|;")


def _cured(norm: str, m: Mention) -> None:
    """A primary cancer its own item says is gone ("history of colon cancer, s/p
    hemicolectomy 2018, no recurrence", "乳腺癌术后10年，无复发") is the personal
    history code Z85.x (ICD-10: the cancer excised, no evidence of it remaining), not
    the cancer. A past cancer without such a statement keeps its C code."""
    code = str(m.value)
    if not re.fullmatch(r"C\d{2}(?:\.\d)?", code) or code[:3] in ("C77", "C78", "C79"):
        return
    spec = _spec()["cancer_history"]
    start = max(norm.rfind("\n", 0, m.start) + 1, 0)
    stop = _ITEM_END.search(norm, m.end)
    item = norm[start : stop.start() if stop else len(norm)]
    if not re.search(spec["no_disease"], item):
        return
    cat = int(code[1:3])
    for span, z in spec["codes"].items():
        lo, _, hi = span.partition("-")
        if int(lo[1:]) <= cat <= int((hi or lo)[1:]):
            m.value = z
            return


# ---------------------------------------------------------------- dates

_MONTHS: dict[str, int] = {}
_DATE_RES: list[tuple[re.Pattern[str], str]] = []


def _date_res() -> list[tuple[re.Pattern[str], str]]:
    if not _DATE_RES:
        _MONTHS.update(_spec()["dates"]["months"])
        mon = _alt(list(_MONTHS))
        _DATE_RES.extend(
            [
                # Taiwan (ROC) calendar: 民国115年10月5日 is 2026-10-05; a bare ROC year
                # is partial, caught here so it is not read as anything else
                (re.compile(r"民国\s*(\d{2,3})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日?"), "roc"),
                (re.compile(r"民国\s*(\d{2,3})\s*年(?:\s*\d{1,2}\s*月)?"), "partial"),
                (re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"), "ymd"),
                (re.compile(rf"(\d{{4}})-({mon})-(\d{{1,2}})(?!\d)"), "ymond"),
                (
                    re.compile(rf"(\d{{1,2}})(?:st|nd|rd|th)?[\s-]+({mon})\.?,?[\s-]+(\d{{4}})"),
                    "dmy",
                ),
                (re.compile(rf"({mon})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})"), "mdy"),
                # the look-behinds of "num", "numdot" and "num2" come after the first
                # digit ("(?<![\d.])(\d{1,2})" as "(\d(?<![\d.]\d)\d?)"): the same
                # matches, but `re` tries only where a digit stands
                (re.compile(r"(\d(?<![\d.]\d)\d?)/(\d{1,2})/(\d{4})"), "num"),
                # "14.10.2026", "14-10-2026": written day first where dots or dashes are used
                (re.compile(r"(\d(?<![\d./-]\d)\d?)([.-])(\d{1,2})\2(\d{4})(?![\d.]\d)"), "numdot"),
                (re.compile(r"(\d(?<![\d./]\d)\d?)/(\d{1,2})/(\d{2})(?![\d/])"), "num2"),
                (re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*月?(?![\d])"), "ym"),
                (re.compile(rf"({mon})\.?,?\s+(\d{{4}})"), "my"),
                (re.compile(r"(?<!\d)(?<!\d\.)(?:19|20)\d{2}\s*年?(?!\d|\.\d)"), "y"),
            ]
        )
    return _DATE_RES


def _dates(norm: str) -> list[tuple[int, int, str | None]]:
    """(start, end, ISO date or None for a partial date) of every date in the text."""
    out: list[tuple[int, int, str | None]] = []
    used: list[tuple[int, int]] = []
    found: list[tuple[re.Match[str], str]] = []
    for pat, form in _date_res():
        for m in pat.finditer(norm):
            if any(a < m.end() and m.start() < b for a, b in used):
                continue
            used.append((m.start(), m.end()))
            found.append((m, form))
    day_first = _day_first([m for m, form in found if form in ("num", "num2")])
    for m, form in found:
        out.append((m.start(), m.end(), _iso(m.groups(), form, day_first)))
    out.sort()
    return out


def _day_first(numeric: list[re.Match[str]]) -> bool | None:
    """The order a summary writes its numeric dates in, read from the dates that can
    only be read one way ("19/03/2026" is day first, so "05/03/2026" in the same
    summary is 5 March); None when the summary does not say or says both."""
    day = any(int(m.group(1)) > 12 for m in numeric)
    month = any(int(m.group(2)) > 12 for m in numeric)
    return day if day != month else None


def _iso(g: tuple[str | Any, ...], form: str, day_first: bool | None = None) -> str | None:
    try:
        if form == "ymd":
            y, mo, d = int(g[0]), int(g[1]), int(g[2])
        elif form == "roc":
            y, mo, d = int(g[0]) + 1911, int(g[1]), int(g[2])
        elif form == "ymond":
            y, mo, d = int(g[0]), _MONTHS[g[1]], int(g[2])
        elif form == "dmy":
            y, mo, d = int(g[2]), _MONTHS[g[1]], int(g[0])
        elif form == "mdy":
            y, mo, d = int(g[2]), _MONTHS[g[0]], int(g[1])
        elif form == "numdot":
            a, b, y = int(g[0]), int(g[2]), int(g[3])
            mo, d = (a, b) if b > 12 else (b, a)
        elif form in ("num", "num2"):
            a, b, y = int(g[0]), int(g[1]), int(g[2])
            y += 2000 if form == "num2" else 0
            mo, d = (b, a) if a > 12 or (day_first and b <= 12) else (a, b)
        else:
            return None
        return dt.date(y, mo, d).isoformat()
    except (ValueError, KeyError):
        return None


# ---------------------------------------------------------------- surgery


@dataclass(frozen=True)
class _Surg:
    zh_terms: re.Pattern[str]
    en_terms: re.Pattern[str]
    zh_exclude: re.Pattern[str]
    en_exclude: re.Pattern[str]
    zh_trigger: re.Pattern[str]
    anaesthesia: re.Pattern[str]
    en_stop: re.Pattern[str]
    en_post: re.Pattern[str]
    connector: re.Pattern[str]


@lru_cache(maxsize=1)
def _surg() -> _Surg:
    s = _spec()["surgery"]
    return _Surg(
        zh_terms=re.compile(s["zh_terms"]),
        en_terms=re.compile(r"\b" + s["en_terms"] + r"\b"),
        zh_exclude=re.compile(s["zh_exclude"]),
        en_exclude=re.compile(s["en_exclude"]),
        zh_trigger=re.compile(s["zh_trigger"]),
        anaesthesia=re.compile(s["zh_anaesthesia"]),
        en_stop=re.compile(r"(?:" + s["en_stop"] + r")"),
        en_post=re.compile(s["en_post"]),
        connector=re.compile(s["connector"]),
    )


_ZH_STOP = re.compile(r"[,;:()\[\]\n。+\s\"'《》「」]")
_EN_WORD = re.compile(r"[a-z][a-z0-9/-]*\Z")
_LEAD_JOIN = re.compile(r"^(?:及|并|和|加|与|联合|\+|and\s|with\s|plus\s|,)\s*")


def _zh_start(norm: str, start: int, floor: int) -> int:
    s = _surg()
    a = start
    while a > floor:
        ch = norm[a - 1]
        if ch == " " and re.search(r"(?:^|[^a-z])u?[vr]ats$", norm[max(0, a - 6) : a - 1]):
            a -= 1  # "VATS 右肺上叶切除术": the approach belongs to the name
            continue
        if _ZH_STOP.match(ch):
            break
        if ch.isdigit():
            # "T12椎体…术", "L4-5…": a level named by letter and number is part of the name
            k = a - 1
            while k > floor and (norm[k - 1].isdigit() or norm[k - 1] == "-"):
                k -= 1
            if not (k > floor and norm[k - 1] in "ctls" and not norm[k - 2 : k - 1].isalpha()):
                break
        a -= 1
    if norm[a : a + 1] in ("年", "月", "日", "号") and a > floor and norm[a - 1].isdigit():
        a += 1  # "2010年胆囊切除术": the date's unit is not part of the name
    trig = None
    for t in s.zh_trigger.finditer(norm, a, start):
        trig = t
    if trig is not None:
        a = trig.end()
    am = s.anaesthesia.search(norm[a:start])
    return a + am.end() if am else a


def _en_start(norm: str, start: int, floor: int) -> int:
    """Back over the words that qualify an operation ("VATS right upper"), up to a
    verb, article, preposition, punctuation or number."""
    s = _surg()
    a = start
    for _ in range(7):
        k = a
        while k > floor and norm[k - 1] == " ":
            k -= 1
        m = _EN_WORD.search(norm, max(floor, k - 30), k)
        if not m or m.start() < floor or s.en_stop.fullmatch(m.group(0)):
            break
        before = norm[m.start() - 1] if m.start() > 0 else ""
        if before.isascii() and (before.isalnum() or before in "/-"):
            break  # a word cut by the window: too long to be a qualifier
        a = m.start()
    return a


def _surgery_pieces(norm: str) -> list[tuple[int, int]]:
    """Name spans of single operations, before chaining."""
    s = _surg()
    terms = sorted(
        [(m.start(), m.end(), True) for m in s.zh_terms.finditer(norm)]
        + [(m.start(), m.end(), False) for m in s.en_terms.finditer(norm)]
    )
    pieces: list[tuple[int, int]] = []
    prev_end = 0
    for start, term_end, zh in terms:
        end = term_end
        if start < prev_end:
            continue
        floor = max(prev_end, start - 40)
        if zh:
            a = _zh_start(norm, start, floor)
        else:
            a = _en_start(norm, start, floor)
            pm = s.en_post.match(norm[end : end + 60])
            if pm:
                end += pm.end()
        lead = _LEAD_JOIN.match(norm[a:start])
        if lead:
            a += lead.end()
        pieces.append((a, end))
        prev_end = end
    return pieces


def _chain(norm: str, pieces: list[tuple[int, int]]) -> list[list[int]]:
    """Operations joined by "+", "及", "with", or one in brackets after another, are
    one procedure ("胸腔镜下右肺上叶切除术+纵隔淋巴结清扫术")."""
    s = _surg()
    chains: list[list[int]] = []
    for i, (a, b) in enumerate(pieces):
        if chains:
            gap = norm[chains[-1][1] : a]
            then = norm[b : pieces[i + 1][0]] if i + 1 < len(pieces) else ""
            if (
                _LIST_COMMA.fullmatch(gap)
                and re.search(r"\bwith\b", norm[chains[-1][0] : chains[-1][1]])
                and _LISTED_PART.fullmatch(then)
            ):
                # "lobectomy with diaphragm resection (partial), patch repair and node
                # dissection": a middle item of one operation's listed parts
                chains[-1][1] = b
                continue
            if len(gap) <= 8 and s.connector.match(gap):
                chains[-1][1] = b
                continue
            if _CONVERTED.fullmatch(gap):
                # "VATS lobectomy converted to open thoracotomy": one operation
                chains[-1][1] = b
                continue
            if _LISTED_PART.fullmatch(gap):
                # "lobectomy with chest wall resection (ribs 1-3), mesh reconstruction and
                # mediastinal lymph node dissection": one operation's parts, listed
                chains[-1][1] = b
                continue
            close = norm.find(")", b, b + 3)
            # "lobectomy (VATS)" is one name; "appendectomy（阑尾切除术）" is a translation
            same_script = bool(_HAN.search(norm[a:b])) == bool(
                _HAN.search(norm[chains[-1][0] : chains[-1][1]])
            )
            if (
                re.fullmatch(r"\s*\([a-z0-9]*", gap)
                and close >= 0
                and not norm[b:close].strip()
                and same_script
            ):
                chains[-1][1] = close + 1
                continue
        chains.append([a, b])
    return _drop_translations(norm, chains)


def _drop_translations(norm: str, chains: list[list[int]]) -> list[list[int]]:
    """An operation named again in the other language in brackets right after it
    ("胸腔鏡肋膜沾黏術（VATS talc pleurodesis）") is the same operation, named once."""
    out: list[list[int]] = []
    for a, b in chains:
        if out:
            pa, pb = out[-1]
            bracketed = re.fullmatch(r"\s*\(\s*", norm[pb:a]) and re.match(r"\s*\)", norm[b:])
            if bracketed and bool(_HAN.search(norm[pa:pb])) != bool(_HAN.search(norm[a:b])):
                continue
        out.append([a, b])
    return out


_LIST_COMMA = re.compile(r"(?:\s*\([^()\n;]{0,20}\))?\s*,\s*")
_LISTED_PART = re.compile(
    # an aside in brackets that is no date ("(ribs 1-3)", not "(2019)")
    r"(?:\s*\((?![^()]*\d{4})[^()\n;]{0,20}\))?(?:\s*,\s*[a-z][a-z -]{0,30}?)?"
    r"\s*(?:,\s*)?(?:and|with|plus|\+|及|并)\s+"
)


_CONVERTED = re.compile(
    r"\s*,?\s*(?:(?:and\s+|then\s+)?(?:was\s+)?converted|conversion)\s+to\s+|中转"
)
# "(post-resection)", "pre-op": a state named after an operation, not an operation
_STATE_ONLY = re.compile(r"(?:post|pre|after)\s*-\s*[a-z]+")


_WITH_BIOPSY = re.compile(r"\s+(?:with|and|plus|\+)\s+(?:[a-z-]+\s+){0,2}biops(?:y|ies)$")


def _surgeries(norm: str) -> list[Mention]:
    s = _surg()
    dates = _dates(norm)
    label = re.compile(_spec()["dates"]["surgery_label"])
    result = re.compile(_spec()["surgery"]["en_result_before"])
    not_before = re.compile(_spec()["surgery"]["not_before"])
    labelled = [d for d in dates if d[2] and label.search(norm[max(0, d[0] - 25) : d[0]])]
    out: list[Mention] = []
    for a, chain_end in _chain(norm, _surgery_pieces(norm)):
        b = _zh_tail(norm, a, chain_end)
        name = norm[a:b]
        if _STATE_ONLY.fullmatch(name):
            continue
        zh = bool(_HAN.search(name))
        # the clause after the name ends at a Chinese full stop too ("…清扫术。术后…引流")
        after = re.split(r"[,.;(。，；]", norm[b : b + 20])[0]
        # "wedge resection … with pleural biopsy": the biopsy is part of the operation
        head = _WITH_BIOPSY.sub("", name)
        if (s.zh_exclude if zh else s.en_exclude).search(head + " " + after):
            continue
        if not_before.search(norm[max(0, a - 25) : a]):
            continue  # "(converted from VATS ...)" names the abandoned approach
        if _planned(norm, a, b) or result.search(norm, norm.rfind("\n", 0, a) + 1, a):
            continue  # "Post-op MRI: gross total resection" reports a result
        negated, uncertain = _status(norm, a, b)
        if negated or uncertain or _family(norm, a):
            continue
        iso, date_span = _date_for(norm, a, b, dates)
        if date_span is None and out and _SAME_DAY.search(norm[max(0, a - 14) : a]):
            # "同日急诊行开胸探查止血术": a re-operation dated by the one before it
            iso, date_span = out[-1].value["date"], out[-1].value["date_span"]
        if date_span is None and labelled:  # "手术日期: 2023-08-03" on its own line
            near = min(labelled, key=lambda d: abs(d[0] - a))
            if abs(near[0] - a) <= 300:
                iso, date_span = near[2], (near[0], near[1])
        out.append(Mention("surgery", a, b, {"date": iso, "date_span": date_span}, context=False))
    return out


_SAME_DAY = re.compile(r"同日|当日|当天|同一天|\b(?:on )?the same day\b|\blater that day\b")
_ZH_TAIL = re.compile(r"\+([\u4e00-\u9fff]{2,14}术)")


def _zh_tail(norm: str, a: int, b: int) -> int:
    """ "…修补术+带蒂肋间肌瓣覆盖术": a further "+…术" step of a Chinese operation whose
    word is not in the vocabulary is part of the same procedure, unless it is itself
    no surgery (drainage, biopsy)."""
    if not _HAN.search(norm[a:b]):
        return b
    m = _ZH_TAIL.match(norm, b)
    while m and not _surg().zh_exclude.search(m.group(1)):
        b = m.end()
        m = _ZH_TAIL.match(norm, b)
    return b


def _planned(norm: str, a: int, b: int) -> bool:
    """Whether the treatment at norm[a:b] is planned, advised or refused, not done:
    a plan word in the same phrase before it, or right after it ("is planned")."""
    c_start, c_end = _clause(norm, a, b)
    before = norm[max(c_start, _phrase_start(norm, a, c_start) - 8) : a]
    seg_end = norm.find(",", b, c_end)
    after = norm[b : seg_end if seg_end >= 0 else c_end][:40]
    plan = _cues()["plan"]
    return bool(plan.search(before) or _PLAN_AFTER.search(after))


_PLAN_AFTER = re.compile(
    r"\b(?:is|are|was|were) (?:planned|recommended|proposed|scheduled|declined|refused|deferred)"
    r"|\bwill be\b|\bto (?:be )?discuss(?:ed)?\b|待|拟|建议|计划"
    # "lobectomy deferred because of limited PFTs": put off, not done
    r"|^\s*(?:deferred|postponed|cancel+ed|abandoned|not (?:performed|done))\b"
)


_EVENT = re.compile(
    r"化疗|放疗|周期|入院|出院|活检|穿刺|诊断|确诊|复查|就诊|发现|chemo|radiotherapy|cycle|"
    r"admitted|discharged|biopsy|diagnosed|presented|follow"
)


@lru_cache(maxsize=1)
def _date_cues() -> tuple[re.Pattern[str], re.Pattern[str]]:
    spec = _spec()["dates"]
    return re.compile(spec["not_surgery_before"]), re.compile(spec["surgery_verb"])


def _other_event_date(norm: str, d: tuple[int, int, str | None], a: int) -> bool:
    """ "admitted on 2023-02-01 for lobectomy": the date is the admission's."""
    before, verb = _date_cues()
    if not before.search(norm[max(0, d[0] - 16) : d[0]]):
        return False
    return not (d[1] <= a and verb.search(norm[d[1] : a]))


_DATE_AFTER = re.compile(
    # "CABG x3 (LIMA-LAD, SVG-OM) on 15 June 2019": a count and an aside may come between
    r"(?:\s*x\s*\d)?(?:\s*\([^()\n]{0,60}\))?"
    r"[\s,(:-]*(?:(?:was |were )?(?:performed|done|carried out)\s+)?(?:on|in|dated|at)?[\s(]*"
)


def _after_operation(norm: str, d: tuple[int, int, str | None], floor: int) -> bool:
    """ "hysterectomy 1998 left breast lumpectomy 07/22/2015": a date written right
    after another operation's name is that operation's."""
    lead = norm[max(floor, d[0] - 40) : d[0]].rstrip(" ,(")
    return any(t.end() == len(lead) for t in _surg().en_terms.finditer(lead))


def _date_for(
    norm: str, a: int, b: int, dates: list[tuple[int, int, str | None]]
) -> tuple[str | None, tuple[int, int] | None]:
    c_start, c_end = _clause(norm, a, b)
    # a comma inside a date ("May 16, 2023") does not end the operation's phrase
    commas = [
        i
        for i in range(c_start, c_end)
        if norm[i] == "," and not any(d[0] <= i < d[1] for d in dates)
    ]
    seg_start = max([c_start] + [i + 1 for i in commas if i < a])
    seg_end = min([i for i in commas if i >= b] + [c_end])
    inside = [d for d in dates if seg_start <= d[0] and d[1] <= seg_end]
    if not inside:
        before = [d for d in dates if c_start <= d[0] and d[1] <= a]
        if before:
            d = before[-1]
            if not _EVENT.search(norm[d[1] : a]) and not _surg().zh_terms.search(norm[d[1] : a]):
                inside = [d]
    if not inside:
        after = [d for d in dates if b <= d[0] < c_end]
        if after and _DATE_AFTER.fullmatch(norm[b : after[0][0]]):
            inside = [after[0]]
    inside = [d for d in inside if not _other_event_date(norm, d, a)]
    inside = [d for d in inside if not (d[1] <= a and _after_operation(norm, d, c_start))]
    if not inside:
        return None, None
    # the date written right after the name ("hysterectomy 1998"), then a full date
    # before a partial one ("Admission #1 (May 2023): lobectomy on May 16, 2023")
    best = min(
        inside,
        key=lambda d: (
            not (d[0] >= b and _DATE_AFTER.fullmatch(norm[b : d[0]])),
            d[2] is None,
            min(abs(d[1] - a), abs(d[0] - b)),
        ),
    )
    return best[2], (best[0], best[1])


# ---------------------------------------------------------------- chemotherapy


@dataclass(frozen=True)
class _Chemo:
    names: re.Pattern[str]
    cased: re.Pattern[str]
    drug: dict[str, list[str]]
    regimen: re.Pattern[str]
    regimens: dict[str, list[str]]
    breast_regimens: dict[str, list[str]]
    breast: re.Pattern[str]
    context_after: re.Pattern[str]
    context_before: re.Pattern[str]
    gap_zh: re.Pattern[str]
    gap_en: re.Pattern[str]
    join: re.Pattern[str]
    classes: dict[str, str]


@lru_cache(maxsize=1)
def _chemo() -> _Chemo:
    s = _spec()["drugs"]
    cased = set(s["case_sensitive"])
    lower = {k: v for k, v in s["names"].items() if k not in {c.lower() for c in cased}}
    drug = {k: v for k, v in s["names"].items()}
    for c in cased:
        drug[c] = s["names"][c.lower()]
    classes = {v[0]: v[1] for v in s["names"].values()}
    return _Chemo(
        names=re.compile(_alt(list(lower))),
        cased=re.compile(
            r"(?<![A-Za-z0-9])(?:" + _alt(list(cased), bound=False) + r")(?![A-Za-z0-9])"
        ),
        drug=drug,
        regimen=re.compile(
            r"(?<![A-Za-z0-9-])(?:" + _alt(list(s["regimens"]), bound=False) + r")(?![A-Za-z0-9-])"
        ),
        regimens=s["regimens"],
        breast_regimens=s["breast_regimens"],
        breast=re.compile(s["breast_words"]),
        context_after=re.compile(s["regimen_context"]),
        context_before=re.compile(s["regimen_before"]),
        gap_zh=re.compile(s["gap_zh"]),
        gap_en=re.compile(s["gap_en"]),
        join=re.compile(s["join_after_course"]),
        classes=classes,
    )


def _drug_items(text: str, norm: str) -> list[tuple[int, int, tuple[str, ...], bool]]:
    """(start, end, drugs, is_abbreviation) for every drug or regimen-abbreviation name.
    Short abbreviations ("TP", "EC") count only as regimens: upper case, next to
    "方案", "regimen", "x4", "cycles of", "予"."""
    c = _chemo()
    folded = _fold(text)
    items: list[tuple[int, int, tuple[str, ...], bool]] = []
    for m in c.names.finditer(norm):
        items.append((m.start(), m.end(), (c.drug[m.group(0)][0],), False))
    for m in c.cased.finditer(folded):
        items.append((m.start(), m.end(), (c.drug[m.group(0)][0],), False))
    breast = bool(c.breast.search(norm))
    for m in c.regimen.finditer(folded):
        abbr = m.group(0)
        if len(abbr) <= 3 and not (
            c.context_after.match(norm, m.end())
            or c.context_before.search(norm[max(0, m.start() - 12) : m.start()])
        ):
            continue
        drugs = (c.breast_regimens if breast and abbr in c.breast_regimens else c.regimens)[abbr]
        items.append((m.start(), m.end(), tuple(drugs), True))
    items.sort(key=lambda i: (i[0], -(i[1] - i[0])))
    kept: list[tuple[int, int, tuple[str, ...], bool]] = []
    for it in items:
        if kept and it[0] < kept[-1][1]:
            continue
        kept.append(it)
    return kept


_SPELLED_OUT = re.compile(
    r"\s*(?:方案|regimen)?[\"'“”]?\s*(?:化疗|chemotherapy)?"
    r"\s*(?:第\s*\d+\s*(?:个)?(?:周期|程|疗程)|cycle\s*\d+)?\s*[(:]"
)


_ABBREVIATION = re.compile(r"[a-z]{2,4}\d{0,2}")
_CHEMO_CONTEXT = re.compile(
    r"化疗|方案|周期|疗程|单药|维持|静滴|输注|mg|auc|chemo|cycles?\b|regimen|maintenance|"
    r"monotherapy|single agent|infusion|\bdoses?\b|\bq\d+w\b|\bc\d+d\d+|\bd1\b|x\s*\d\b|"
    r"\+|/(?:\s*)(?:"
    + "cisplatin|carboplatin|pemetrexed|paclitaxel|docetaxel|gemcitabine|etoposide"
    + r")"
)


def _regimens(text: str, norm: str) -> list[Mention]:
    c = _chemo()
    groups: list[list[tuple[int, int, tuple[str, ...], bool]]] = []
    for it in _drug_items(text, norm):
        if groups:
            last = groups[-1][-1]
            gap = norm[last[1] : it[0]]
            spelled = _SPELLED_OUT.match(gap) if last[3] else None
            joined = bool(c.gap_zh.match(gap) or c.gap_en.match(gap) or c.join.match(gap))
            joined = joined or bool(spelled and not gap[spelled.end() :].strip())
            if len(gap) <= 40 and joined:
                if spelled:
                    # "PC方案(培美曲塞+卡铂)": the written drugs say it; keep the span
                    groups[-1][-1] = (last[0], last[1], (), True)
                groups[-1].append(it)
                continue
        groups.append([it])
    out = []
    for g in groups:
        written = [it for it in g if not it[3]]
        use = written if len(written) >= 2 else g  # "培美曲塞+顺铂(PC方案)": drugs say it
        drugs = list(dict.fromkeys(d for it in use for d in it[2]))
        if not any(c.classes.get(d) == "cytotoxic" for d in drugs):
            continue
        a, b = g[0][0], g[-1][1]
        c_start, c_end = _clause(norm, a, b)
        if all(
            _ABBREVIATION.fullmatch(norm[it[0] : it[1]]) for it in g
        ) and not _CHEMO_CONTEXT.search(norm, max(c_start, a - 40), min(c_end, b + 40)):
            continue  # "CBP/LRFT" at follow-up: blood tests, no carboplatin
        if _planned(norm, a, b):
            continue
        negated, _ = _status(norm, a, b)
        if negated:
            continue
        out.append(Mention("regimen", a, b, tuple(drugs), context=False))
    return out


# ---------------------------------------------------------------- smoking


@lru_cache(maxsize=1)
def _smoke() -> dict[str, re.Pattern[str]]:
    s = _spec()["smoking"]
    return {k: re.compile(s[k]) for k in ("ignore", "current", "former", "ever", "never")}


_SMOKE_ORDER = ("ignore", "current", "never", "former", "ever")


def _smoking(norm: str) -> list[Mention]:
    pats = _smoke()
    masked = norm
    out = []
    for key in _SMOKE_ORDER:
        for m in pats[key].finditer(masked):
            masked = masked[: m.start()] + "\0" * (m.end() - m.start()) + masked[m.end() :]
            if key != "ignore" and not _family(norm, m.start()):
                out.append(Mention("smoking", m.start(), m.end(), key, context=False))
    return out


def _smoking_status(mentions: list[Mention]) -> tuple[str | None, list[Mention]]:
    by = {k: [m for m in mentions if m.value == k] for k in ("current", "former", "ever", "never")}
    if by["current"]:
        return "current", by["current"] + by["ever"]
    if by["former"]:
        return "former", by["former"] + by["ever"]
    if by["ever"]:
        return "current", by["ever"]
    if by["never"]:
        return "never", by["never"]
    return None, []


# ---------------------------------------------------------------- contract


@lru_cache(maxsize=1)
def _traditional() -> dict[int, str]:
    return str.maketrans(_spec()["traditional"]["map"])


def find(text: str, norm: str, lang: str, secs: list[Section]) -> list[Mention]:
    """Every diagnosis, operation, regimen and smoking statement in the summary."""
    norm = norm.translate(_traditional())  # "出院診斷" reads as "出院诊断"; one for one
    return _diagnoses(text, norm) + _surgeries(norm) + _regimens(text, norm) + _smoking(norm)


_LOBE_ABBR = {"rul": "right upper", "rml": "right middle", "rll": "right lower"}
_LOBE_ABBR |= {"lul": "left upper", "lll": "left lower"}


def _core(name: str) -> str:
    """A name reduced for comparison: "VATS RML lobectomy" is "VATS right middle lobectomy"."""
    name = re.sub(r"\b(rul|rml|rll|lul|lll)\b", lambda m: _LOBE_ABBR[m.group(1)], name.casefold())
    return re.sub(r"\s+|术", "", name)


def assemble(
    mentions: list[Mention], text: str, norm: str, lang: str, secs: list[Section]
) -> Extraction:
    ex = Extraction.empty(FIELDS)
    norm = norm.translate(_traditional())
    dx = [m for m in mentions if m.label in ("dx", "dx_code")]
    # the summary's own diagnosis list, not symptoms or history in the narrative; the
    # discharge list replaces the admission (working) list
    lists = _dx_lists(norm, secs)
    for i, spans in enumerate(lists):
        listed = [m for m in dx if any(a <= m.start < b for a, b in spans)]
        if listed:
            # an unspecified code gives way to the same category made specific in
            # another list ("左乳腺癌" at discharge, "外上象限" on admission)
            other = [m for m in dx if any(a <= m.start < b for s in lists[i + 1 :] for a, b in s)]
            dx = listed + [m for m in other if _refines(m, listed)]
            break
    surgery = [m for m in mentions if m.label == "surgery"]
    _put_diagnoses(ex, dx + _orphans_by_surgery(mentions, dx, surgery, norm))
    _put_procedures(ex, [m for m in mentions if m.label == "surgery"], text)
    _put_regimens(ex, [m for m in mentions if m.label == "regimen"])
    status, cited = _smoking_status([m for m in mentions if m.label == "smoking"])
    for m in cited:
        ex.put("smoking", status, m.start, m.end)
    if status is None:
        _smoking_by_classifier(ex, norm, lang)
    return ex


def _refines(m: Mention, listed: list[Mention]) -> bool:
    code = str(m.value)
    if "." not in code or code.endswith(".9"):
        return False
    return any(str(x.value) == code.split(".", maxsplit=1)[0] + ".9" for x in listed)


_LABEL = re.compile(
    # a Chinese section number may lead the label ("三、病史摘要：")
    r"^[ \t#*-]*(?:[一二三四五六七八九十]{1,3}\s*[、.,]\s*)?"
    r"(?:\[([^\]\n]{1,16})\]|([a-z\u4e00-\u9fff][a-z\u4e00-\u9fff /&'-]{0,44}?)\s*:)",
    re.M,
)
# a heading alone on its line, no colon (dictated "Discharge diagnoses")
_BARE = re.compile(r"^[ \t#*-]*([a-z\u4e00-\u9fff][a-z\u4e00-\u9fff /&'-]{0,44}?)[ \t]*$", re.M)
# a blank line not followed by another item ("2. ...", "- ...", "②") ends a list
_BLANK = re.compile(r"\n[ \t]*\n(?![ \t\n]*(?:\d{1,2}\s*[.)、]?\s|[-*•·]|[\u2460-\u2473]))")


def _dx_lists(norm: str, secs: list[Section]) -> tuple[list[tuple[int, int]], ...]:
    """Spans of the discharge and of the admission diagnosis lists. A list opens at
    its heading and runs to the next heading of any kind: a sections.json heading, a
    bracketed heading ("【入院情况】") or a line opening with a label ("Operation:")."""
    spec = _spec()["dx_lists"]
    words = {"discharge": set(spec["discharge"]), "admission": set(spec["admission"])}
    canon = {"discharge_diagnosis": "discharge", "impression": "discharge"}
    canon["admission_diagnosis"] = "admission"
    heads: list[tuple[int, int, str | None]] = [
        (s.start, s.end, canon.get(s.name)) for s in secs if s.name != "body"
    ]
    for m in _LABEL.finditer(norm):
        label = " ".join((m.group(1) or m.group(2)).split())
        kind = next((k for k, w in words.items() if label in w), None)
        heads.append((m.end(), m.end(), kind))
    for m in _BARE.finditer(norm):
        label = " ".join(m.group(1).split())
        kind = next((k for k, w in words.items() if label in w), None)
        if kind:
            heads.append((m.end(), m.end(), kind))
    bounds = sorted({s.end for s in secs} | {m.start() for m in _LABEL.finditer(norm)})
    out: dict[str, list[tuple[int, int]]] = {"discharge": [], "admission": []}
    for start, sec_end, kind in heads:
        if kind is None:
            continue
        end = min([b for b in bounds if b >= start] + [sec_end if sec_end > start else len(norm)])
        # a blank line after the items ends the list too (dictated summaries run on
        # into "History of present illness ..." with no colon)
        first = re.search(r"\S", norm[start:end])
        blank = _BLANK.search(norm, start + first.start()) if first else None
        if blank and blank.start() < end:
            end = blank.start()
        out[kind].append((start, end))
    return out["discharge"], out["admission"]


_TOBACCO = re.compile(r"烟|smok|tobacco|cigar|pack-?year|ppd")
_SENTENCE = re.compile(r"[^。;\n.]+")
CLASSIFIER_MIN_P = 0.7  # cross-validated accuracy 0.98 at or above it (training/README.md)


def _smoking_by_classifier(ex: Extraction, norm: str, lang: str) -> None:
    """Where no rule reads a status but sentences talk about tobacco, the trained
    classifier (`classify.py`) reads each one; kept only when it is sure, the
    gravest status wins as in the rules, and its probability caps the confidence."""
    from edge_node.structure.classify import classify

    found: list[tuple[str, float, int, int]] = []
    for m in _SENTENCE.finditer(norm):
        if _TOBACCO.search(m.group()) and not _family(norm, m.start()):
            label, p = classify("smoking", m.group(), lang)
            if label is not None and p >= CLASSIFIER_MIN_P:
                found.append((label, p, m.start(), m.end()))
    for status in ("current", "former", "never"):
        hits = [f for f in found if f[0] == status]
        if hits:
            least = round(min(h[1] for h in hits), 3)
            for _, _, a, b in hits:
                ex.put("smoking", status, a, b, confidence=least)
            return


_PRIMARY = re.compile(r"C(?:[0-6]\d|7[0-6])")
_LUNG_OPERATION = re.compile(r"肺|叶|lobe|lobectomy|pneumonectomy|segmentectomy|lung")


def _orphan_code(name: str) -> str | None:
    """The lung code an operation's name implies ("VATS left lower lobectomy")."""
    if not _LUNG_OPERATION.search(name):
        return None
    return _lung_code(name.replace("lobectomy", "lobe"))


def _orphans_by_surgery(
    mentions: list[Mention], dx: list[Mention], surgery: list[Mention], norm: str
) -> list[Mention]:
    """A cancer named without its organ ("Path: adenocarcinoma, pT2aN0") belongs to
    the lung operation named before it, when the summary names no primary cancer."""
    if any(_PRIMARY.match(str(m.value)) and not m.negated and not m.uncertain for m in dx):
        return []
    out = []
    for m in mentions:
        if m.label != "dx_orphan" or any(x for x in _status(norm, m.start, m.end)):
            continue
        before = [op for op in surgery if op.end <= m.start]
        code = _orphan_code(norm[before[-1].start : before[-1].end]) if before else None
        if code:
            out.append(Mention("dx", m.start, m.end, code, context=False))
    return out


def _put_diagnoses(ex: Extraction, mentions: list[Mention]) -> None:
    kept = [m for m in sorted(mentions, key=lambda m: m.start) if not m.negated]
    kept = [m for m in kept if not m.uncertain]
    codes = list(dict.fromkeys(str(m.value) for m in kept))
    specific = {c.split(".")[0] for c in codes if "." in c and not c.endswith(".9")}
    codes = [c for c in codes if not (c.endswith(".9") and c.split(".")[0] in specific)]
    subsumed: dict[str, list[str]] = _spec()["subsumed"]
    present = set(codes) | {c.split(".")[0] for c in codes}
    codes = [c for c in codes if not set(subsumed.get(c, [])) & present]
    cited = [m for m in kept if m.value in codes]
    if not cited:
        return
    ex.put("diagnosis_icd10", codes, cited[0].start, cited[0].end)
    for m in cited:
        ex.cite("diagnosis_icd10", m.start, m.end)


def _put_procedures(ex: Extraction, mentions: list[Mention], text: str) -> None:
    merged: list[tuple[Mention, str, str | None, list[Mention]]] = []
    for m in sorted(mentions, key=lambda m: m.start):
        name = " ".join(text[m.start : m.end].split())
        date = m.value["date"]
        for i, (first, old_name, old_date, group) in enumerate(merged):
            a, b = _core(old_name), _core(name)
            if (a in b or b in a) and (old_date is None or date is None or old_date == date):
                # the name as first written (held-out convention 18), unless only a
                # later mention dates it ("admitted for lobectomy ... underwent VATS
                # lobectomy on 2/2/2023")
                better = date is not None and old_date is None
                merged[i] = (
                    first,
                    name if better else old_name,
                    old_date or date,
                    [*group, m],
                )
                break
        else:
            merged.append((m, name, date, [m]))
    if not merged:
        return
    value = [{"name": name, "date": date} for _, name, date, _ in merged]
    ex.put("procedures", value, merged[0][0].start, merged[0][0].end)
    for _, _, _, group in merged:
        for m in group:
            ex.cite("procedures", m.start, m.end)
            if m.value["date_span"] and m.value["date"]:
                ex.cite("procedures", *m.value["date_span"])


def _put_regimens(ex: Extraction, mentions: list[Mention]) -> None:
    seen: dict[frozenset[str], str] = {}
    for m in mentions:
        seen.setdefault(frozenset(m.value), "+".join(m.value))
    if not seen:
        return
    ex.put("chemotherapy_regimens", list(seen.values()), mentions[0].start, mentions[0].end)
    for m in mentions:
        ex.cite("chemotherapy_regimens", m.start, m.end)
