"""The safe-list pass: flag what is not known to be safe.

The other detectors find what looks like an identifier; rules written from
examples miss the identifier nobody wrote an example of. This pass works the
other way round, on English capitalised words: a capitalised word that is not an
English dictionary word (`data/english_words.txt.gz`, all-lower-case entries of
a public-domain dictionary, so proper nouns are not in it), not one of our common
or clinical words, and not shaped like a drug name is a possible name or place.
Its hits are weak: the clinical keep-list (`pipeline.keep_filter`) drops any that
touches a drug, marker, eponym or staging term.
"""

from __future__ import annotations

import bisect
import gzip
import re
from collections.abc import Iterator
from functools import lru_cache

from edge_node.deid_text.lexicon import DATA_DIR, _rows, lexicon
from edge_node.deid_text.rules import LO, UP, Hit, caps_runs

# A capitalised word ("Okonkwo", "O'Brien", "Håkonsen-Lie").
_WORD = rf"[{UP}][{LO}]+(?:['’-][{UP}]?[{LO}]+)*"
_CAPS_WORD = re.compile(rf"(?<![\w'’-]){_WORD}(?![\w-])")
# Generic drug, gene-product and chemistry word endings: unknown but clinical.
_CLINICAL_SHAPE = re.compile(
    r"(?:mab|nib|lib|zumab|ximab|platin|taxel|rubicin|mycin|cillin|micin|stine|"
    r"tecan|citabine|trexate|mide|amide|azole|prazole|olol|pril|sartan|statin|"
    r"parin|oxacin|cycline|vir|afil|setron|sone|olone|asone|phene|phen|profen|"
    r"done|pam|lam|zepam|tide|relin|lukin|kin|ase|ine|ate|ol|gen|oma|itis|osis|"
    r"ectomy|otomy|plasty|scopy|gram|graphy|emia|aemia|uria|pathy|algia|cele|"
    r"trophy|plasia|cyte|cytes|blast|blasts)$"
)
# Capitalised words that open a label or a heading are mostly clinical words.
_ORG_AFTER = re.compile(
    r"[ \t]+(?:Ltd|Limited|Inc|LLC|plc|Corp|Company|Group|School|Academy|College|"
    r"University|Bank|Factory|Works|Council|Trust|Club|Church|Mill|Farm|Hotel)\b"
)
# A hospital, hospice or clinic name (the treating hospital and its wards are not PHI).
_CARE_AFTER = re.compile(
    r"(?:['’]s)?(?:[ \t]+[A-Z][a-z]+){0,3}[ \t]+(?:Hospital|Hospice|Infirmary|Clinic|Centre|"
    r"Center|Institute|Ward|Unit|Medical|Cancer|Health|Oncology)\b"
)
# A product, assay or marker name with its value, version or stain result: "Claudin
# 18.2", "Oncotype DX", "Desmin (+)".
_VALUE_AFTER = re.compile(
    r"(?:[ \t]+[A-Z])?[ \t]*[(（][+\-±]"
    r"|[ \t]+(?:\d+\.\d|\d+(?:[ \t]*(?:%|mg|g|ml|mL|kcal|IU)\b)|(?:DX|Dx|CDx|RS)\b)"
)
_PLACE_BEFORE = re.compile(r"(?:\b(?:in|at|near|from|to|of|lives|moved|born)[ \t]+)$")


@lru_cache(maxsize=1)
def listed_safe() -> frozenset[str]:
    """`data/english_safe.csv`: words written for this pass (departments, assays,
    weekdays, languages, countries and provinces); they win over the name lists."""
    return frozenset(r["word"] for r in _rows("english_safe.csv"))


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """Lower-case English dictionary words, our common-word list and clinical terms."""
    with gzip.open(DATA_DIR / "english_words.txt.gz", "rt", encoding="utf-8") as fh:
        words = {w.strip() for w in fh if w.strip() and not w.startswith("#")}
    lex = lexicon()
    words |= {w.lower() for w in lex.english_common}
    words |= set(lex.clinical_lower)
    # Words written for this pass: department short forms, assays, weekdays, languages.
    words |= {w.lower() for w in listed_safe()}
    return frozenset(words)


