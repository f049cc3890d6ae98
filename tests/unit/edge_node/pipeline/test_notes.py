"""Scrubbing one note for the CDM: the date shift is the person's CDM shift, failures
refuse the note, and the policy picks tags or surrogates."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from edge_node.pipeline import notes
from edge_node.pipeline.deid import Deidentifier, DeidPolicy, Pseudonymizer
from edge_node.pipeline.notes import MAX_NOTE_CHARS, NoteRefused, note_lang, scrub

SECRET = bytes(range(32))
NOTE = "Seen by Dr John Carter on 2021-03-04. Phone 13812345678. Adenocarcinoma, cT2aN0M0."


def _deid(**policy: object) -> Deidentifier:
    return Deidentifier(Pseudonymizer(SECRET), DeidPolicy(**policy))  # type: ignore[arg-type]


def test_notes_shift_dates_by_the_persons_cdm_offset() -> None:
    deid = _deid()
    text_keys = deid.text_pseudonymizer()
    for person in ("a" * 32, "b" * 32, "c" * 32):
        days = deid.shift_days(person)
        assert text_keys.date_shift_days(person, 3650) == days != 0
        scrubbed = scrub(
            NOTE, lang="en", person_key=person, pseudonymizer=text_keys, surrogates=False
        )
        moved = date(2021, 3, 4) + timedelta(days=days)
        assert moved.isoformat() in scrubbed
        assert deid.shift(date(2021, 3, 4), person) == moved
    # the same keys as the pipeline's: pseudonyms and surrogates agree
    assert text_keys.pseudonym("row", "x") == deid.pseudonymizer.pseudonym("row", "x")
    assert text_keys.surrogate_id("row", "x") == deid.pseudonymizer.surrogate_id("row", "x")


def test_dates_kept_by_the_policy_stay_in_the_notes() -> None:
    deid = _deid(dates="keep")
    keys = deid.text_pseudonymizer()
    assert keys.date_shift_days("a" * 32, 180) == 0
    scrubbed = scrub(NOTE, lang="en", person_key="a" * 32, pseudonymizer=keys, surrogates=False)
    assert "2021-03-04" in scrubbed
    assert "Carter" not in scrubbed and "13812345678" not in scrubbed
    assert "cT2aN0M0" in scrubbed and "Adenocarcinoma" in scrubbed


def test_tags_or_surrogates() -> None:
    keys = _deid().text_pseudonymizer()
    tags = scrub(NOTE, lang="en", person_key="a" * 32, pseudonymizer=keys, surrogates=False)
    stand_ins = scrub(NOTE, lang="en", person_key="a" * 32, pseudonymizer=keys, surrogates=True)
    assert "[NAME]" in tags and "[PHONE]" in tags
    assert "[NAME]" not in stand_ins and "[PHONE]" not in stand_ins
    assert "Carter" not in stand_ins and "13812345678" not in stand_ins


def test_notes_that_cannot_be_scrubbed_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = _deid().text_pseudonymizer()

    def run(text: str) -> str:
        return scrub(text, lang=None, person_key="a" * 32, pseudonymizer=keys, surrogates=False)

    assert run("") == "" and run("   \n") == ""
    with pytest.raises(NoteRefused) as binary:
        run("\x00\x01\x02\x03" * 100)
    assert binary.value.code == "note_binary"
    with pytest.raises(NoteRefused) as large:
        run("x" * (MAX_NOTE_CHARS + 1))
    assert large.value.code == "note_too_large"

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(notes, "deidentify", broken)
    with pytest.raises(NoteRefused) as failed:
        run(NOTE)
    assert failed.value.code == "note_scrub_failed"
    assert "RuntimeError" in failed.value.reason


def test_a_note_in_chinese_is_scrubbed_and_lone_surrogates_do_not_break_it() -> None:
    keys = _deid().text_pseudonymizer()
    text = "患者张伟，住院号：A000123，电话13812345678。右肺上叶腺癌 cT2aN0M0 IB期。\ud800"
    scrubbed = scrub(text, lang=None, person_key="a" * 32, pseudonymizer=keys, surrogates=False)
    assert "张伟" not in scrubbed and "A000123" not in scrubbed
    assert "腺癌" in scrubbed and "cT2aN0M0" in scrubbed
    assert "\ud800" not in scrubbed


@pytest.mark.parametrize(
    ("given", "lang"),
    [("zh", "zh"), ("ZH-CN", "zh"), ("中文", "zh"), ("English", "en"), ("fr", None), (3, None)],
)
def test_note_language(given: object, lang: str | None) -> None:
    assert note_lang(given) == lang


def test_the_sync_does_not_load_the_text_deidentifier_until_a_note_needs_it() -> None:
    # spaCy and torch take seconds to import: a sync without note text must not pay them.
    import subprocess
    import sys

    probe = (
        "import sys, edge_node.pipeline.sync, edge_node.pipeline.workers\n"
        "print(sorted(m for m in ('spacy', 'torch', 'edge_node.deid_text.core') "
        "if m in sys.modules))\n"
        "from edge_node.pipeline import notes\n"
        "notes.deidentify\n"
        "print('edge_node.deid_text.core' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == "True"  # `notes.deidentify` still names the de-identifier
