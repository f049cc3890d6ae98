"""The PHI canary scanner (tests/integration/phi_canaries.py) finds what it must and
only that: a scanner that went blind would let the canary test pass on anything."""

from __future__ import annotations

import json

from tests.integration.phi_canaries import (
    ADDRESS,
    PHONE,
    RECORD_NUMBER,
    RESIDENT_ID,
    STAFF_NAME,
    Canary,
    Scanner,
    digits_projection,
)

NAME_ZH = Canary("谢泽阳", "patient_name", "C")
SHORT_ZH = Canary("韩颖", STAFF_NAME, "C")
NAME_EN = Canary("WANG, Jianguo", "patient_name", "B")
RESIDENT = Canary("11010119440914975X", RESIDENT_ID, "C")
MOBILE = Canary("15094153262", PHONE, "C")
MOBILE_WRITTEN = Canary("+86 150 9415 3262", PHONE, "C")
PATIENT_NO = Canary("3100001", RECORD_NUMBER, "C")
STREET = Canary("No. 93 Heping St", ADDRESS, "B")
SCANNER = Scanner(
    [NAME_ZH, SHORT_ZH, NAME_EN, RESIDENT, MOBILE, MOBILE_WRITTEN, PATIENT_NO, STREET]
)


def found(hits: list) -> set[str]:
    return {h.canary.text for h in hits}


def test_text_is_matched_case_insensitively_and_a_canary_inside_another_is_found() -> None:
    hits = SCANNER.text("seen by wang, jianguo at no. 93 heping st; 3100001 again", "t")
    assert found(hits) == {NAME_EN.text, STREET.text, PATIENT_NO.text}


def test_reformatted_numbers_are_found_in_the_digits_projection() -> None:
    text = "call 150-9415-3262 or ID 110101 1944 0914 975x"
    hits = SCANNER.text(text, "t")
    assert {(h.canary.text, h.how) for h in hits} == {
        (MOBILE.text, "digits"),
        (RESIDENT.text, "digits"),
    }
    assert digits_projection("a 150 9415 3262 b") == "15094153262"


def test_numbers_inside_hex_pseudonyms_and_longer_numbers_are_no_hits() -> None:
    pseudonym = "9f31000010ab15094153262ffe0c0d1e"  # HMAC output: its digits are chance
    assert SCANNER.text(pseudonym, "t") == []
    assert SCANNER.text("measurement 23100001 and 0.31000017", "t") == []


def test_json_escapes_and_gb18030_bytes_are_decoded() -> None:
    escaped = json.dumps({"note": f"患者{NAME_ZH.text}，主治{SHORT_ZH.text}"})
    assert "\\u" in escaped
    assert found(SCANNER.text(escaped, "t")) == {NAME_ZH.text, SHORT_ZH.text}
    raw = b"\x00\x17" + f"姓名:{NAME_ZH.text}".encode("gb18030") + b"\xff"
    assert (NAME_ZH.text, "gb18030 bytes") in {
        (h.canary.text, h.how) for h in SCANNER.raw(raw, "r")
    }
    assert found(SCANNER.raw(NAME_ZH.text.encode("utf-8"), "r")) == {NAME_ZH.text}


def test_two_character_names_count_in_text_but_not_in_gb18030_readings_of_binary() -> None:
    """Random binary spells a given two-character name once in ~10^10 windows."""
    assert found(SCANNER.text(f"医师:{SHORT_ZH.text}", "t")) == {SHORT_ZH.text}
    raw = f"医师:{SHORT_ZH.text}".encode("gb18030")
    assert SCANNER.raw(raw, "r") == []
    assert found(SCANNER.raw(f"医师:{SHORT_ZH.text}".encode(), "r")) == {SHORT_ZH.text}


def test_values_of_every_shape_are_scanned() -> None:
    assert found(SCANNER.value({"a": [NAME_EN.text]}, "v")) == {NAME_EN.text}
    assert found(SCANNER.value(MOBILE.text.encode(), "v")) == {MOBILE.text}
    assert SCANNER.value(15094153262, "v") == []
