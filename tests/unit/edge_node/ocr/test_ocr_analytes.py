"""Item names (zh/en, abbreviations) -> contract code -> LOINC."""

from __future__ import annotations

import pytest

from edge_node.ocr.analytes import AnalyteNames
from shared_cdm.vocab import load_default


@pytest.fixture(scope="module")
def names() -> AnalyteNames:
    return AnalyteNames(load_default())


@pytest.mark.parametrize(
    ("printed", "code", "loinc"),
    [
        ("癌胚抗原", "CEA", "2039-6"),
        ("CEA", "CEA", "2039-6"),
        ("癌胚抗原(CEA)", "CEA", "2039-6"),
        ("Carcinoembryonic antigen", "CEA", "2039-6"),
        ("糖类抗原125", "CA125", "10334-1"),
        ("CA-125", "CA125", "10334-1"),
        ("CA 125", "CA125", "10334-1"),
        ("糖类抗原153", "CA15-3", "6875-9"),
        ("CA19-9", "CA19-9", "24108-3"),
        ("糖类抗原CA199", "CA19-9", "24108-3"),
        ("CA72-4", "CA72-4", "17843-4"),
        ("细胞角蛋白19片段", "CYFRA21-1", "25390-6"),
        ("CYFRA21-1", "CYFRA21-1", "25390-6"),
        ("神经元特异性烯醇化酶", "NSE", "15060-7"),
        ("鳞状细胞癌抗原", "SCC", "9679-2"),
        ("鳞状细胞癌相关抗原(SCC)", "SCC", "9679-2"),
        ("scC", "SCC", "9679-2"),
        ("胃泌素释放肽前体", "ProGRP", None),
        ("甲胎蛋白", "AFP", "1834-1"),
        ("PSA", "PSA", "2857-1"),
        ("TPSA", "TPSA", "2857-1"),
        ("总前列腺特异性抗原", "TPSA", "2857-1"),
        ("fPSA", "fPSA", "10886-0"),
        ("Free PSA", "fPSA", "10886-0"),
        ("HE4", "HE4", "55180-4"),
        ("人附睾蛋白4", "HE4", "55180-4"),
        ("1 癌胚抗原", "CEA", "2039-6"),  # the row number read into the name
        ("神经元特异性烯醇化醇", "NSE", "15060-7"),  # one character misread
    ],
)
def test_names(names: AnalyteNames, printed: str, code: str, loinc: str | None) -> None:
    match = names.match(printed)
    assert match is not None, printed
    assert (match.code, match.loinc) == (code, loinc)


@pytest.mark.parametrize("printed", ["姓名", "Tested by: J. Doe", "CA", "血清", "Specimen"])
def test_other_text_is_not_an_analyte(names: AnalyteNames, printed: str) -> None:
    assert names.match(printed) is None
