import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ops.cli import app
from ops.local_federation import load_study, parse_site, parse_sites
from shared_cdm.errors import EXIT_CODES, ErrorKind, InvalidInput, NotFound

runner = CliRunner()


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    path = tmp_path / "a.csv"
    path.write_text("age\n61\n", encoding="utf-8")
    return path


def test_site_is_name_equals_path(csv: Path) -> None:
    site = parse_site(f"riverside={csv}")
    assert site.name == "riverside"
    assert site.csv == csv


def test_only_the_first_equals_splits(tmp_path: Path) -> None:
    odd = tmp_path / "x=y.csv"
    odd.write_text("age\n1\n", encoding="utf-8")
    assert parse_site(f"A={odd}").csv == odd


@pytest.mark.parametrize("value", ["riverside", "=a.csv", "riverside=", ""])
def test_site_without_name_or_path_is_invalid(value: str) -> None:
    with pytest.raises(InvalidInput, match="NAME=PATH"):
        parse_site(value)


def test_site_name_must_be_a_valid_party_name(csv: Path) -> None:
    with pytest.raises(InvalidInput, match="party name"):
        parse_site(f"river side={csv}")


def test_missing_csv_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        parse_site(f"A={tmp_path / 'nope.csv'}")


def test_repeated_site_names_are_refused(csv: Path) -> None:
    with pytest.raises(InvalidInput, match="repeated: A"):
        parse_sites([f"A={csv}", f"B={csv}", f"A={csv}"])


def test_sites_keep_their_order(csv: Path) -> None:
    assert [s.name for s in parse_sites([f"B={csv}", f"A={csv}"])] == ["B", "A"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        ('{"analysis": "nope"}', "unknown analysis"),
        ('{"analysis": "describe"}', "at least one variable"),
    ],
)
def test_unusable_study_files_are_invalid(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "study.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInput, match=message):
        load_study(path)


def test_study_file_is_returned_as_written(tmp_path: Path) -> None:
    spec = {
        "analysis": "describe",
        "variables": ["age"],
        "where": {"field": "age", "op": ">", "value": 1},
    }
    path = tmp_path / "study.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    assert load_study(path) == spec


def _invoke(tmp_path: Path, *site: str, study: str = '{"analysis": "count"}') -> tuple[int, str]:
    study_path = tmp_path / "study.json"
    study_path.write_text(study, encoding="utf-8")
    args = ["local-federation", "--study", str(study_path), "--out", str(tmp_path / "r.json")]
    for s in site:
        args += ["--site", s]
    done = runner.invoke(app, args)
    return done.exit_code, done.stderr


def test_cli_site_without_equals_fails_fast_with_one_line(tmp_path: Path, csv: Path) -> None:
    code, err = _invoke(tmp_path, f"A={csv}", "B")
    assert code == EXIT_CODES[ErrorKind.INVALID]
    assert err.strip().count("\n") == 0
    assert "NAME=PATH.csv" in err
    assert not (tmp_path / "r.json").exists()


def test_cli_missing_csv_exits_not_found(tmp_path: Path) -> None:
    code, err = _invoke(tmp_path, f"A={tmp_path / 'gone.csv'}")
    assert code == EXIT_CODES[ErrorKind.NOT_FOUND]
    assert "gone.csv" in err


def test_cli_non_json_study_exits_invalid(tmp_path: Path, csv: Path) -> None:
    code, err = _invoke(tmp_path, f"A={csv}", study="analysis: count")
    assert code == EXIT_CODES[ErrorKind.INVALID]
    assert "not JSON" in err
    assert err.strip().count("\n") == 0


def test_a_local_run_below_the_centers_minimum_says_so() -> None:
    from ops.local_federation import local_run_notes

    assert local_run_notes("count", 3) == []
    assert local_run_notes("cox", 2) == []
    (note,) = local_run_notes("describe", 2)
    assert "minimum of 3" in note and "not enforced" in note
