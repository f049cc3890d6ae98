"""Lab unit spellings and conversions to each analyte's standard unit."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edge_node.pipeline.units import (
    UnitConverter,
    UnitError,
    convert,
    is_known_unit,
    normalize_dose_unit,
    normalize_unit,
    unit_factor,
)
from shared_cdm.vocab import load_default


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("μmol/L", "umol/L"),  # Greek mu
        ("µmol/L", "umol/L"),  # micro sign
        ("umol/l", "umol/L"),
        ("UMOL/L", "umol/L"),
        ("g/dl", "g/dL"),
        ("mg/dL", "mg/dL"),
        ("ng/ml", "ng/mL"),
        ("μg/L", "ug/L"),
        ("pg/mL", "pg/mL"),
        ("U/L", "U/L"),
        ("IU/L", "IU/L"),
        ("mIU/mL", "mIU/mL"),
        ("10^9/L", "10*9/L"),
        ("x10^9/L", "10*9/L"),
        ("×10^9/L", "10*9/L"),
        ("×10⁹/L", "10*9/L"),
        ("10*9/L", "10*9/L"),
        ("10E9/L", "10*9/L"),
        ("*10^12/L", "10*12/L"),
        ("10^3/uL", "10*3/uL"),
        ("G/L", "10*9/L"),
        ("%", "%"),
        (" mmol/L ", "mmol/L"),
    ],
)
def test_vendor_spellings_normalise(written: str, canonical: str) -> None:
    assert normalize_unit(written) == canonical


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("mg/m2", "mg/m2"),
        ("mg/m²", "mg/m2"),
        ("MG/M2", "mg/m2"),
        ("mg/m^2", "mg/m2"),
        ("auc", "AUC"),
        ("mg", "mg"),
        ("毫克", "mg"),
        ("μg", "ug"),
        ("片", "片"),
    ],
)
def test_dose_units_are_normalised_not_converted(written: str, canonical: str) -> None:
    assert normalize_dose_unit(written) == canonical


@pytest.mark.parametrize(
    ("source", "target", "molar_mass", "factor"),
    [
        ("g/dL", "g/L", None, 10.0),
        ("g/L", "g/L", None, 1.0),
        ("μg/L", "ng/mL", None, 1.0),
        ("x10^9/L", "10*9/L", None, 1.0),
        ("10^3/uL", "10*9/L", None, 1.0),
        ("U/L", "U/mL", None, 0.001),
        ("kU/L", "U/mL", None, 1.0),
        ("IU/L", "U/L", None, 1.0),
        ("mmol/L", "umol/L", None, 1000.0),
        ("mg/dL", "umol/L", 113.12, 88.4016973),  # creatinine
        ("mg/dL", "umol/L", 584.66, 17.1039579),  # bilirubin
        ("mg/dL", "mmol/L", 180.16, 0.0555062),  # glucose
        ("umol/L", "mg/dL", 113.12, 0.011312),
        ("%", "%", None, 1.0),
    ],
)
def test_factors(source: str, target: str, molar_mass: float | None, factor: float) -> None:
    assert unit_factor(source, target, molar_mass) == pytest.approx(factor, rel=1e-6)


def test_same_dimension_factors_are_exact_after_tidying() -> None:
    assert unit_factor("μg/L", "ng/mL") == 1.0  # not 0.9999999999999999


@pytest.mark.parametrize(
    ("analyte", "value", "unit", "standard"),
    [
        ("HGB", 14.3, "g/dL", 143.0),
        ("HGB", 143, "g/L", 143.0),
        ("ALB", 4.68, "g/dL", 46.8),
        ("CREA", 0.79, "mg/dL", 69.8373),
        ("CREA", 70, "µmol/L", 70.0),
        ("TBIL", 0.942, "mg/dL", 16.1119),
        ("GLU", 95.5, "mg/dL", 5.3008),
        ("CEA", 2.5, "μg/L", 2.5),
        ("WBC", 6.2, "×10^9/L", 6.2),
        ("PLT", 230, "10E9/L", 230.0),
        ("CA125", 35, "kU/L", 35.0),
        ("ALT", 40, "IU/L", 40.0),
    ],
)
def test_convert_to_the_standard_unit(
    analyte: str, value: float, unit: str, standard: float
) -> None:
    assert convert(analyte, value, unit) == pytest.approx(standard, rel=1e-4)


@pytest.mark.parametrize(
    ("analyte", "unit", "code"),
    [
        ("HGB", "bogons/L", "unknown_unit"),
        ("HGB", "阴性", "unknown_unit"),
        ("HGB", "mmol/L", "incompatible_unit"),  # no molar mass for haemoglobin
        ("CEA", "U/mL", "incompatible_unit"),
        ("CREA", "g", "incompatible_unit"),
        ("HGB", "", "missing_unit"),
        ("NOPE", "g/L", "unknown_analyte"),
    ],
)
def test_unknown_and_incompatible_units_are_refused(analyte: str, unit: str, code: str) -> None:
    with pytest.raises(UnitError) as caught:
        convert(analyte, 1.0, unit)
    assert caught.value.code == code
    assert analyte in str(caught.value)


def test_the_error_says_when_only_the_molar_mass_is_missing() -> None:
    with pytest.raises(UnitError, match="no molar mass"):
        convert("HGB", 8.0, "mmol/L")
    with pytest.raises(UnitError) as caught:
        convert("CEA", 1.0, "U/mL")
    assert "molar mass" not in str(caught.value)


def test_factors_are_computed_once_per_analyte_and_unit() -> None:
    converter = UnitConverter(load_default())
    before = unit_factor.cache_info()
    first = converter.factor("HGB", "g/dL")
    for _ in range(1000):
        assert converter.factor("HGB", "g/dL") == first
    after = unit_factor.cache_info()
    assert after.hits + after.misses - before.hits - before.misses <= 1
    with pytest.raises(UnitError):
        converter.factor("HGB", "bogus")
    with pytest.raises(UnitError):  # the failure is remembered too
        converter.factor("HGB", "bogus")
    assert set(converter._factors) == {("HGB", "g/dL"), ("HGB", "bogus")}


@pytest.mark.parametrize(
    ("text", "known"),
    [
        ("g/L", True),
        ("x10^9/L", True),
        ("mg/m2", True),
        ("AUC", False),
        ("", False),
        ("Oncology", False),
        ("a very long free text that is no unit", False),
    ],
)
def test_is_known_unit(text: str, known: bool) -> None:
    assert is_known_unit(text) is known


def test_the_registry_is_built_on_first_use_only() -> None:
    code = (
        "import edge_node.pipeline.units as u\n"
        "assert u._registry is None\n"
        "u.normalize_unit('g/dL')\n"
        "assert u._registry is None\n"
        "u.unit_factor('g/dL', 'g/L')\n"
        "assert u._registry is not None\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=".")
