"""Note text into the CDM, scrubbed by the free-text de-identifier.

Every note that enters the analysis database goes through
`edge_node.deid_text.deidentify` first; its text is never copied as the source
wrote it. The de-identifier is keyed by the person's pseudonym and shifts a note's
dates through `Deidentifier.text_pseudonymizer()`, i.e. by the very offset the
pipeline adds to that person's structured dates (none when the policy keeps
dates), so the interval between a date in a note and a visit in the CDM survives.

The policy's `[deidentification]` section decides: `note_text = "scrubbed"` (the
default) or `"omit"` (an empty text, as before scrubbing existed), and
`note_identifiers = "tags"` (`[NAME]`) or `"surrogates"` (realistic stand-ins).
The language is the note's `lang` field when the mapping gives one (zh or en),
otherwise guessed from the text.

A note that cannot be scrubbed safely (binary content, too large, the
de-identifier failed) is quarantined with the reason, never loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from edge_node.deid_text import Settings
from edge_node.pipeline.deid import Pseudonymizer
from edge_node.pipeline.records import MappedRecord, Rejection

if TYPE_CHECKING:
    from edge_node.pipeline.context import RunContext
    from edge_node.pipeline.events import Linked

log = logging.getLogger(__name__)

# The de-identified text travels in this field; build_row copies only it.
SCRUBBED = "_scrubbed_text"
MAX_NOTE_CHARS = 2_000_000
BINARY_SHARE = 0.10
_LANGS = {
    "zh": "zh",
    "zh-cn": "zh",
    "zh_cn": "zh",
    "zh-hans": "zh",
    "chinese": "zh",
    "中文": "zh",
    "汉语": "zh",
    "en": "en",
    "en-us": "en",
    "en-gb": "en",
    "english": "en",
    "英文": "en",
    "英语": "en",
}


def note_lang(value: object) -> str | None:
    """zh or en for a language the source names, None (guess from the text) otherwise."""
    if not isinstance(value, str):
        return None
    return _LANGS.get(value.strip().lower())


def _binary_share(text: str) -> float:
    sample = text[:100_000]
    bad = sum(1 for c in sample if (ord(c) < 32 and c not in "\t\n\r\f") or c == "\ufffd")
    return bad / max(1, len(sample))


class NoteRefused(Exception):
    """A note that cannot be scrubbed; `code` and `reason` go to the quarantine."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason

    def __reduce__(self) -> tuple[type[NoteRefused], tuple[str, str]]:
        return NoteRefused, (self.code, self.reason)  # sent back by worker processes


def scrub(
    text: str | None,
    *,
    lang: str | None,
    person_key: str,
    pseudonymizer: Pseudonymizer,
    surrogates: bool,
) -> str:
    """The note's text with its identifiers replaced and its dates shifted; raises
    `NoteRefused` rather than return anything unscrubbed."""
    if text is None or not text.strip():
        return ""
    if len(text) > MAX_NOTE_CHARS:
        raise NoteRefused(
            "note_too_large",
            f"note of {len(text):,} characters is over the {MAX_NOTE_CHARS:,} the "
            "de-identifier is run on; not loaded",
        )
    if any("\ud800" <= c <= "\udfff" for c in text):
        text = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    share = _binary_share(text)
    if share > BINARY_SHARE:
        raise NoteRefused(
            "note_binary",
            f"note looks binary ({share:.0%} control or undecodable characters); not loaded",
        )
    try:
        result = _deidentifier()(
            text,
            lang=lang,
            patient_key=person_key,
            pseudonymizer=pseudonymizer,
            settings=Settings(surrogates=surrogates),
        )
    except Exception as exc:  # any failure quarantines the note; nothing raw is loaded
        log.warning("de-identifying a note failed: %s", type(exc).__name__)
        raise NoteRefused(
            "note_scrub_failed",
            f"the de-identifier failed on this note ({type(exc).__name__}); not loaded",
        ) from exc
    return result.text


def _deidentifier() -> Callable[..., Any]:
    """`edge_node.deid_text.deidentify`, imported on the first note: it loads spaCy
    and torch, seconds that a sync without note text should not pay."""
    found: Callable[..., Any] | None = globals().get("deidentify")
    if found is None:
        from edge_node.deid_text import deidentify

        found = globals()["deidentify"] = deidentify
    return found


def __getattr__(name: str) -> Any:
    if name == "deidentify":  # `notes.deidentify`, as before it was imported lazily
        return _deidentifier()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def with_text(record: MappedRecord, text: str) -> MappedRecord:
    """`record` carrying its scrubbed text in SCRUBBED (the source text stays in `text`)."""
    return replace(record, fields={**record.fields, SCRUBBED: text})


