"""The `[deidentification]` section of the site policy."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from edge_node.pipeline.deid import DeidPolicy
from edge_node.policy import (
    DEFAULT_POLICY_TOML,
    Policy,
    describe_policy,
    load_policy,
    parse_policy,
)
from shared_cdm.errors import InvalidInput


def test_default_file_documents_the_defaults() -> None:
    section = tomllib.loads(DEFAULT_POLICY_TOML)["deidentification"]

    assert section == DeidPolicy().model_dump()
    assert parse_policy(DEFAULT_POLICY_TOML).deidentification == DeidPolicy()
    # Every key is explained by a comment in the file the operator edits.
    text = DEFAULT_POLICY_TOML.split("[deidentification]", 1)[1]
    for key in section:
        before = text.split(f"\n{key} =", 1)[0]
        assert before.rstrip().splitlines()[-1].startswith("#"), key


def test_missing_section_and_missing_file_mean_the_defaults(tmp_path: Path) -> None:
    assert parse_policy("min_cell_size = 5").deidentification == DeidPolicy()
    assert load_policy(tmp_path / "absent.toml").deidentification == DeidPolicy()
    assert Policy().deidentification == DeidPolicy()


def test_a_site_sets_its_own_rules(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        '[deidentification]\ndates = "keep"\nmax_shift_days = 30\nbirth = "year_month"\n',
        encoding="utf-8",
    )

    deid = load_policy(path).deidentification

    assert deid == DeidPolicy(dates="keep", max_shift_days=30, birth="year_month")
    assert (deid.note_text, deid.note_identifiers) == ("scrubbed", "tags")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('dates = "drop"', "deidentification.dates"),
        ("max_shift_days = 0", "deidentification.max_shift_days"),
        ('max_shift_days = "90"', "deidentification.max_shift_days"),
        ("max_shift_days = 90.0", "deidentification.max_shift_days"),
        ('birth = "decade"', "deidentification.birth"),
        ('note_text = "raw"', "deidentification.note_text"),
        ('note_identifiers = "none"', "deidentification.note_identifiers"),
        ("shift_dates = true", "deidentification.shift_dates"),
    ],
)
def test_bad_values_are_rejected_naming_the_key(text: str, key: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_policy(f"[deidentification]\n{text}\n", "site policy")
    assert f"`{key}`" in info.value.message
    assert "site policy" in info.value.message
    assert info.value.code == "invalid_policy"


def test_raw_note_text_is_refused_and_the_retired_false_accepted() -> None:
    with pytest.raises(InvalidInput, match="never copied as written"):
        parse_policy("[deidentification]\nkeep_note_text = true\n")
    # policy files written before scrubbing existed say `keep_note_text = false`
    old = parse_policy("[deidentification]\nkeep_note_text = false\n").deidentification
    assert old == DeidPolicy()


def test_section_must_be_a_table() -> None:
    with pytest.raises(InvalidInput, match="`deidentification`"):
        parse_policy('deidentification = "shift"')


def test_fingerprint_changes_with_the_deidentification_rules() -> None:
    default = Policy().fingerprint()
    assert parse_policy("").fingerprint() == default
    assert parse_policy(DEFAULT_POLICY_TOML).fingerprint() == default

    changed = {
        parse_policy(f"[deidentification]\n{line}\n").fingerprint()
        for line in ('dates = "keep"', "max_shift_days = 30", 'birth = "date"')
    }

    assert default not in changed
    assert len(changed) == 3


def test_policy_show_lists_the_section() -> None:
    lines = describe_policy(parse_policy('[deidentification]\nbirth = "year_month"\n'))
    at = lines.index("deidentification:")
    assert lines[at + 1 :] == [
        '  dates = "shift"',
        "  max_shift_days = 180",
        '  birth = "year_month"',
        '  note_text = "scrubbed"',
        '  note_identifiers = "tags"',
    ]