_ENDINGS = (
    ("'s", ""), ("’s", ""), ("s", ""), ("es", ""), ("ies", "y"), ("ed", ""), ("ed", "e"),
    ("ing", ""), ("ing", "e"),
)  # fmt: skip
# Prefixes a clinical compound may carry ("Immunostains", "Chemoradiation", "Peritumoral").
_PREFIXES = (
    "re", "un", "pre", "post", "non", "anti", "sub", "co", "de", "over", "under", "immuno",
    "chemo", "radio", "histo", "cyto", "hepato", "nephro", "neuro", "cardio", "gastro", "onco",
    "haemato", "hemato", "lympho", "myelo", "osteo", "thoraco", "laparo", "endo", "peri",
    "intra", "extra", "trans", "hyper", "hypo", "micro", "macro", "multi", "neo", "para", "poly",
    "pseudo", "semi", "infra", "supra", "inter", "retro", "mono", "bi", "tri",
)  # fmt: skip


def _variants(low: str) -> Iterator[str]:
    """The word, its base forms and its American spelling (the dictionary's)."""
    yield low
    for end, base in _ENDINGS:
        if low.endswith(end) and len(low) - len(end) >= 3:
            yield low[: len(low) - len(end)] + base
    for pre in _PREFIXES:
        # a short prefix needs a long rest: "Restaging" is a word, "Delores" a name
        if low.startswith(pre) and len(low) - len(pre) >= (6 if len(pre) <= 3 else 4):
            yield from _variants(low[len(pre) :])
    for end in ("ing", "ed"):  # "referring", "planned": a doubled last consonant
        stem = low[: -len(end)]
        if low.endswith(end) and len(stem) >= 4 and stem[-1] == stem[-2]:
            yield stem[:-1]
    us = low.replace("our", "or").replace("ae", "e").replace("oe", "e")
    us = us.replace("ise", "ize").replace("tre", "ter").replace("isation", "ization")
    if us != low:
        yield us


@lru_cache(maxsize=65536)
def dictionary_word(word: str) -> bool:
    """True for a dictionary, common or clinical word or one of its inflections (no
    shape guess: "Marisol" ends like a drug but is no word)."""
    words = english_words()
    return any(v in words for v in _variants(word.lower()))


@lru_cache(maxsize=65536)
def safe_word(word: str) -> bool:
    """True for a dictionary, common or clinical word, or a drug-shaped one."""
    words = english_words()
    low = word.lower()
    parts = re.split(r"['’-]", low)
    if any(v in words for v in _variants(low)):
        return True
    if len(parts) > 1 and all(not p or any(v in words for v in _variants(p)) for p in parts):
        return True
    return len(low) >= 5 and _CLINICAL_SHAPE.search(low) is not None


_ROMAN = re.compile(r"(?:I{1,3}|IV|V|VI{1,3}|IX|X)[A-Ca-c]?\d?")


@lru_cache(maxsize=65536)
def unsafe(word: str) -> bool:
    """A capitalised word that may be a name or a place (see the module docstring)."""
    lex = lexicon()
    if word in listed_safe() or _ROMAN.fullmatch(word):
        return False  # "IIIA", "IVB": a stage in Roman numerals
    # Pinyin surnames ("Wang", "Li") are in the dictionary as rare words; flag them anyway.
    if word in lex.pinyin_surnames and word not in lex.english_common:
        return True
    # three letters or fewer: an abbreviation unless a known name ("Wu", "Ann")
    return (len(word) > 3 or word in lex.names_en) and not safe_word(word)


@lru_cache(maxsize=65536)
def unsafe_in_run(run: str) -> tuple[tuple[int, int], ...]:
    """Offsets of the unsafe words in a run of capitalised words, neighbours joined."""
    out: list[tuple[int, int]] = []
    for m in _CAPS_WORD.finditer(run):
        if unsafe(m.group()):
            s, e = m.span()
            if out and s - out[-1][1] == 1:
                out[-1] = (out[-1][0], e)
            else:
                out.append((s, e))
    return tuple(out)