def refusal(record: MappedRecord, refused: NoteRefused) -> Rejection:
    raw = {k: None if v is None else str(v) for k, v in record.fields.items() if k != SCRUBBED}
    return Rejection(
        record.source, record.table, record.key, refused.code, refused.reason, "text", raw
    )


def start_scrubbing(
    ctx: RunContext, notes: Sequence[tuple[str | None, str | None, str]]
) -> Callable[[], list[str | NoteRefused]]:
    """Starts scrubbing (text, lang, person key) triples, in the run's worker
    processes when it has them (`workers.py`); the returned function waits for the
    scrubbed texts or refusals, in order."""
    from edge_node.pipeline.workers import ScrubJob, TextWorkers

    surrogates = ctx.deid.policy.note_identifiers == "surrogates"
    workers = ctx.text_workers or TextWorkers(ctx.deid.pseudonymizer, None, workers=1)
    jobs = [
        ScrubJob(text, lang, person_key, ctx.deid.shift_days(person_key), surrogates)
        for text, lang, person_key in notes
    ]
    return workers.scrub(jobs)


def scrub_notes(ctx: RunContext, linked: list[Linked]) -> tuple[list[Linked], list[Rejection]]:
    """The batch's notes with their scrubbed text (see SCRUBBED), and the notes that
    could not be scrubbed, as rejections."""
    if ctx.deid.policy.note_text == "omit":
        return linked, []
    pending = start_scrubbing(
        ctx,
        [
            (
                item.record.fields.get("text"),
                note_lang(item.record.fields.get("lang")),
                item.person_key,
            )
            for item in linked
        ],
    )
    kept: list[Linked] = []
    refused: list[Rejection] = []
    for item, out in zip(linked, pending(), strict=True):
        if isinstance(out, NoteRefused):
            refused.append(refusal(item.record, out))
        else:
            kept.append(replace(item, record=with_text(item.record, out)))
    return kept, refused


REPORT_TABLE_SUFFIX = "#report"
_HEADINGS = {"zh": ("检查所见：", "诊断意见："), "en": ("FINDINGS:", "IMPRESSION:")}


def report_text(findings: object, conclusion: object, modality: object) -> tuple[str, str]:
    """An imaging study's report as one document (title line, findings, impression)
    and its language; empty when the study has no report text."""
    parts = [str(p).strip() for p in (findings, conclusion) if p is not None and str(p).strip()]
    if not parts:
        return "", "en"
    from edge_node.structure.text import detect_lang

    lang = detect_lang(" ".join(parts))
    head_f, head_i = _HEADINGS[lang]
    title = f"{modality} report" if lang == "en" else f"{modality}检查报告"
    lines = [str(modality or "").strip() and title]
    if findings is not None and str(findings).strip():
        lines += [head_f, str(findings).strip()]
    if conclusion is not None and str(conclusion).strip():
        lines += [head_i, str(conclusion).strip()]
    return "\n".join(x for x in lines if x), lang


def imaging_reports(
    ctx: RunContext, linked: list[Linked]
) -> Callable[[], tuple[list[Linked], int]]:
    """Starts scrubbing the reports of the batch's imaging studies (findings and
    impression as one document); the returned function waits for them: notes keyed
    as `<table>#report` so a study and its report have their own rows, and how many
    reports could not be scrubbed (their study still loads; the report is left out,
    never copied raw)."""
    if ctx.deid.policy.note_text == "omit":
        return lambda: ([], 0)
    reports: list[tuple[Linked, str, str]] = []
    for item in linked:
        f = item.record.fields
        text, lang = report_text(f.get("findings"), f.get("conclusion"), f.get("modality"))
        if text:
            reports.append((item, text, lang))
    pending = start_scrubbing(ctx, [(text, lang, item.person_key) for item, text, lang in reports])

    def finish() -> tuple[list[Linked], int]:
        out: list[Linked] = []
        refused = 0
        for (item, _, lang), scrubbed in zip(reports, pending(), strict=True):
            if isinstance(scrubbed, NoteRefused):
                log.warning("an imaging report was left out: %s", scrubbed.code)
                refused += 1
                continue
            record = replace(
                item.record,
                table=item.record.table + REPORT_TABLE_SUFFIX,
                fields={"lang": lang, SCRUBBED: scrubbed},
            )
            out.append(replace(item, record=record))
        return out, refused

    return finish
