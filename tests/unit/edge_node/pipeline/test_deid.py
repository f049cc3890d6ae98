"""De-identification primitives: the site secret, pseudonyms, surrogate keys, date shift."""

from __future__ import annotations

import hmac
import os
import random
import stat
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from edge_node.pipeline.deid import (
    Deidentifier,
    DeidPolicy,
    Pseudonymizer,
    SiteSecret,
)
from shared_cdm.errors import InvalidInput

SECRET = bytes(range(32))


def _reference(secret: bytes, kind: str, value: str) -> bytes:
    return hmac.digest(secret, f"{kind}\x1f{value}".encode(), "sha256")


def _completed_years(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


# --- the site secret ---------------------------------------------------------------


def test_secret_is_created_once_private_and_stable(tmp_path: Path) -> None:
    path = SiteSecret.path_in(tmp_path / "edge")
    assert path == tmp_path / "edge" / "pipeline.key"

    first = SiteSecret.load_or_create(path)

    assert len(first) == 32
    assert path.read_bytes() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SiteSecret.load_or_create(path) == first
    assert [p.name for p in path.parent.iterdir()] == ["pipeline.key"]  # no temp left


def test_two_sites_get_different_secrets(tmp_path: Path) -> None:
    a = SiteSecret.load_or_create(tmp_path / "a" / "pipeline.key")
    b = SiteSecret.load_or_create(tmp_path / "b" / "pipeline.key")
    assert a != b


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_a_secret_readable_by_others_is_refused_without_showing_it(
    tmp_path: Path, mode: int
) -> None:
    path = tmp_path / "pipeline.key"
    secret = SiteSecret.load_or_create(path)
    path.chmod(mode)

    with pytest.raises(InvalidInput) as info:
        SiteSecret.load_or_create(path)

    assert f"chmod 600 {path}" in info.value.message
    assert f"{mode:04o}" in info.value.message
    assert secret.hex() not in info.value.message
    path.chmod(0o600)
    assert SiteSecret.load_or_create(path) == secret  # fixed as the message says


def test_a_damaged_secret_is_refused_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.key"
    path.write_bytes(b"short")
    path.chmod(0o600)

    with pytest.raises(InvalidInput, match="holds 5 bytes"):
        SiteSecret.load_or_create(path)
    assert path.read_bytes() == b"short"


# --- pseudonyms and surrogate keys -------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value"),
    [("person", "P000123"), ("admission", "Z2023-0001"), ("row", "emr/lab/42|王小明")],
)
def test_pseudonym_is_truncated_hmac_sha256_of_kind_and_value(kind: str, value: str) -> None:
    pseudonym = Pseudonymizer(SECRET).pseudonym(kind, value)

    assert pseudonym == _reference(SECRET, kind, value).hex()[:32]
    assert len(pseudonym) == 32
    assert int(pseudonym, 16) >= 0  # hex


def test_pseudonyms_depend_on_kind_secret_and_value() -> None:
    p = Pseudonymizer(SECRET)
    other = Pseudonymizer(bytes(reversed(SECRET)))

    assert p.pseudonym("person", "1") == p.pseudonym("person", "1")
    assert p.pseudonym("person", "1") != p.pseudonym("admission", "1")
    assert p.pseudonym("person", "1") != p.pseudonym("person", "2")
    assert p.pseudonym("person", "1") != other.pseudonym("person", "1")
    # The separator keeps ("ab", "c") and ("a", "bc") apart.
    assert p.pseudonym("ab", "c") != p.pseudonym("a", "bc")
    with pytest.raises(ValueError, match="x1f"):
        p.pseudonym("a\x1fb", "c")


def test_pseudonymizer_agrees_with_hmac_for_any_key_length() -> None:
    for size in (16, 32, 64, 65, 128):
        secret = os.urandom(size)
        assert (
            Pseudonymizer(secret).pseudonym("row", "x") == _reference(secret, "row", "x").hex()[:32]
        )
    with pytest.raises(ValueError, match="at least 16 bytes"):
        Pseudonymizer(b"short")