def en_unknown(text: str) -> list[Hit]:
    """Capitalised words not known to be safe; neighbours one space apart are one hit."""
    spans: list[list[int]] = []
    for base, run in caps_runs(text):  # the runs names() scanned for, shared
        for rs, re_ in unsafe_in_run(run):
            s, e = base + rs, base + re_
            if spans and 0 < s - spans[-1][1] <= 1 and text[s - 1] in " \t":
                spans[-1][1] = e
            else:
                spans.append([s, e])
    hits: list[Hit] = []
    for start, end in spans:
        if _CARE_AFTER.match(text, end) or _VALUE_AFTER.match(text, end):
            continue
        kind = "NAME"
        if _ORG_AFTER.match(text, end):
            kind = "ORGANIZATION"
        elif _PLACE_BEFORE.search(text, max(0, start - 8), start):
            kind = "ADDRESS"
        hits.append(Hit(start, end, kind, False))
    return hits


# A token mixing letters and digits, with three digits or more: a code of some kind
# ("AB1234X", "RCC-LUNG-0931") unless it is a clinical value (below).
_CODE_TOKEN = r"(?=(?:[\w\-]*?\d){3})(?=[\w\-]*[A-Za-z])[A-Za-z0-9][A-Za-z0-9\-_]{3,}(?![\w])"
_CODE = re.compile(r"(?<![\w\-./])" + _CODE_TOKEN, re.ASCII)
# The same found from the character before the token (no word character, "-", "." or
# "/"): the scan skips the letters and digits of every word instead of trying each.
_CODE_AFTER = re.compile(rf"[^\w\-./]({_CODE_TOKEN})", re.ASCII)


def code_spans(text: str) -> list[tuple[int, int]]:
    """The spans of `_CODE.finditer(text)`: a token at the very start, then each found
    from the character before it (a token ends before a character that cannot start
    the next one, so each search goes on from the last token's end)."""
    out: list[tuple[int, int]] = []
    first = _CODE.match(text)
    if first is not None:
        out.append(first.span())
    m = _CODE_AFTER.search(text, first.end() if first is not None else 0)
    while m is not None:
        out.append(m.span(1))
        m = _CODE_AFTER.search(text, m.end())
    return out


_ANY_DIGIT = re.compile(r"\d", re.ASCII)
_ANY_LETTER = re.compile(r"[A-Za-z]")
_CLINICAL_VALUE = re.compile(
    # number and unit: "5000mg", "6000cGy", "486ms"
    r"\d+(?:\.\d+)?(?i:mg|ml|mm|cm|gy|cgy|kg|g|mmol|umol|iu|u|ng|pg|mcg|ug|h|hr|hrs|min|ms|s|d|"
    r"wk|wks|mo|y|yr|yrs|x|k|kcal|mmhg|l|ul|nm|kb|mb|bp)"
    # gene variants: "L858R", "E746_A750del", "exon19del", "c.2573T"
    r"|(?i:[A-Z]\d+(?:_[A-Z]\d+)?(?:[A-Z]|del|ins|dup|fs)\w*|exon\d+\w*|c\.\d+\w*)"
    # markers and antibody clones: "CA125", "CA19-9", "CYFRA21-1", "D2-40", "22C3", "SP263"
    r"|(?i:ca|cyfra|cd|ck|d2|sp|her|ki|brca|pd|ctla)-?\d+(?:-\d+)?|\d{2}C\d"
    # staging, any prefix and suffix: "pT1miN0M0", "ycT2bN1", "rT3"
    r"|(?:[acpry]{0,3})T(?:is|x|\d[a-d]?(?:mi|\(m\))?)(?:N(?:x|\d[a-c]?))?(?:M(?:x|\d[a-d]?))?"
    # courses and days: "d1-14", "C1D1"
    r"|(?i:d\d+-\d+|c\d+d\d+)"
)


_MORPHOLOGY = re.compile(r"M\d{4}")


_DRUG_DOSE = re.compile(r"(.*?[A-Za-z])\d+(?:\.\d+)?(?:mg|g|mcg|ug|ml|mL|IU|iu|U|mmol|Gy|cGy)")


