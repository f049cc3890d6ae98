"""The safe-list pass (`onco_deid_unknown`): what is not known to be safe is flagged.

Examples written for this test; the names are made up and in no word list."""

from __future__ import annotations

import pytest

from edge_node.deid_text import detect, unknown
from edge_node.deid_text.pipeline import COMPONENTS, build


def found(text: str, lang: str = "en") -> list[tuple[str, str]]:
    return [(text[s:e], t) for s, e, t in detect(text, lang)]


def values(text: str, lang: str = "en") -> list[str]:
    return [v for v, _ in found(text, lang)]


def test_component_is_registered_before_resolve() -> None:
    names = [n for n, _ in build("en").pipeline]
    assert names == list(COMPONENTS)
    assert names.index("onco_deid_unknown") == names.index("onco_deid_resolve") - 1


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # no title, no label, no cue: only "not a dictionary word" finds them
        ("Came in with Quendrith after the scan.", "Quendrith"),
        ("Follow-up arranged; Zorvalek Imbrusse to call back.", "Zorvalek Imbrusse"),
        ("The neighbour, Tavlinor, brings her to clinic.", "Tavlinor"),
    ],
)
def test_unknown_capitalised_words_are_flagged(text: str, value: str) -> None:
    assert value in values(text)


@pytest.mark.parametrize(
    ("text", "value", "kind"),
    [
        ("She moved to Brastowe last spring.", "Brastowe", "ADDRESS"),
        ("Works for Quellmark Ltd as a driver.", "Quellmark", "ORGANIZATION"),
        ("Spoke with Quendrith today.", "Quendrith", "NAME"),
    ],
)
def test_cue_words_choose_the_type(text: str, value: str, kind: str) -> None:
    hits = unknown.en_unknown(text)
    assert [(text[h.start : h.end], h.type) for h in hits] == [(value, kind)]
    assert not any(h.strong for h in hits)  # weak: the clinical keep-list may drop them


@pytest.mark.parametrize(
    "text",
    [
        "Restaging CT: Unresectable disease, Referring team informed.",  # dictionary words
        "Seen in Haem-Onc clinic on the Oncology ward, Gynae review.",  # short forms
        "Started Osimertinib and Pembrolizumab; Carboplatin held.",  # drug-shaped words
        "Transferred to Marrowgate Hospital for Radiotherapy.",  # a hospital's name
        "Immunostains: Vimlexin (+), Kerastain A (-).",  # stain results
        "Assay: Zentoprint 2.1 reported low risk.",  # a product with its version
        "Mon 3 Sept; English speaker from Guangdong.",  # weekday, language, province
    ],
)
def test_safe_words_are_not_flagged(text: str) -> None:
    assert unknown.en_unknown(text) == []


def test_dictionary_lookup_handles_inflections_and_british_spelling() -> None:
    for word in ("Tumours", "Haemorrhage", "Replanned", "Centres", "Oesophageal"):
        assert unknown.safe_word(word), word
    assert not unknown.safe_word("Quendrith")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Kit lot QX4471B used.", "QX4471B"),
        ("Study ref ABC-2291-77 enrolled.", "ABC-2291-77"),
    ],
)
def test_letter_digit_codes_are_flagged(text: str, code: str) -> None:
    assert code in values(text)


@pytest.mark.parametrize(
    "text",
    [
        "Stage pT1miN0M0, ycT2bN1 after therapy.",
        "EGFR L858R and E746_A750del; KRAS G12C.",
        "CA125 41, CYFRA21-1 3.2, CA19-9 12; PD-L1 22C3 and SP263.",
        "Dose 6000cGy in 30 fractions, 5000mg total; d1-14 of C1D1.",
    ],
)
def test_clinical_values_are_not_codes(text: str) -> None:
    assert unknown.codes(text) == []


def test_chinese_place_chain_is_an_address() -> None:
    text = "籍贯：云岭省青禾市白沙区人，现居外地"
    assert any("青禾市白沙区" in v for v in values(text, "zh"))


def test_hospital_named_after_its_city_is_kept() -> None:
    text = "于青禾市第二人民医院行手术"
    assert all("青禾市" not in v for v in values(text, "zh"))


def test_dictionary_is_shipped_and_has_no_proper_nouns() -> None:
    words = unknown.english_words()
    assert len(words) > 200_000
    assert {"carcinoma", "hospital", "restaging"} & words == {"carcinoma", "hospital"}
    assert "london" not in words and "john" not in words


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("家属称其住在梧桐巷附近，", "梧桐巷"),
        ("现居青禾区，独居", "青禾区"),
        ("住7号楼302室", "7号楼302室"),
    ],
)
def test_chinese_single_place_units_are_addresses(text: str, place: str) -> None:
    assert any(place in v for v in values(text, "zh"))


def test_chinese_ward_and_autonomous_region_are_not_addresses() -> None:
    assert unknown.zh_places("转入肿瘤病区，来自广西壮族自治区") == []