def test_repr_does_not_show_the_secret() -> None:
    assert SECRET.hex() not in repr(Pseudonymizer(SECRET))
    assert "0, 1, 2" not in repr(Pseudonymizer(SECRET))


def test_surrogate_ids_are_stable_positive_63_bit_integers() -> None:
    p = Pseudonymizer(SECRET)
    ids = [p.surrogate_id("row", str(i)) for i in range(20_000)]

    assert all(1 <= i < 2**63 for i in ids)  # fits PostgreSQL BIGINT, never 0
    assert len(set(ids)) == len(ids)
    assert max(ids) > 2**62  # the whole range is used, not just 32 bits
    expected = int.from_bytes(_reference(SECRET, "row", "7")[:8], "big") & (2**63 - 1)
    assert p.surrogate_id("row", "7") == expected
    assert p.surrogate_id("person", "7") != p.surrogate_id("admission", "7")


def test_date_shift_is_per_person_in_range_and_never_zero() -> None:
    p = Pseudonymizer(SECRET)
    shifts = [p.date_shift_days(f"person-{i}", 180) for i in range(5_000)]

    assert all(-180 <= s <= 180 and s != 0 for s in shifts)
    assert min(shifts) == -180
    assert max(shifts) == 180
    assert len(set(shifts)) == 360  # every offset but 0 occurs
    assert sum(s < 0 for s in shifts) == pytest.approx(2_500, abs=250)
    assert shifts[:50] == [p.date_shift_days(f"person-{i}", 180) for i in range(50)]
    assert {p.date_shift_days(f"q{i}", 1) for i in range(100)} == {-1, 1}
    other = Pseudonymizer(bytes(reversed(SECRET)))
    assert shifts[:50] != [other.date_shift_days(f"person-{i}", 180) for i in range(50)]
    with pytest.raises(ValueError, match="at least 1"):
        p.date_shift_days("x", 0)


def test_pseudonyms_are_fast() -> None:
    # The measured figure is well above 300k/s; this only guards against a regression.
    p = Pseudonymizer(SECRET)
    values = [f"emr/lab_results/{i}" for i in range(50_000)]
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for v in values:
            p.pseudonym("row", v)
        best = max(best, len(values) / (time.perf_counter() - start))
    assert best >= 100_000


# --- policy and the de-identifier --------------------------------------------------


def test_deid_policy_defaults_and_validation() -> None:
    policy = DeidPolicy()
    assert (policy.dates, policy.max_shift_days, policy.birth) == ("shift", 180, "year")
    assert (policy.note_text, policy.note_identifiers) == ("scrubbed", "tags")

    with pytest.raises(ValidationError, match="never copied as written"):
        DeidPolicy(keep_note_text=True)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        DeidPolicy(dates="drop")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        DeidPolicy(max_shift_days=0)
    with pytest.raises(ValidationError):
        DeidPolicy(unknown=1)  # type: ignore[call-arg]


def test_shift_moves_every_date_of_a_person_by_the_same_offset() -> None:
    deid = Deidentifier(Pseudonymizer(SECRET), DeidPolicy(max_shift_days=30))
    key = deid.person_key("emr:P0001")
    admitted, diagnosed = date(2023, 3, 1), date(2023, 3, 14)
    drawn = datetime(2023, 3, 2, 7, 45, 10)

    shifted_admitted = deid.shift(admitted, key)
    shifted_diagnosed = deid.shift(diagnosed, key)
    shifted_drawn = deid.shift(drawn, key)

    offset = shifted_admitted - admitted
    assert offset == timedelta(days=deid.shift_days(key))
    assert timedelta(days=-30) <= offset <= timedelta(days=30) and offset
    assert shifted_diagnosed - shifted_admitted == diagnosed - admitted  # intervals kept
    assert type(shifted_admitted) is date
    assert type(shifted_drawn) is datetime
    assert shifted_drawn.time() == drawn.time()
    assert shifted_drawn - drawn == offset
    assert deid.shift(None, key) is None