def codes(text: str) -> list[Hit]:
    """Letter-and-digit tokens with three digits or more that are no clinical value."""
    from edge_node.deid_text.rules import TNM

    # (two plain searches: a letter-then-digit pattern backtracks over long runs of
    # letters and hyphens, quadratic in the length of the run)
    if _ANY_DIGIT.search(text) is None or _ANY_LETTER.search(text) is None:
        return []
    out: list[Hit] = []
    for s, e in code_spans(text):
        v = text[s:e]
        if _CLINICAL_VALUE.fullmatch(v) or TNM.fullmatch(v):
            continue
        dose = _DRUG_DOSE.fullmatch(v)
        if dose and dose.group(1).lower() in lexicon().clinical_lower:
            continue  # a drug glued to its dose: "5-FU2400mg"
        if _MORPHOLOGY.fullmatch(v) and text.startswith("/", e):
            continue  # an ICD-O morphology code before its behaviour digit: "M8070/3"
        out.append(Hit(s, e, "OTHER", False))
    return out


# Chinese places below province level, by their suffix: two units or more in a row
# ("宁夏回族自治区银川市兴庆区") are an address; one town, county or village unit too,
# unless a hospital is named after it ("东江市第一人民医院" is the treating hospital).
_ZH_UNIT = r"[\u4e00-\u9fff]{1,6}?(?:自治区|自治州|特别行政区|省|市|区|县|镇|乡|村|街道|旗|盟)"
_ZH_CHAIN = re.compile(rf"(?:{_ZH_UNIT}){{2,}}")
_ZH_ONE = re.compile(
    r"[\u4e00-\u9fff]{2,3}(?:市|县|镇|乡|村)(?![\u4e00-\u9fff]?(?:民|级|场|委|政))"
)
_ZH_HOSPITAL_AFTER = re.compile(r"[^，,。；;\n]{0,10}?(?:医院|卫生院|医学院|大学|中心)")
# A road, lane or district alone ("住人民路", "家在青禾区"), and building parts by number.
_ZH_ROAD = re.compile(
    r"[\u4e00-\u9fff]{2,4}(?:路|街|大道|大街|巷|弄|胡同)(?:[0-9一二三四五六七八九十]+号)?"
)
_ZH_DISTRICT = re.compile(r"[\u4e00-\u9fff]{2,3}区(?![\u4e00-\u9fff]?(?:域|间|别|分))")
_ZH_BUILDING = re.compile(
    r"[0-9一二三四五六七八九十]+(?:号楼|栋|幢|单元)(?:[0-9]+室)?|[0-9]{3,4}室"
)
_ZH_PLACE_GATE = re.compile(r"[市区县镇乡村旗路街巷弄栋幢室]")
_ZH_NOT_DISTRICT_END = ("自治区", "行政区", "病区", "社区")


def zh_places(text: str) -> list[Hit]:
    if _ZH_PLACE_GATE.search(text) is None:
        return []
    from edge_node.deid_text.rules import _trim_to_boundary

    out: list[Hit] = []
    for m in _ZH_CHAIN.finditer(text):
        s = _trim_to_boundary(text, m.start(), m.end(), None)
        out.append(Hit(s, m.end(), "ADDRESS", False))
    for pattern in (_ZH_ONE, _ZH_ROAD, _ZH_DISTRICT):
        for m in pattern.finditer(text):
            if _ZH_HOSPITAL_AFTER.match(text, m.end()) or m.group().endswith(_ZH_NOT_DISTRICT_END):
                continue
            s = _trim_to_boundary(text, m.start(), m.end(), None)
            if m.end() - s >= 3:
                out.append(Hit(s, m.end(), "ADDRESS", False))
    out += (Hit(m.start(), m.end(), "ADDRESS", False) for m in _ZH_BUILDING.finditer(text))
    return out


def detect(text: str, hits: list[Hit]) -> list[Hit]:
    """The safe-list hits not already inside a hit of another detector."""
    new = en_unknown(text) + codes(text)
    if not text.isascii():
        new += zh_places(text)
    if not new or not hits:
        return new
    covered = sorted((h.start, h.end) for h in hits)
    out: list[Hit] = []
    starts = [s for s, _ in covered]
    for h in new:
        k = bisect.bisect_right(starts, h.start) - 1
        if k >= 0 and covered[k][0] <= h.start and h.end <= covered[k][1]:
            continue
        out.append(h)
    return out
