"""The spaCy pipelines, one per report kind, all built on `spacy.blank`.

    onco_sections -> onco_<kind>_entities -> onco_context -> onco_<kind>_fields

`onco_sections` finds headings; the entity component runs the kind's rules (its
`find`) into `Mention`s; `onco_context` marks each mention negated, uncertain or
historical (`context.py`); the fields component (the kind's `assemble`) turns the
mentions into contract fields with evidence. Chinese is segmented by jieba
(spaCy's own `segmenter = "jieba"`), so nothing is downloaded.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from functools import cache
from typing import Any, Protocol

import spacy
from spacy.language import Language
from spacy.tokens import Doc

from edge_node.structure import calibration, context
from edge_node.structure.core import KINDS, Extraction, Mention
from edge_node.structure.text import Section, normalize, sections

VERSION = "1.0"


class KindModule(Protocol):
    FIELDS: tuple[str, ...]

    def find(self, text: str, norm: str, lang: str, secs: list[Section]) -> list[Mention]: ...

    def assemble(
        self, mentions: list[Mention], text: str, norm: str, lang: str, secs: list[Section]
    ) -> Extraction: ...


def kind_module(kind: str) -> KindModule:
    if kind == "pathology":
        from edge_node.structure import pathology as mod
    elif kind == "petct":
        from edge_node.structure import petct as mod  # type: ignore[no-redef]
    elif kind == "discharge":
        from edge_node.structure import discharge as mod  # type: ignore[no-redef]
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return mod


def _state(doc: Doc) -> dict[str, Any]:
    state: dict[str, Any] = doc.user_data.setdefault("onco_structure", {})
    if "text" not in state:
        state["text"] = doc.text
        state["norm"] = normalize(doc.text)
    return state


def _section_of(secs: list[Section], starts: list[int], pos: int) -> str:
    i = bisect.bisect_right(starts, pos) - 1  # sections are sorted and do not overlap
    if i >= 0 and secs[i].start <= pos < secs[i].end:
        return secs[i].name
    return "body"


@Language.component("onco_sections")
def sections_component(doc: Doc) -> Doc:
    state = _state(doc)
    state["sections"] = sections(state["norm"])
    return doc


@Language.component("onco_context")
def context_component(doc: Doc) -> Doc:
    state = _state(doc)
    lang = doc.lang_
    secs = state.get("sections", [])
    starts = [s.start for s in secs]
    for m in state.get("mentions", []):
        m.section = _section_of(secs, starts, m.start)
        if not m.context:
            continue
        a = context.assertion(state["norm"], m.start, m.end, lang)
        m.negated, m.uncertain, m.historical = a.negated, a.uncertain, a.historical
    return doc


def _entities_factory(kind: str) -> Callable[[Language, str], Callable[[Doc], Doc]]:
    def factory(nlp: Language, name: str) -> Callable[[Doc], Doc]:
        mod = kind_module(kind)

        def component(doc: Doc) -> Doc:
            state = _state(doc)
            state["mentions"] = mod.find(
                state["text"], state["norm"], doc.lang_, state.get("sections", [])
            )
            return doc

        return component

    return factory


def _fields_factory(kind: str) -> Callable[[Language, str], Callable[[Doc], Doc]]:
    def factory(nlp: Language, name: str) -> Callable[[Doc], Doc]:
        mod = kind_module(kind)

        def component(doc: Doc) -> Doc:
            state = _state(doc)
            ex = mod.assemble(
                state.get("mentions", []),
                state["text"],
                state["norm"],
                doc.lang_,
                state.get("sections", []),
            )
            ex.finish(len(state["text"]))
            calibration.apply(kind, ex)
            state["extraction"] = ex
            return doc

        return component

    return factory


for _kind in KINDS:
    Language.factory(f"onco_{_kind}_entities")(_entities_factory(_kind))
    Language.factory(f"onco_{_kind}_fields")(_fields_factory(_kind))


@cache
def build(kind: str, lang: str) -> Language:
    """The pipeline for one kind and language."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    if lang == "zh":
        from edge_node.deid_text.lexicon import quiet_jieba

        quiet_jieba()
        nlp = spacy.blank("zh", config={"nlp": {"tokenizer": {"segmenter": "jieba"}}})
    else:
        nlp = spacy.blank("en")
    for name in ("onco_sections", f"onco_{kind}_entities", "onco_context", f"onco_{kind}_fields"):
        nlp.add_pipe(name)
    return nlp


def extract(kind: str, text: str, lang: str) -> Extraction:
    """Contract fields for one report."""
    nlp = build(kind, lang)
    doc = nlp.make_doc(text)
    # The input text goes in with the doc: spaCy rebuilds doc.text from every token
    # on each access, an eighth of the whole run on short reports.
    doc.user_data["onco_structure"] = {"text": text, "norm": normalize(text)}
    for _, component in nlp.pipeline:
        doc = component(doc)
    ex: Extraction = doc.user_data["onco_structure"]["extraction"]
    return ex
