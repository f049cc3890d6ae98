"""The spaCy pipeline: rule components registered as `onco_deid_*` factories.

Built on `spacy.blank("en")` or `spacy.blank("zh")` with jieba segmentation, so
nothing is downloaded. Components write `Hit`s to `doc._.phi_hits`; the last one
(`onco_deid_resolve`) applies the clinical keep-list and merges overlaps into
`doc._.phi` as (start, end, type) character offsets into `doc.text`.
"""

from __future__ import annotations

import re
from functools import lru_cache

import spacy
from spacy.language import Language
from spacy.tokens import Doc

from edge_node.deid_text import rules
from edge_node.deid_text.lexicon import lexicon
from edge_node.deid_text.rules import HAN, Hit

Span3 = tuple[int, int, str]
COMPONENTS = (
    "onco_deid_patterns",
    "onco_deid_addresses",
    "onco_deid_organizations",
    "onco_deid_names",
    "onco_deid_resolve",
)

if not Doc.has_extension("phi_hits"):
    Doc.set_extension("phi_hits", default=None)
if not Doc.has_extension("phi"):
    Doc.set_extension("phi", default=None)


def _text(doc: Doc) -> str:
    """`doc.text`, built once per doc (spaCy rebuilds it from the tokens on every access)."""
    if "onco_deid_text" not in doc.user_data:
        doc.user_data["onco_deid_text"] = doc.text
    text: str = doc.user_data["onco_deid_text"]
    return text


def _hits(doc: Doc) -> list[Hit]:
    if doc._.phi_hits is None:
        doc._.phi_hits = []
    hits: list[Hit] = doc._.phi_hits
    return hits


def _boundary(doc: Doc) -> rules.Boundaries | None:
    if doc.lang_ != "zh":
        return None
    starts = {t.idx for t in doc} | {len(_text(doc))}
    return starts.__contains__


@Language.component("onco_deid_patterns")
def patterns_component(doc: Doc) -> Doc:
    _hits(doc).extend(rules.patterns(_text(doc)))
    return doc


@Language.component("onco_deid_addresses")
def addresses_component(doc: Doc) -> Doc:
    _hits(doc).extend(rules.addresses(_text(doc), _boundary(doc)))
    return doc


@Language.component("onco_deid_organizations")
def organizations_component(doc: Doc) -> Doc:
    _hits(doc).extend(rules.organizations(_text(doc), _boundary(doc)))
    return doc


def _person_tokens(text: str) -> list[tuple[int, int]]:
    """Spans jieba's part-of-speech tagger calls person names (nr, nrfg, nrt)."""
    import jieba.posseg

    out: list[tuple[int, int]] = []
    pos = 0
    for word, flag in jieba.posseg.cut(text):
        if flag.startswith("nr"):
            out.append((pos, pos + len(word)))
        pos += len(word)
    return out


@Language.component("onco_deid_names")
def names_component(doc: Doc) -> Doc:
    text = _text(doc)
    people = _person_tokens(text) if re.search(f"[{HAN}]", text) else []
    _hits(doc).extend(rules.names(text, _boundary(doc), people))
    return doc


@Language.component("onco_deid_resolve")
def resolve_component(doc: Doc) -> Doc:
    doc._.phi = resolve(_text(doc), _hits(doc))
    return doc


_FILTERABLE = frozenset({"NAME", "ADDRESS", "ORGANIZATION", "MRN", "OTHER"})


def keep_filter(text: str, hits: list[Hit]) -> list[Hit]:
    """Drop hits that would remove clinical content (drugs, markers, eponyms, TNM)."""
    lex = lexicon()
    # Clinical terms are looked for only around the hits that may be dropped: one
    # pass of the big alternation over the whole note is the slowest step otherwise.
    found: set[tuple[int, int, str]] = set()
    for h in hits:
        if h.type not in _FILTERABLE:
            continue
        lo, hi = max(0, h.start - 40), min(len(text), h.end + 40)
        for m in lex.clinical_re.finditer(text, lo, hi):
            if m.end() > h.start and m.start() < h.end:
                found.add((m.start(), m.end(), lex.clinical.get(m.group(), "clinical")))
        for m in rules.TNM.finditer(text, lo, hi):
            if m.end() > h.start and m.start() < h.end:
                found.add((m.start(), m.end(), "staging"))
    protected = list(found)
    if not protected:
        return hits
    protected.sort()
    starts = [p[0] for p in protected]
    import bisect

    out: list[Hit] = []
    for h in hits:
        i = bisect.bisect_left(starts, h.end)
        overlapping = [p for p in protected[max(0, i - 50) : i] if p[1] > h.start and p[0] < h.end]
        if not overlapping:
            out.append(h)
            continue
        if h.type not in _FILTERABLE:
            out.append(h)
            continue
        if not h.strong:
            continue
        # A strong hit is dropped only when it *is* the clinical word (or inside it):
        # "Dr. Wilson" stays a name, "主治医师" or "信迪利单抗" is not one.
        if any(p[0] <= h.start and h.end <= p[1] and p[2] != "eponym" for p in overlapping):
            continue
        if (
            any(p[0] <= h.start and h.end <= p[1] and p[2] == "eponym" for p in overlapping)
            and h.type != "NAME"
        ):
            continue
        out.append(h)
    return out


def resolve(text: str, hits: list[Hit]) -> list[Span3]:
    """Keep-list, name propagation, then overlapping hits merged into one span."""
    hits = keep_filter(text, hits)
    hits = hits + keep_filter(text, rules.propagate(text, hits))
    hits.sort(key=lambda h: (h.start, -h.end))
    merged: list[tuple[int, int, str, int]] = []
    priority = {"ID_NUMBER": 9, "PHONE": 8, "EMAIL": 8, "URL": 8, "IP": 8, "MRN": 7, "DATE": 6}
    for h in hits:
        s, e = h.start, h.end
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e <= s:
            continue
        rank = (e - s) * 10 + priority.get(h.type, 5)
        if merged and s < merged[-1][1]:
            ps, pe, pt, prank = merged[-1]
            best = (pt, prank) if prank >= rank else (h.type, rank)
            merged[-1] = (ps, max(pe, e), best[0], best[1])
        else:
            merged.append((s, e, h.type, rank))
    return [(s, e, t) for s, e, t, _ in merged]


@lru_cache(maxsize=2)
def build(lang: str) -> Language:
    """The de-identification pipeline for "en" or "zh" (blank, jieba-segmented)."""
    if lang == "zh":
        nlp = spacy.blank("zh", config={"nlp": {"tokenizer": {"segmenter": "jieba"}}})
    else:
        nlp = spacy.blank("en")
    nlp.max_length = 10**8
    for name in COMPONENTS:
        nlp.add_pipe(name)
    return nlp
