from pathlib import Path

import pytest
from rich.console import Console

from ops.demo import DEMO_STUDIES, _fresh_workdir, print_study
from shared_cdm.cohort import parse_tree
from shared_cdm.errors import InvalidInput

COUNT_ENVELOPE = {
    "analysis": "count",
    "n": 9,
    "n_excluded_missing": 0,
    "sites": [
        {"name": "hillcrest", "n": "suppressed", "status": "ok"},
        {"name": "lakeview", "n": 9, "status": "ok"},
    ],
    "disclosure": ["count suppressed below the minimum cell size at: hillcrest"],
    "result": {"count": 9, "by_site": {"hillcrest": "suppressed", "lakeview": 9}},
}
DESCRIBE_ENVELOPE = {
    "analysis": "describe",
    "n": 20,
    "n_excluded_missing": 0,
    "sites": [{"name": "lakeview", "n": 20, "status": "ok"}],
    "disclosure": [],
    "result": {
        "variables": {
            "age": {"type": "numeric", "n": 20, "mean": 64.123, "sd": 9.5},
            "sex": {"type": "categorical", "n": 20, "counts": {"female": 8, "male": 12}},
        }
    },
}


def _render(study_index: int, envelope: dict[str, object]) -> str:
    console = Console(record=True, width=120)
    print_study(console, DEMO_STUDIES[study_index], envelope)
    return console.export_text()


def test_demo_cohorts_are_valid_condition_trees() -> None:
    for study in DEMO_STUDIES:
        if "where" in study.spec:
            parse_tree(study.spec["where"])


def test_count_table_shows_each_site_the_total_and_the_disclosure() -> None:
    text = _render(1, COUNT_ENVELOPE)
    assert "hillcrest" in text and "suppressed" in text
    assert "all sites" in text
    assert "disclosure: count suppressed" in text


def test_describe_tables_show_mean_sd_and_counts() -> None:
    text = _render(2, DESCRIBE_ENVELOPE)
    assert "64.12" in text and "9.50" in text
    assert "female: 8, male: 12" in text


def test_workdir_must_be_new_or_empty(tmp_path: Path) -> None:
    assert _fresh_workdir(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "hub").mkdir()
    with pytest.raises(InvalidInput, match="not empty"):
        _fresh_workdir(tmp_path / "used")