def test_person_key_is_the_person_pseudonym() -> None:
    deid = Deidentifier(Pseudonymizer(SECRET))
    assert deid.person_key("emr:P0001") == Pseudonymizer(SECRET).pseudonym("person", "emr:P0001")
    assert deid.person_key("emr:P0001") != deid.person_key("emr:P0002")


def test_keep_leaves_dates_alone() -> None:
    deid = Deidentifier(Pseudonymizer(SECRET), DeidPolicy(dates="keep", birth="date"))
    key = deid.person_key("emr:P0001")
    assert deid.shift(date(2023, 3, 1), key) == date(2023, 3, 1)
    assert deid.shift_days(key) == 0
    assert deid.birth_fields(date(1958, 6, 9), key) == (1958, 6, 9, datetime(1958, 6, 9))


def test_birth_fields_keep_what_the_policy_says_from_the_shifted_date() -> None:
    p = Pseudonymizer(SECRET)
    born = date(1958, 6, 9)
    by_mode = {
        mode: Deidentifier(p, DeidPolicy(birth=mode)) for mode in ("year", "year_month", "date")
    }
    key = by_mode["year"].person_key("emr:P0001")
    shifted = born + timedelta(days=by_mode["year"].shift_days(key))

    assert by_mode["year"].birth_fields(born, key) == (shifted.year, None, None, None)
    assert by_mode["year_month"].birth_fields(born, key) == (
        shifted.year,
        shifted.month,
        None,
        None,
    )
    assert by_mode["date"].birth_fields(born, key) == (
        shifted.year,
        shifted.month,
        shifted.day,
        datetime(shifted.year, shifted.month, shifted.day),
    )
    with_time = by_mode["date"].birth_fields(datetime(1958, 6, 9, 4, 30), key)
    assert with_time[3] == datetime(shifted.year, shifted.month, shifted.day, 4, 30)


def test_a_year_of_birth_near_new_year_follows_the_shift() -> None:
    # Born on 31 December: a forward shift moves the year; every mode agrees on it.
    p = Pseudonymizer(SECRET)
    deid = Deidentifier(p, DeidPolicy(max_shift_days=30))
    key = next(k for k in (f"k{i}" for i in range(100)) if deid.shift_days(k) > 0)
    assert deid.birth_fields(date(1960, 12, 31), key)[0] == 1961
    full = Deidentifier(p, DeidPolicy(max_shift_days=30, birth="date"))
    assert full.birth_fields(date(1960, 12, 31), key)[0] == 1961


@pytest.mark.parametrize("max_days", [1, 180, 365])
def test_age_at_diagnosis_from_shifted_dates_is_within_a_year_of_the_truth(
    max_days: int,
) -> None:
    rng = random.Random(7)
    deid = Deidentifier(Pseudonymizer(SECRET), DeidPolicy(max_shift_days=max_days))
    exact = Deidentifier(Pseudonymizer(SECRET), DeidPolicy(max_shift_days=max_days, birth="date"))
    off_by_a_day = 0
    for i in range(2_000):
        born = date(1930, 1, 1) + timedelta(days=rng.randrange(365 * 60))
        diagnosed = born + timedelta(days=rng.randrange(365 * 20, 365 * 80))
        key = deid.person_key(f"P{i}")
        true_age = _completed_years(born, diagnosed)

        year, *_ = deid.birth_fields(born, key)
        shifted_dx = deid.shift(diagnosed, key)
        assert abs((shifted_dx.year - year) - true_age) <= 1

        y, m, d, _ = exact.birth_fields(born, key)
        assert y == year
        assert m is not None and d is not None
        exact_age = _completed_years(date(y, m, d), shifted_dx)
        assert abs(exact_age - true_age) <= 1
        off_by_a_day += exact_age != true_age
    # With the full date, only a shift across 29 February can move an age (by a day).
    assert off_by_a_day <= 10
