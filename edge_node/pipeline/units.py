"""Lab units: recognising vendor spellings and converting to the analyte's
standard unit with pint.

Vendors write the same unit many ways (`μmol/L`, `µmol/L`, `umol/l`; `10^9/L`,
`×10^9/L`, `10*9/L`, `10E9/L`); `normalize_unit` gives one UCUM-style spelling
and pint does the arithmetic. Mass and molar concentrations convert through the
analyte's molar mass. Factors are computed once per (analyte, unit) and cached.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from shared_cdm.errors import InvalidInput
from shared_cdm.vocab import Vocabulary, load_default

if TYPE_CHECKING:
    import pint


class UnitError(InvalidInput):
    """`unknown_unit` or `incompatible_unit`."""


_registry: pint.UnitRegistry[Any] | None = None
_registry_lock = threading.Lock()


def registry() -> pint.UnitRegistry[Any]:
    """The one pint registry, built on first use (building it takes ~0.3 s)."""
    global _registry
    if _registry is None:
        with _registry_lock:
            if _registry is None:
                import pint

                ureg: pint.UnitRegistry[Any] = pint.UnitRegistry()
                # an international unit of enzyme activity is pint's enzyme unit
                ureg.define("international_unit = enzyme_unit = IU")
                _registry = ureg
    return _registry


# --- spelling ---------------------------------------------------------------

_PREFIXES = {"": "", "k": "k", "m": "m", "u": "u", "n": "n", "p": "p", "f": "f", "d": "d"}
_VOLUMES = ("L", "dL", "mL", "uL")
_COUNTED = ("g", "mol", "U", "IU", "eq")
# lower-cased spelling -> canonical UCUM-style spelling
_CANONICAL: dict[str, str] = {}
for _prefix in _PREFIXES:
    for _base in _COUNTED:
        _CANONICAL[(_prefix + _base).lower()] = _prefix + _base
        for _volume in _VOLUMES:
            _CANONICAL[f"{_prefix}{_base}/{_volume}".lower()] = f"{_prefix}{_base}/{_volume}"
_CANONICAL.update(
    {
        "%": "%",
        "mmhg": "mm[Hg]",
        "fl": "fL",
        "s": "s",
        "sec": "s",
        "min": "min",
        "h": "h",
        "ml/min": "mL/min",
        "mg/m2": "mg/m2",
        "g/m2": "g/m2",
        "ug/m2": "ug/m2",
        "mg/kg": "mg/kg",
        "ug/kg": "ug/kg",
        "auc": "AUC",
        "ratio": "1",
        "1": "1",
    }
)
# cell and particle counts: `10^9/L`, `x10^9/L`, `×10⁹/L`, `10*9/L`, `10E9/L`, `10^3/uL`
_COUNT = re.compile(r"(?:[x×*]\s*)?10\s*(?:\^|\*|\*\*|e)\s*(\d{1,2})\s*/\s*(l|dl|ml|ul|mm3)")
_COUNT_VOLUME = {"l": "L", "dl": "dL", "ml": "mL", "ul": "uL", "mm3": "mm3"}
_GIGA = {"g/l": "10*9/L", "t/l": "10*12/L"}  # French-style giga and tera per litre


_SUPERSCRIPT = re.compile("[⁰¹²³⁴⁵⁶⁷⁸⁹]+")
_SUPER_DIGITS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")


def _fold(text: str) -> str:
    """Width-folded, without spaces, micro as `u`, superscripts as powers:
    `×10⁹/L` -> `×10^9/L` (NFKC alone would give `×109/L`), `m²` -> `m2`."""
    text = _SUPERSCRIPT.sub(lambda m: "^" + m.group().translate(_SUPER_DIGITS), text)
    folded = unicodedata.normalize("NFKC", text).strip().replace("μ", "u").replace(" ", "")
    return re.sub(r"(?<=[a-zA-Z])\^([23])\b", r"\1", folded)


def normalize_unit(text: str) -> str:
    """The canonical spelling of a written unit: `μmol/L`, `µmol/L`, `umol/l`
    give `umol/L`; `x10^9/L`, `×10^9/L`, `10E9/L` give `10*9/L`; `IU/L` stays.
    A spelling not in the table is returned folded, for pint to judge."""
    folded = _fold(text)
    lower = folded.lower()
    if lower in _GIGA and folded[0] in "GT":  # `G/L` is giga per litre, `g/L` grams
        return _GIGA[lower]
    if lower in _CANONICAL:
        return _CANONICAL[lower]
    if m := _COUNT.fullmatch(lower):
        return f"10*{int(m.group(1))}/{_COUNT_VOLUME[m.group(2)]}"
    return folded


_DOSE_WORDS = {
    "毫克": "mg",
    "克": "g",
    "微克": "ug",
    "毫升": "mL",
    "升": "L",
    "国际单位": "IU",
    "单位": "U",
    "mg/m^2": "mg/m2",
}


def normalize_dose_unit(text: str) -> str:
    """A dose unit's canonical spelling (`mg/m²`, `MG/M2` give `mg/m2`; `auc`
    gives `AUC`; `毫克` gives `mg`). Doses are kept in their unit, not converted;
    unknown spellings come back folded."""
    if text.strip() in _DOSE_WORDS:
        return _DOSE_WORDS[text.strip()]
    folded = _fold(text)
    return _CANONICAL.get(folded.lower(), folded)


def _pint_expression(canonical: str) -> str:
    if canonical == "%":
        return "percent"
    if canonical == "mm[Hg]":
        return "mmHg"
    if m := re.fullmatch(r"10\*(\d+)/(\w+)", canonical):
        canonical = f"1e{m.group(1)}/{m.group(2)}"
    return re.sub(r"\b(mm|cm|dm|m)([23])\b", r"\1**\2", canonical)  # mm3 -> mm**3


def _quantity(canonical: str) -> Any:
    ureg = registry()
    try:
        return ureg.parse_expression(_pint_expression(canonical))
    except Exception as exc:  # pint's parser fails on odd text with assorted errors
        raise UnitError(f"unknown unit {canonical!r}", code="unknown_unit") from exc


def is_known_unit(text: str) -> bool:
    """Whether pint can read the unit (after the vendor spellings are folded)."""
    if not 0 < len(text) <= 24:
        return False
    try:
        unit = normalize_unit(text)
        return bool(unit) and unit != "AUC" and _quantity(unit) is not None
    except UnitError:
        return False


@lru_cache(maxsize=4096)
def unit_factor(source: str, target: str, molar_mass: float | None = None) -> float:
    """The factor taking a value in `source` to `target` (both as written or
    canonical). With `molar_mass` (g/mol) mass and substance concentrations
    convert into each other (creatinine mg/dL <-> umol/L)."""
    import pint

    src, dst = _quantity(normalize_unit(source)), _quantity(normalize_unit(target))
    try:
        return _tidy((src / dst).to("dimensionless").magnitude)
    except pint.errors.DimensionalityError:
        pass
    ureg = registry()
    mass, substance = ureg.gram / ureg.liter, ureg.mole / ureg.liter
    mass_to_molar = src.check(mass.dimensionality) and dst.check(substance.dimensionality)
    molar_to_mass = src.check(substance.dimensionality) and dst.check(mass.dimensionality)
    if molar_mass and mass_to_molar:
        grams = src.to(mass).magnitude
        return _tidy((grams / molar_mass * substance / dst).to("dimensionless").magnitude)
    if molar_mass and molar_to_mass:
        moles = src.to(substance).magnitude
        return _tidy((moles * molar_mass * mass / dst).to("dimensionless").magnitude)
    why = " (no molar mass known)" if mass_to_molar or molar_to_mass else ""
    raise UnitError(f"{source!r} cannot be converted to {target!r}{why}", code="incompatible_unit")


def _tidy(factor: float) -> float:
    """12 significant digits: `ug/L` to `ng/mL` is 1.0, not 0.9999999999999999."""
    return float(f"{float(factor):.12g}")


class UnitConverter:
    """Converts lab values to their analyte's standard unit; one factor per
    (analyte, written unit), computed on first use and kept."""

    def __init__(self, vocab: Vocabulary) -> None:
        self._vocab = vocab
        self._factors: dict[tuple[str, str], float | UnitError] = {}

    def factor(self, analyte_code: str, unit: str) -> float:
        """The multiplier from `unit` to the analyte's standard unit."""
        key = (analyte_code, unit)
        found = self._factors.get(key)
        if found is None:
            found = self._compute(analyte_code, unit)
            self._factors[key] = found
        if isinstance(found, UnitError):
            raise found
        return found

    def _compute(self, analyte_code: str, unit: str) -> float | UnitError:
        analyte = self._vocab.analyte(analyte_code)
        if analyte is None:
            return UnitError(f"unknown analyte {analyte_code!r}", code="unknown_analyte")
        if not unit.strip():
            return UnitError(f"{analyte_code}: no unit given", code="missing_unit")
        try:
            return unit_factor(unit, analyte.standard_unit, analyte.molar_mass_g_per_mol)
        except UnitError as exc:
            return UnitError(f"{analyte_code}: {exc.message}", code=exc.code)

    def convert(self, analyte_code: str, value: float, unit: str) -> float:
        return value * self.factor(analyte_code, unit)


_default_converter: UnitConverter | None = None


def convert(analyte_code: str, value: float, unit: str, vocab: Vocabulary | None = None) -> float:
    """`value` in `unit` expressed in the analyte's standard unit (from the
    default vocabulary unless one is given). Raises `UnitError` with code
    `unknown_unit`, `incompatible_unit`, `missing_unit` or `unknown_analyte`."""
    global _default_converter
    if vocab is not None:
        return UnitConverter(vocab).convert(analyte_code, value, unit)
    if _default_converter is None:
        _default_converter = UnitConverter(load_default())
    return _default_converter.convert(analyte_code, value, unit)
